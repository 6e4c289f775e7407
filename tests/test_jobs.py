"""A reminder due 2 s ahead reaches a real SMTP server within 1 s of its due time, once per recipient.

The app's clock starts at the fixed `now` and runs at the system clock's pace, so the runner's timer
really waits for the due time while every time it reads or writes is independent of today's date.
"""

from __future__ import annotations

import threading
import time
import traceback
from datetime import timedelta

import pytest
from sqlalchemy import select

from scheduler import jobs
from scheduler.extensions import db
from scheduler.models import PlannedJob
from tests.support import TimedSink, add_confirmed

#: Measures a reminder's lateness: run alone, not beside other tests (pyproject: the timing marker).
pytestmark = pytest.mark.timing

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


def test_reminder_due_in_two_seconds_reaches_smtp_within_one_second(app, create_event, sink, now):
    event = create_event(starts_at=now + timedelta(seconds=62), ends_at=now + timedelta(hours=1),
                         reminder_offsets=[60], briefing_enabled=False, nudge_enabled=False, thanks_enabled=False)
    emails = add_confirmed(db.session, event.id, RECIPIENTS, now=now)
    job = db.session.scalar(select(PlannedJob).where(PlannedJob.event_id == event.id))
    job_id, due_in = job.id, (job.due_at - now).total_seconds()
    assert due_in == 2.0
    db.session.commit()  # on SQLite an open transaction here would hold the write lock
    # The clock starts running only now, however long the setup took on a busy machine: the job is due
    # 2 s from here, on the system clock as the sink's arrival times.
    started = time.time()
    app.config["CLOCK"] = lambda: now + timedelta(seconds=time.time() - started)
    due = started + due_in
    runner = jobs.Runner(app, mode="embedded").start()
    try:
        arrived = sink.wait_for(RECIPIENTS, timeout=30)
    finally:
        runner.shutdown()  # waits for its running jobs: whatever it sent has reached the sink
    assert arrived, f"only {len(sink.messages)} arrived"
    lateness = sink.first_arrival() - due
    print(f"\nfirst reminder handed to SMTP {lateness * 1000:.0f} ms after its due time; "
          f"all {RECIPIENTS} within {(max(sink.arrivals) - due):.2f} s")
    assert 0 <= lateness <= 1.0
    assert sink.recipients() == {email: 1 for email in emails}
    db.session.expire_all()
    job = db.session.get(PlannedJob, job_id)
    assert (job.state, job.messages_queued) == ("done", RECIPIENTS)


def test_shutdown_while_a_load_is_running_waits_for_it_and_returns(app, now):
    # APScheduler's shutdown(wait=True) holds its job-store lock while it waits for running jobs: a load
    # that reaches for the scheduler after that would wait for ever, and so would the shutdown.
    entered, release = threading.Event(), threading.Event()

    def clock():
        if any(frame.name == "load" for frame in traceback.extract_stack()):
            entered.set()
            release.wait(10)
        return now

    app.config["CLOCK"] = clock
    runner = jobs.Runner(app, mode="embedded").start()
    assert entered.wait(10), "the first load did not run"
    stopper = threading.Thread(target=runner.shutdown, daemon=True)
    stopper.start()
    deadline = time.monotonic() + 10
    while runner.scheduler.running and time.monotonic() < deadline:  # shutdown has begun
        time.sleep(0.01)
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert not runner.scheduler.running


def test_a_scheduler_process_freezes_its_set_up_collects_young_objects_less_often_and_passes_the_gil_sooner():
    """In a process of its own: freezing is for the life of the process, not for the test run's."""
    import subprocess
    import sys

    code = ("import gc; from scheduler import create_app, jobs; create_app({'SECRET_KEY': 'x', 'SCHEDULER_MODE': 'off', "
            "'DATABASE_URL': 'sqlite://'}); before = gc.get_threshold(); jobs.tune_process(); "
            "import sys; print(before[0], gc.get_threshold()[0], gc.get_freeze_count() > 10_000, "
            "gc.get_threshold()[1:] == before[1:], sys.getswitchinterval())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["700", str(jobs.GC_YOUNG_THRESHOLD), "True", "True", str(jobs.SWITCH_INTERVAL)]
