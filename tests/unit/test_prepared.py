"""Prepared statements (scheduler.prepared): run on the DBAPI cursor, they must give what SQLAlchemy
gives — the same values and Python types back, the statement's own literals bound, rows counted, errors as
SQLAlchemy's exceptions — inside the caller's transaction, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from scheduler.extensions import db
from scheduler.models import Event, OutboxMessage, Registration
from scheduler.prepared import Prepared, prepared

events = Event.__table__
RETURNED = [events.c[name] for name in ("id", "title", "starts_at", "double_opt_in", "reminder_offsets", "capacity")]
# A no-op UPDATE with a literal in its WHERE ("published" is bound by the statement, not the caller).
TOUCH = (update(events).where(events.c.id == bindparam("event_id"), events.c.status == "published")
         .values(title=events.c.title).returning(*RETURNED))


def test_returned_row_matches_sqlalchemy_values_and_types(app, create_event):
    event = create_event(title="Café ☕ talk", capacity=12, double_opt_in=True, reminder_offsets=[86400, 3600])
    connection = db.session.connection()
    ours = Prepared(TOUCH).first(connection, {"event_id": event.id})
    theirs = connection.execute(TOUCH, {"event_id": event.id}).first()
    assert tuple(ours) == tuple(theirs)
    assert ours.title == "Café ☕ talk" and ours.capacity == 12
    assert ours.double_opt_in is True  # SQLite stores 1: the result processor makes it a bool
    assert ours.starts_at.tzinfo is not None and ours.starts_at.utcoffset() == timedelta(0)
    assert ours.starts_at == event.starts_at.astimezone(UTC)
    assert ours.reminder_offsets == [86400, 3600]
    db.session.rollback()


def test_literals_of_the_statement_are_bound(app, create_event):
    draft = create_event(publish=False)
    assert Prepared(TOUCH).first(db.session.connection(), {"event_id": draft.id}) is None
    db.session.rollback()


def test_runs_inside_the_callers_transaction(app, create_event):
    event_id = create_event(capacity=5).id
    rename = Prepared(update(events).where(events.c.id == bindparam("event_id")).values(title=bindparam("title")))
    title = select(Event.title).where(Event.id == event_id)
    assert rename.run(db.session.connection(), {"event_id": event_id, "title": "Renamed"}) == 1
    assert db.session.scalar(title) == "Renamed"
    db.session.rollback()
    assert db.session.scalar(title) != "Renamed"
    db.session.rollback()  # a second connection below: on SQLite this one must not hold the writers' turn
    # Without a transaction begun, it begins one as SQLAlchemy would; the caller commits.
    with db.engine.connect() as connection:
        rename.run(connection, {"event_id": event_id, "title": "Committed"})
        assert connection.in_transaction()
        connection.commit()
    assert db.session.scalar(title) == "Committed"


def test_insert_counts_rows_and_skips_a_known_dedupe_key(app, create_event, now, backend):
    from scheduler.mail.outbox import _INSERT_OR_SKIP

    event = create_event()
    row = dict(dedupe_key="test:1", kind="confirmed", to_addr="ann@example.org", to_name="Ann", event_id=event.id,
               registration_id=None, ics_method="REQUEST", context={"sequence": 3, "venue": "Hall ✓"},
               state="queued", attempts=0, next_attempt_at=now, created_at=now)
    statement = prepared(_INSERT_OR_SKIP[backend.replace("postgres", "postgresql")], tuple(row))
    connection = db.session.connection()
    assert statement.run(connection, row) == 1
    assert statement.run(connection, {**row, "to_addr": "other@example.org"}) == 0
    db.session.commit()
    stored = db.session.scalars(select(OutboxMessage)).all()
    assert [(m.to_addr, m.context, m.next_attempt_at) for m in stored] == [("ann@example.org", row["context"], now)]


def test_database_errors_are_sqlalchemys_and_leave_a_usable_session(app, create_event, now):
    event = create_event()
    values = dict(event_id=event.id + 1000, name="Nobody", email="n@example.org", email_key="n@example.org",
                  question="", timezone="UTC", state="confirmed", token_nonce="n" * 32, reminders_opt_out=False,
                  ics_sequence=0, created_at=now, updated_at=now)
    orphan = Prepared(insert(Registration.__table__), tuple(values))
    with pytest.raises(IntegrityError):
        orphan.run(db.session.connection(), values)  # no such event: the foreign key refuses it
    db.session.rollback()
    assert orphan.run(db.session.connection(), {**values, "event_id": event.id}) == 1
    db.session.commit()
    assert db.session.scalar(select(Registration.name)) == "Nobody"


def test_an_insert_missing_python_side_defaults_is_refused_before_it_runs(app, create_event):
    event = create_event()
    partial = Prepared(insert(Registration.__table__), ("event_id", "name", "email", "email_key", "token_nonce"))
    with pytest.raises(ValueError, match="created_at"):
        partial.run(db.session.connection(), dict(event_id=event.id, name="A", email="a@x.org", email_key="a@x.org",
                                                  token_nonce="n" * 32))
    db.session.rollback()
    assert db.session.scalar(select(Registration.id)) is None


def test_cursor_event_listeners_still_see_the_statement(app, create_event):
    traced = create_event(title="Traced")
    seen = []

    def before(_conn, _cursor, statement, _params, _context, _many):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        row = Prepared(TOUCH).first(db.session.connection(), {"event_id": traced.id})
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    assert row.title == "Traced"
    assert any(s.startswith("UPDATE events SET title") for s in seen)
    db.session.rollback()


def test_sql_and_parameters_are_exactly_what_sqlalchemy_sends(app, create_event, now, backend):
    from scheduler.domain import signups
    from scheduler.mail.outbox import _INSERT_OR_SKIP

    ev = create_event(capacity=3)
    dialect = "postgresql" if backend == "postgres" else "sqlite"
    person = dict(id=1000, event_id=ev.id, email_key="a@x.org", name="A", email="a@x.org", question="", timezone="UTC",
                  state="confirmed", waitlist_seq=None, token_nonce="n" * 32, feed_nonce="f" * 32,
                  email_verified_at=now, confirmed_at=now, hold_expires_at=None, reminders_opt_out=False,
                  ics_sequence=0, consent_at=now, created_at=now, updated_at=now, token_hash="h", feed_token_hash="g")
    message = dict(dedupe_key="k", kind="confirmed", to_addr="a@x.org", to_name="A", event_id=ev.id,
                   registration_id=None, ics_method=None, context={"a": [1, True, None]}, state="queued",
                   attempts=0, next_attempt_at=now, created_at=now)
    cases = [(signups._TAKE_SEAT["by_slug"], {"by_slug": ev.slug, "now": now}),
             (signups._TAKE_NUMBER["by_id"], {"by_id": ev.id, "now": now}),
             (prepared(signups._INSERT_NEW[dialect], tuple(person)), person),
             (signups._GIVE_BACK, {"by_id": ev.id}),
             (prepared(_INSERT_OR_SKIP[dialect], tuple(message)), message)]
    connection = db.session.connection()
    seen = []

    def before(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    for statement, params in cases:
        form = statement._form(connection.dialect)
        ours = form.bind(params)
        seen.clear()
        event.listen(db.engine, "before_cursor_execute", before)
        try:
            connection.execute(statement.statement, params)
        finally:
            event.remove(db.engine, "before_cursor_execute", before)
        [(sql, theirs)] = seen
        assert form.sql == sql
        if isinstance(ours, dict):  # PostgreSQL: named parameters
            assert sorted(ours) == sorted(theirs)
            ours, theirs = [ours[name] for name in sorted(ours)], [theirs[name] for name in sorted(theirs)]
        assert [(value, type(value)) for value in ours] == [(value, type(value)) for value in theirs]
    db.session.rollback()


def test_a_value_it_cannot_bind_is_a_statement_error(app, create_event, now):
    event_id = create_event().id
    stamp = Prepared(update(events).where(events.c.id == bindparam("event_id")).values(updated_at=bindparam("now")))
    with pytest.raises(StatementError, match="naive datetime"):
        stamp.run(db.session.connection(), {"event_id": event_id, "now": now.replace(tzinfo=None)})
    db.session.rollback()
    assert stamp.run(db.session.connection(), {"event_id": event_id, "now": now}) == 1
    db.session.rollback()


def test_a_lost_postgresql_connection_is_invalidated_and_the_session_recovers(app, create_event, backend):
    if backend != "postgres":
        pytest.skip("a server that drops the connection: PostgreSQL")
    from sqlalchemy import create_engine, text

    event_id = create_event(title="Before").id
    connection = db.session.connection()
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    admin = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    with pytest.raises(OperationalError) as raised:
        Prepared(TOUCH).first(connection, {"event_id": event_id})
    assert raised.value.connection_invalidated
    db.session.rollback()
    assert Prepared(TOUCH).first(db.session.connection(), {"event_id": event_id}).title == "Before"
    db.session.rollback()
