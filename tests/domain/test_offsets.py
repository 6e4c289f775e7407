"""Reminder offsets such as "7d, 1d, 1h, 10m" <-> seconds."""

from __future__ import annotations

import pytest

from scheduler.domain.offsets import format_offsets, parse_offsets
from scheduler.errors import InvalidInput


def test_offsets_parse_sorted_unique():
    assert parse_offsets("1h, 7d,10m, 1d, 1h") == [604800, 86400, 3600, 600]
    assert format_offsets([604800, 86400, 3600, 600]) == "1w, 1d, 1h, 10m"
    assert parse_offsets("") == []


@pytest.mark.parametrize("bad", ["soon", "0m", "-1h", "1y", "99999d", "1.5h"])
def test_offsets_reject_bad(bad):
    with pytest.raises(InvalidInput):
        parse_offsets(bad)


@pytest.mark.parametrize(("seconds", "words"), [
    (60, "1 minute"), (600, "10 minutes"), (3600, "1 hour"), (7200, "2 hours"), (86400, "1 day"),
    (172800, "2 days"), (604800, "1 week"), (90, "90 seconds"), (1, "1 second"),
])
def test_offsets_in_words_agree_in_number(seconds, words):
    from scheduler.domain.offsets import describe_offset

    assert describe_offset(seconds) == words

