"""Column types (scheduler.models.types): UTC datetimes and compact JSON, bound as the database needs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import Event, OutboxMessage


def _bind(column, value):
    dialect = db.engine.dialect
    return column.type.bind_processor(dialect)(value)


def test_one_instant_binds_alike_from_any_zone_and_reads_back_in_utc(app, create_event):
    instant = datetime(2031, 3, 30, 0, 30, tzinfo=UTC)  # 02:30 in Berlin, just after the spring change
    berlin = instant.astimezone(ZoneInfo("Europe/Berlin"))
    columns = Event.__table__.c
    assert _bind(columns.starts_at, instant) == _bind(columns.ends_at, berlin) == _bind(columns.starts_at, berlin)
    assert _bind(columns.starts_at, instant + timedelta(microseconds=1)) != _bind(columns.starts_at, instant)
    event = create_event(starts_at=berlin, ends_at=berlin + timedelta(hours=1))
    db.session.expire_all()
    stored = db.session.execute(select(Event.starts_at).where(Event.id == event.id)).scalar_one()
    assert stored == instant and stored.utcoffset() == timedelta(0)


def test_a_naive_datetime_is_refused_every_time(app):
    column = Event.__table__.c.starts_at
    naive = datetime(2031, 1, 1, 12, 0)
    for _ in range(2):  # the memo keeps results, never a refusal
        with pytest.raises(ValueError, match="naive datetime"):
            _bind(column, naive)
    assert _bind(column, naive.replace(tzinfo=timezone(timedelta(hours=2)))) == _bind(
        column, datetime(2031, 1, 1, 10, 0, tzinfo=UTC))


def test_json_context_is_stored_compact_and_read_back(app):
    assert _bind(OutboxMessage.__table__.c.context, {"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"\\u00e9"}'
    assert _bind(OutboxMessage.__table__.c.context, None) is None


def test_wall_times_that_differ_only_in_fold_bind_as_different_instants(app):
    """01:30 happens twice in New York on the night clocks go back; the two compare equal in Python."""
    column = Event.__table__.c.starts_at
    zone = ZoneInfo("America/New_York")
    first, second = datetime(2031, 11, 2, 1, 30, tzinfo=zone), datetime(2031, 11, 2, 1, 30, fold=1, tzinfo=zone)
    assert first == second  # same wall time and zone: Python ignores fold here
    assert _bind(column, first) == _bind(column, datetime(2031, 11, 2, 5, 30, tzinfo=UTC))
    assert _bind(column, second) == _bind(column, datetime(2031, 11, 2, 6, 30, tzinfo=UTC))
