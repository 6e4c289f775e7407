"""Column types shared by the models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from weakref import WeakKeyDictionary

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator

#: Per dialect, the one bind processor of every UTCDateTime column (see UTCDateTime.bind_processor).
_UTC_BINDS: WeakKeyDictionary = WeakKeyDictionary()


class UTCDateTime(TypeDecorator):
    """Aware datetimes in Python, UTC in the database (naive UTC on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect):
        """Shared by all columns of this type and memoised: what is bound depends only on the instant,
        and one signup binds the same `now` to a dozen columns (each conversion costs ~4 µs)."""
        process = _UTC_BINDS.get(dialect)
        if process is None:
            process = _UTC_BINDS[dialect] = lru_cache(maxsize=64)(super().bind_processor(dialect))
        return process

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Townhall stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_compact_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per value


class JSONList(TypeDecorator):
    """A JSON list kept as text, portable across SQLite and PostgreSQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else _compact_json(list(value))

    def process_result_value(self, value, dialect):
        return [] if value is None else json.loads(value)


class JSONDict(TypeDecorator):
    """A JSON object kept as text, portable across SQLite and PostgreSQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else _compact_json(value)

    def process_result_value(self, value, dialect):
        return None if value is None else json.loads(value)


def utcnow() -> datetime:
    return datetime.now(UTC)
