"""Column types shared by the models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware datetimes in Python, UTC in the database (naive UTC on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect):
        """One processor per dialect for every column of this type, memoised for UTC values: one
        signup binds the same `now` to a dozen columns, and each conversion costs ~4 µs.

        Only values already in UTC are memoised: two wall times of another zone that differ only in
        `fold` compare equal but are different instants.
        """
        bind = dialect.__dict__.get("_townhall_utc_bind")  # kept on the dialect: it lives as long
        if bind is None:
            process = super().bind_processor(dialect)
            memo = lru_cache(maxsize=64)(process)

            def bind(value):
                if value is None:
                    return None
                return memo(value) if value.tzinfo is UTC else process(value)

            dialect._townhall_utc_bind = bind
        return bind

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
