"""Showing times: a range in a named zone, across a DST change."""

from __future__ import annotations

from datetime import UTC, datetime

from scheduler.timefmt import format_range


def test_range_names_zone_and_handles_dst():
    start = datetime(2026, 3, 8, 17, 0, tzinfo=UTC)  # after the US switch to PDT that morning
    assert format_range(start, start.replace(hour=18), "America/Los_Angeles") == \
        "Sunday 8 March 2026, 10:00–11:00 PDT (America/Los_Angeles)"
