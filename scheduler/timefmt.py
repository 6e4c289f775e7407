"""Showing times: always in a named zone, in the reader's zone where we know it."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo


def in_zone(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def format_datetime(moment: datetime, zone: str) -> str:
    """"Thursday 3 December 2026, 09:00 PST (America/Los_Angeles)"."""
    local = in_zone(moment, zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()} ({zone})"


def format_range(start: datetime, end: datetime, zone: str) -> str:
    """"Thursday 3 December 2026, 09:00–10:00 PST (America/Los_Angeles)"; dates repeat only if they differ."""
    a, b = in_zone(start, zone), in_zone(end, zone)
    if a.date() == b.date():
        return f"{a:%A} {a.day} {a:%B %Y, %H:%M}–{b:%H:%M} {b.tzname()} ({zone})"
    return f"{format_datetime(start, zone)} – {format_datetime(end, zone)}"


def format_time(moment: datetime, zone: str) -> str:
    local = in_zone(moment, zone)
    return f"{local:%H:%M} {local.tzname()}"
