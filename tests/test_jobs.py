"""A reminder due 2 s ahead reaches a real SMTP server within 1 s of its due time, once per recipient."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from scheduler import jobs
from scheduler.extensions import db
from scheduler.models import PlannedJob
from tests.support import TimedSink, add_confirmed

RECIPIENTS = 300


@pytest.fixture
def sink():
    server = TimedSink().start()
    yield server
    server.stop()


@pytest.fixture
def app_config(app_config, sink):
    app_config.update(MAIL_URL=sink.url, SCHEDULER_POLL_SECONDS=2.0)
    return app_config


def test_reminder_due_in_two_seconds_reaches_smtp_within_one_second(app, create_event, sink):
    now = datetime.now(UTC)
    event = create_event(starts_at=now + timedelta(seconds=62), ends_at=now + timedelta(hours=1),
                         reminder_offsets=[60], briefing_enabled=False, nudge_enabled=False, thanks_enabled=False)
    emails = add_confirmed(db.session, event.id, RECIPIENTS, now=now)
    job = db.session.scalar(select(PlannedJob).where(PlannedJob.event_id == event.id))
    due = job.due_at.timestamp()
    db.session.commit()  # on SQLite an open transaction here would hold the write lock
    assert 1.0 < due - time.time() < 2.5
    runner = jobs.Runner(app, mode="embedded").start()
    try:
        assert sink.wait_for(RECIPIENTS, timeout=30), f"only {len(sink.messages)} arrived"
        time.sleep(0.5)  # anything sent twice would arrive now
    finally:
        runner.shutdown()
    lateness = sink.first_arrival() - due
    print(f"\nfirst reminder handed to SMTP {lateness * 1000:.0f} ms after its due time; "
          f"all {RECIPIENTS} within {(max(sink.arrivals) - due):.2f} s")
    assert 0 <= lateness <= 1.0
    assert sink.recipients() == {email: 1 for email in emails}
    db.session.expire_all()
    job = db.session.get(PlannedJob, job.id)
    assert (job.state, job.messages_queued) == ("done", RECIPIENTS)
