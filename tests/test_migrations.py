"""`flask db upgrade` builds the schema the models describe; `flask db downgrade base` removes it.

Migration 0002 (seat counter, mail composed at delivery): the upgrade fills `seats_taken` and
`waitlist_last` from the registrations already there; the downgrade refuses while a message still
waits to be composed, and otherwise leaves sent ones with a subject and empty bodies. Migration 0003
gives every organiser a session version (1), which the downgrade drops.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from scheduler import create_app
from scheduler.extensions import db
from scheduler.models.types import UTCDateTime
from tests.support import PG_ADMIN_URL, base_config, fresh_database, postgres_available, require


@pytest.fixture
def empty_database_url(backend, tmp_path):
    if backend == "postgres" and not postgres_available():
        require("REQUIRE_POSTGRES", "PostgreSQL is not reachable on 127.0.0.1:5432")
    with fresh_database(backend, tmp_path, prefix="townhall_migrate", admin_url=PG_ADMIN_URL) as url:
        yield url


def test_upgrade_matches_models_and_downgrade_empties(empty_database_url, tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), db.metadata)
        assert {t.name for t in db.metadata.sorted_tables} <= tables
        assert diff == []
        downgrade(revision="base")
        with db.engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
        upgrade()  # and back up again: the pair is repeatable
        db.engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL="sqlite:///" + str(tmp_path / "wal.db")))
    with app.app_context(), db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        db.engine.dispose()


# --- 0002_seat_counter_deferred_mail ------------------------------------------------------------

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _insert(conn, table: str, **values) -> None:
    """One row by plain SQL; datetimes stored as the app stores them (naive UTC on SQLite)."""
    columns, params = ", ".join(values), ", ".join(":" + k for k in values)
    # Table and column names are this file's literals; the values are bound.
    statement = sa.text(f"INSERT INTO {table} ({columns}) VALUES ({params})")  # noqa: S608
    statement = statement.bindparams(*(sa.bindparam(k, type_=UTCDateTime()) for k, v in values.items()
                                       if isinstance(v, datetime)))
    conn.execute(statement, values)


def _insert_event(conn, event_id: int) -> None:
    starts = NOW + timedelta(days=7)
    _insert(conn, "events", id=event_id, slug=f"event-{event_id}", title=f"Event {event_id}", summary="",
            description="", kind="talk", starts_at=starts, ends_at=starts + timedelta(hours=1),
            timezone="Europe/Berlin", venue="", join_url="", capacity=10, status="published", reminder_offsets="[]",
            double_opt_in=False, briefing_enabled=False, briefing_offset=0, nudge_enabled=False, nudge_offset=0,
            thanks_enabled=False, thanks_offset=0, sequence=0, created_at=NOW, updated_at=NOW, published_at=NOW)


def _insert_registration(conn, event_id: int, email: str, state: str, waitlist_seq: int | None = None) -> None:
    _insert(conn, "registrations", event_id=event_id, name=email.split("@")[0], email=email, email_key=email,
            question="", timezone="UTC", state=state, waitlist_seq=waitlist_seq, token_nonce=email.split("@")[0],
            reminders_opt_out=False, ics_sequence=0, created_at=NOW, updated_at=NOW)


def _insert_outbox(conn, dedupe_key: str, kind: str, state: str, **fields) -> None:
    _insert(conn, "outbox", dedupe_key=dedupe_key, kind=kind, to_addr="ada@example.org", to_name="Ada", state=state,
            attempts=0, next_attempt_at=NOW, created_at=NOW, **fields)


def _version(conn) -> str:
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


def _columns(conn, table: str) -> dict[str, dict]:
    return {c["name"]: c for c in sa.inspect(conn).get_columns(table)}


def test_0002_upgrade_counts_seats_and_waitlist_from_existing_rows(empty_database_url, tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade(revision="0001")
        with db.engine.begin() as conn:
            _insert_event(conn, 1)
            _insert_event(conn, 2)  # no registrations: its counters must not pick up event 1's
            for email, state, seq in [("c@x.org", "confirmed", None), ("p@x.org", "pending", None),
                                      ("w3@x.org", "waitlisted", 3), ("w5@x.org", "waitlisted", 5),
                                      ("k@x.org", "cancelled", None), ("e@x.org", "expired", None)]:
                _insert_registration(conn, 1, email, state, seq)
        upgrade(revision="0002")
        with db.engine.connect() as conn:
            assert _version(conn) == "0002"
            # Rebuilding the events table must not cascade to the rows that point at it.
            assert conn.execute(sa.text("SELECT count(*) FROM registrations")).scalar_one() == 6
            counters = conn.execute(sa.text("SELECT id, seats_taken, waitlist_last FROM events ORDER BY id")).all()
        # Confirmed and pending hold a seat; cancelled, expired and the waitlist do not.
        assert [tuple(row) for row in counters] == [(1, 2, 5), (2, 0, 0)]
        db.engine.dispose()


def test_0002_downgrade_refuses_while_mail_waits_to_be_composed(empty_database_url, tmp_path, capfd):
    app = create_app(base_config(tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade(revision="0002")
        with db.engine.begin() as conn:
            _insert_event(conn, 1)
            _insert_registration(conn, 1, "ada@example.org", "confirmed")
            # Composed at delivery: no subject or bodies yet, only the context for the renderer.
            _insert_outbox(conn, "confirmed:1", "confirmed", "queued", context='{"event_id": 1}')
            _insert_outbox(conn, "signup_received:1", "signup_received", "sent", context="{}", sent_at=NOW)
            # Composed when queued, as every message was before 0002: the downgrade must leave it as it is.
            _insert_outbox(conn, "reminder:1", "reminder", "sent", subject="Starts soon", body_text="Hello",
                           body_html="<p>Hello</p>", sent_at=NOW, event_id=1)
        capfd.readouterr()

        def outbox_rows(conn):
            return {row.dedupe_key: (row.subject, row.body_text, row.body_html) for row in conn.execute(
                sa.text("SELECT dedupe_key, subject, body_text, body_html FROM outbox"))}

        before = {"confirmed:1": (None, None, None), "signup_received:1": (None, None, None),
                  "reminder:1": ("Starts soon", "Hello", "<p>Hello</p>")}
        # A message being sent right now ('sending') blocks the downgrade as much as a queued one.
        for state in ("queued", "sending"):
            with db.engine.begin() as conn:
                conn.execute(sa.text("UPDATE outbox SET state = :state WHERE dedupe_key = 'confirmed:1'"),
                             {"state": state})
            with pytest.raises(SystemExit) as refused:  # flask-migrate turns the RuntimeError into exit 1
                downgrade(revision="0001")
            assert refused.value.code == 1
            assert "1 queued or failed message(s) are composed at delivery" in capfd.readouterr().err
            with db.engine.connect() as conn:
                assert _version(conn) == "0002"
                assert outbox_rows(conn) == before
                assert "context" in _columns(conn, "outbox")
                assert {"seats_taken", "waitlist_last"} <= set(_columns(conn, "events"))

        with db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET state = 'sent', sent_at = :at WHERE dedupe_key = 'confirmed:1'")
                         .bindparams(sa.bindparam("at", type_=UTCDateTime())), {"at": NOW})
        downgrade(revision="0001")
        with db.engine.connect() as conn:
            assert _version(conn) == "0001"
            # Sent messages composed at delivery keep their kind as subject and empty bodies.
            assert outbox_rows(conn) == {"confirmed:1": ("confirmed", "", ""),
                                         "signup_received:1": ("signup_received", "", ""),
                                         "reminder:1": ("Starts soon", "Hello", "<p>Hello</p>")}
            outbox_columns = _columns(conn, "outbox")
            assert "context" not in outbox_columns
            assert not any(outbox_columns[c]["nullable"] for c in ("subject", "body_text", "body_html"))
            assert not {"seats_taken", "waitlist_last"} & set(_columns(conn, "events"))
            # Rebuilding the events table must not cascade to the rows that point at it.
            assert conn.execute(sa.text("SELECT count(*) FROM registrations")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT event_id FROM outbox WHERE dedupe_key = 'reminder:1'")).scalar_one() == 1
        db.engine.dispose()


# --- 0003_user_session_version --------------------------------------------------------------------

def test_0003_gives_every_organiser_session_version_one_and_downgrades(empty_database_url, tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade(revision="0002")
        with db.engine.begin() as conn:
            _insert(conn, "users", id=1, email="organiser@townhall.test", name="Organiser", password_hash="x",
                    active=True, created_at=NOW)
        upgrade(revision="0003")
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, session_version FROM users")).all() == [(1, 1)]
        downgrade(revision="0002")
        with db.engine.connect() as conn:
            assert "session_version" not in _columns(conn, "users")
            assert conn.execute(sa.text("SELECT email FROM users")).scalar_one() == "organiser@townhall.test"
        db.engine.dispose()


def test_foreign_keys_back_on_after_upgrade(tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL="sqlite:///" + str(tmp_path / "m.db"),
                                 SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 1}))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            fk = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
            # An orphan registration is accepted when FKs are off.
            try:
                conn.exec_driver_sql(
                    "INSERT INTO registrations (event_id, name, email, email_key, question, timezone, state, "
                    "token_nonce, reminders_opt_out, ics_sequence, created_at, updated_at) VALUES "
                    "(999, 'x', 'x@x', 'x@x', '', 'UTC', 'confirmed', 'n', 0, 0, '2026-01-01', '2026-01-01')")
                orphan = True
            except Exception:  # noqa: BLE001
                orphan = False
            conn.rollback()
        db.engine.dispose()
    assert fk == 1
    assert not orphan


# --- 0004_event_version_description_html ----------------------------------------------------------

def test_0004_renders_existing_descriptions_and_starts_versions_at_zero(empty_database_url, tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade(revision="0003")
        with db.engine.begin() as conn:
            _insert_event(conn, 1)
            _insert_event(conn, 2)
            conn.execute(sa.text("UPDATE events SET description = :text WHERE id = 1"),
                         {"text": "Hi **there** <script>alert(1)</script>"})
            _insert_registration(conn, 1, "ada@example.org", "confirmed")
        upgrade(revision="0004")
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, description_html, version FROM events ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [(1, "<p>Hi <strong>there</strong> </p>", 0), (2, "", 0)]
        downgrade(revision="0003")
        with db.engine.connect() as conn:
            assert not {"description_html", "version"} & set(_columns(conn, "events"))
            assert conn.execute(sa.text("SELECT description FROM events WHERE id = 1")).scalar_one().startswith("Hi")
            # Rebuilding the events table must not cascade to the rows that point at it.
            assert conn.execute(sa.text("SELECT count(*) FROM registrations")).scalar_one() == 1
        db.engine.dispose()


# --- 0005_question_board ------------------------------------------------------------------------

def test_0005_carries_signup_questions_over_and_downgrade_keeps_them(empty_database_url, tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade(revision="0004")
        with db.engine.begin() as conn:
            _insert_event(conn, 1)
            _insert_event(conn, 2)
            rows = [  # (email, state, name, question, address confirmed)
                ("ada@x.org", "confirmed", "Ada", "Will it <b>stay</b> open?", True),
                ("nameless@x.org", "confirmed", "", "Who pays?", True),
                ("quiet@x.org", "confirmed", "Quiet", "", True),
                ("wait@x.org", "waitlisted", "Wait", "From the waitlist", True),
                ("unsure@x.org", "waitlisted", "Unsure", "Address never confirmed", False),
                ("pending@x.org", "pending", "Pending", "Address never confirmed", False),
                ("gone@x.org", "cancelled", "Gone", "Left before", True),
            ]
            for n, (email, state, name, question, verified) in enumerate(rows):
                _insert_registration(conn, 1 if n < 6 else 2, email, state)
                conn.execute(sa.text("UPDATE registrations SET name = :name, question = :question, created_at = :at, "
                                     "email_verified_at = :verified WHERE email = :email")
                             .bindparams(sa.bindparam("at", type_=UTCDateTime()),
                                         sa.bindparam("verified", type_=UTCDateTime())),
                             {"name": name, "question": question, "email": email,
                              "at": NOW + timedelta(minutes=n), "verified": NOW if verified else None})
        upgrade(revision="0005")
        with db.engine.connect() as conn:
            carried = conn.execute(sa.text(
                "SELECT r.email, q.event_id, q.body, q.display_name, q.state, q.pinned, q.votes, q.created_at "
                "FROM questions q JOIN registrations r ON r.id = q.registration_id ORDER BY q.id")
                .columns(created_at=UTCDateTime())).all()
            events = conn.execute(sa.text("SELECT board_mode, board_public FROM events ORDER BY id")).all()
        created = [row.created_at for row in carried]
        assert [tuple(row[:-1]) for row in carried] == [
            ("ada@x.org", 1, "Will it <b>stay</b> open?", "Ada", "visible", False, 0),
            ("nameless@x.org", 1, "Who pays?", "", "visible", False, 0),
            ("wait@x.org", 1, "From the waitlist", "Wait", "visible", False, 0),
        ]
        assert created == [NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=3)]
        assert [tuple(row) for row in events] == [("open", False), ("open", False)]
        downgrade(revision="0004")
        with db.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert not {"questions", "question_votes"} & tables
            assert not {"board_mode", "board_public"} & set(_columns(conn, "events"))
            # The signup questions are where they were, all of them.
            assert conn.execute(sa.text("SELECT count(*) FROM registrations WHERE question != ''")).scalar_one() == 6
        db.engine.dispose()
