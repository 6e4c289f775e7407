"""Reminder offsets such as "7d, 1d, 1h, 10m" <-> seconds."""

from __future__ import annotations

import re

from ..errors import InvalidInput
from ..text import plural

UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60}
_PART = re.compile(r"^\s*(\d{1,4})\s*([wdhm])\s*$", re.IGNORECASE)
MAX_OFFSET = 60 * 86400


def parse_offset(text: str, *, field: str = "reminders") -> int:
    match = _PART.match(text or "")
    if not match:
        raise InvalidInput("“%(text)s” is not an offset like 1d, 2h or 10m.", field=field,
                           params={"text": (text or "").strip()})
    seconds = int(match.group(1)) * UNITS[match.group(2).lower()]
    if not 0 < seconds <= MAX_OFFSET:
        raise InvalidInput("Offsets must be between 1 minute and 60 days.", field=field)
    return seconds


def parse_offsets(text: str, *, field: str = "reminders") -> list[int]:
    """Parse a comma-separated plan; empty means no reminders. Largest first, no repeats."""
    parts = [p for p in (text or "").split(",") if p.strip()]
    if len(parts) > 10:
        raise InvalidInput("At most 10 reminders per event.", field=field)
    return sorted({parse_offset(p, field=field) for p in parts}, reverse=True)


def format_offset(seconds: int) -> str:
    for unit, size in UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def format_offsets(offsets: list[int]) -> str:
    return ", ".join(format_offset(s) for s in offsets)


def describe_offset(seconds: int) -> str:
    """Human words: 86400 -> "1 day", 3600 -> "1 hour"."""
    names = {"w": "week", "d": "day", "h": "hour", "m": "minute"}
    for unit, size in UNITS.items():
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {plural(n, names[unit])}"
    return f"{seconds} {plural(seconds, 'second')}"  # 90 s is "90 seconds", not "1 minute"
