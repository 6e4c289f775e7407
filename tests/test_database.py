"""SQLite's transactions (scheduler/database.py): a GET request begins reading, everything else writing."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from scheduler.database import read_only, writing
from scheduler.extensions import db
from tests.support import signup


@pytest.fixture
def begins(app, backend):
    """The BEGIN statements issued, in order."""
    if backend != "sqlite":
        pytest.skip("BEGIN or BEGIN IMMEDIATE is SQLite's choice; PostgreSQL locks rows")
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if statement.startswith("BEGIN"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine, "before_cursor_execute", record)


def test_get_requests_read_and_posts_jobs_and_blocks_say_what_they_do(app, client, create_event, begins):
    event_ = create_event()
    path = f"/events/{event_.slug}"
    db.session.commit()
    begins.clear()

    assert client.get(path).status_code == 200
    assert begins and set(begins) == {"BEGIN"}, begins

    begins.clear()
    assert signup(client, event_).status_code == 200
    assert begins[0] == "BEGIN IMMEDIATE", begins

    with app.app_context():  # a job or a command: no request, so it may write
        begins.clear()
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        with read_only():
            db.session.execute(text("SELECT 1"))
            db.session.rollback()
        with app.test_request_context("/", method="GET"), writing():
            db.session.execute(text("SELECT 1"))
            db.session.rollback()
    assert begins == ["BEGIN IMMEDIATE", "BEGIN", "BEGIN IMMEDIATE"]


def test_an_outbox_claim_writes_from_its_start_whatever_its_caller(app, create_event, begins, now):
    """A claim's UPDATE trusts the rows its reads found to be still due: on SQLite its transaction must hold
    the write lock from its BEGIN, also when claimed from a read-only block or a GET."""
    from scheduler.mail import outbox

    create_event()
    db.session.commit()
    begins.clear()
    with read_only():
        outbox.claim(db.session, worker="w", now=now)
    with app.test_request_context("/", method="GET"):
        outbox.claim(db.session, worker="w", now=now)
    assert begins == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]
