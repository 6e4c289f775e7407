"""Column types shared by the models."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator

#: The largest id an integer primary key holds (PostgreSQL's integer is 32 bits; SQLite's is wider).
MAX_ID = 2**31 - 1


class UTCDateTime(TypeDecorator):
    """Aware datetimes in Python, UTC in the database (naive UTC on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

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


_compact_json = json.JSONEncoder(separators=(",", ":")).encode


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
