"""Waking the scheduler when work is queued: in this process at commit, and across processes through
PostgreSQL's NOTIFY; never for a transaction rolled back."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from scheduler import wakeups
from scheduler.domain import signups
from scheduler.extensions import db


@pytest.fixture
def woken():
    """Subscribe to both channels; yields {channel: threading.Event}."""
    events = {channel: threading.Event() for channel in (wakeups.MAIL, wakeups.JOBS)}
    callbacks = {channel: event.set for channel, event in events.items()}
    for channel, callback in callbacks.items():
        wakeups.subscribe(channel, callback)
    yield events
    for channel, callback in callbacks.items():
        wakeups.unsubscribe(channel, callback)


def _sign_up(event, email, now):
    return signups.sign_up(db.session, event, name="Ada", email=email, timezone="UTC", now=now, secret="s")


def test_queued_mail_wakes_this_process_at_commit_not_before_and_not_after_a_rollback(create_event, woken, now):
    event = create_event()
    _sign_up(event, "ada@example.org", now)
    assert not woken[wakeups.MAIL].is_set()  # queued, not yet committed: nothing to deliver yet
    db.session.rollback()
    assert not woken[wakeups.MAIL].is_set()
    _sign_up(event, "ada@example.org", now)
    db.session.commit()
    assert woken[wakeups.MAIL].is_set()


def test_a_job_planned_to_fall_due_soon_wakes_the_load(create_event, woken, now):
    create_event(starts_at=now + timedelta(days=7))  # its jobs are days away: the next load finds them
    assert not woken[wakeups.JOBS].is_set()
    create_event(starts_at=now + timedelta(hours=1, seconds=30), reminder_offsets=[3600])
    assert woken[wakeups.JOBS].is_set()


def _raw(url):
    import psycopg

    return psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True)


def test_a_notify_from_another_process_wakes_the_listener(app, backend, woken):
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite's embedded scheduler is woken in-process")
    stop = threading.Event()
    listener = wakeups.Listener(db.engine.url, stop)
    listener.start()
    try:
        assert listener.listening.wait(10)
        with _raw(db.engine.url) as other:  # another process's connection: no in-process hook involved
            other.execute("NOTIFY townhall_mail")
        assert woken[wakeups.MAIL].wait(10)
        assert not woken[wakeups.JOBS].is_set()
    finally:
        stop.set()
        listener.join(5)


def test_queued_mail_is_announced_to_other_processes_at_commit(app, create_event, backend, now):
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    event = create_event()
    with _raw(db.engine.url) as listening:
        listening.execute("LISTEN townhall_mail")
        _sign_up(event, "ada@example.org", now)
        assert list(listening.notifies(timeout=0.2)) == []  # nothing before the commit
        db.session.commit()
        [notice] = list(listening.notifies(timeout=10, stop_after=1))
    assert notice.channel == "townhall_mail"
