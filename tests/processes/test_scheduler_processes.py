"""Real `flask scheduler run` processes on one PostgreSQL database, counted at a real SMTP server.

Two processes share a 2,000-message reminder without sending anything twice; a process killed
with SIGKILL mid-way is replaced and nobody is left out; a scheduler that was down across a due
time sends late only if the event has not started; and an event created through a real HTTP
request to a web server with the scheduler off is fired on time by an already-running process.

What arrived is counted once the schedulers have stopped cleanly (SIGTERM: running jobs finish,
then the process exits), so nothing sent twice can still be on its way.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import OutboxMessage, PlannedJob, SchedulerHeartbeat, User
from tests.processes.support import Schedulers
from tests.support import (
    TimedSink,
    add_confirmed,
    children_of,
    flask_process,
    free_port,
    process_gone,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def backend():
    return "postgres"  # several processes on one database: what production runs


@pytest.fixture
def sink():
    server = TimedSink().start()
    yield server
    server.stop()


class Processes(Schedulers):
    """Scheduler processes (support.Schedulers) and web processes on one instance folder."""

    def __init__(self, instance: Path, logs: Path):
        super().__init__(instance, logs)
        self.webs: list[subprocess.Popen] = []

    def scheduler(self) -> subprocess.Popen:
        """A standalone scheduler, returned once its first heartbeat is in the database."""
        return self.start()

    def web(self) -> str:
        """A web server with the scheduler off, returned once it answers."""
        port = free_port()
        process = flask_process(self.instance, "run", "--host", "127.0.0.1", "--port", str(port), "--no-reload",
                                log=self.logs / f"web-{len(self.webs)}.log", SCHEDULER_MODE="off")
        self.webs.append(process)
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return requests.get(url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return process.poll() is not None
        wait_for(up, 30)
        assert process.poll() is None, self.log_tail()
        return url

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("*.log")))

    def kill_all(self) -> None:
        super().kill_all()
        for process in self.webs:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def processes(app, tmp_path, sink):
    instance = tmp_path / "instance"
    instance.mkdir()
    settings = dict(
        DATABASE_URL=app.config["DATABASE_URL"], MAIL_URL=sink.url, SECRET_KEY="test-secret-key",
        BASE_URL="http://townhall.test", MAIL_FROM="Townhall <events@townhall.test>", SCHEDULER_MODE="standalone",
        SCHEDULER_POLL_SECONDS=1.0, SCHEDULER_JOB_LEASE_SECONDS=3, OUTBOX_LEASE_SECONDS=3, SCHEDULER_CLAIM_TIMEOUT_SECONDS=3,
        OUTBOX_RETRY_BASE_SECONDS=1, RATELIMIT_ENABLED=False, DOUBLE_OPT_IN_DEFAULT=False,
    )
    (instance / "config.py").write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()))
    runner = Processes(instance, tmp_path)
    yield runner
    runner.kill_all()


def heartbeats() -> int:
    count = db.session.scalar(select(func.count()).select_from(SchedulerHeartbeat))
    db.session.commit()  # never leave a transaction open while other processes work
    return count


def job_of(event_id: int) -> PlannedJob:
    db.session.expire_all()
    job = db.session.scalar(select(PlannedJob).where(PlannedJob.event_id == event_id, PlannedJob.kind == "reminder"))
    db.session.commit()
    return job


def reminder_event(create_event, *, due_in: float, starts_after_due: float = 60, offset: int | None = None):
    """A published event whose only job is a reminder due in `due_in` seconds."""
    now = datetime.now(UTC)
    offset = offset if offset is not None else int(starts_after_due)
    return create_event(starts_at=now + timedelta(seconds=due_in + offset), ends_at=now + timedelta(hours=2),
                        reminder_offsets=[offset], briefing_enabled=False, nudge_enabled=False,
                        thanks_enabled=False)


def sender_pids(event_id: int) -> Counter:
    """Sent messages of the event per scheduler process: a sent row keeps the name (host:pid:...) of its sender."""
    rows = db.session.scalars(select(OutboxMessage.claimed_by).where(
        OutboxMessage.event_id == event_id, OutboxMessage.state == "sent")).all()
    db.session.commit()
    return Counter(int(worker.split(":")[1]) for worker in rows)


def test_two_scheduler_processes_share_a_reminder_and_send_each_once(app, create_event, processes, sink):
    first, second = processes.scheduler(), processes.scheduler()
    event = reminder_event(create_event, due_in=3)
    emails = add_confirmed(db.session, event.id, 2000, now=datetime.now(UTC))
    suffix = f"@e{event.id}.example.org"
    assert sink.wait_until(lambda: len(sink.messages) >= 2000, 90), processes.log_tail()
    processes.drain()
    assert sink.recipients(suffix) == {email: 1 for email in emails}
    by_process = sender_pids(event.id)
    print(f"\nmessages sent per process: {dict(by_process)}")
    assert set(by_process) == {first.pid, second.pid}
    assert job_of(event.id).state == "done"


def test_scheduler_killed_mid_fan_out_is_replaced_and_nobody_is_left_out(app, create_event, processes, sink):
    victim = processes.scheduler()
    event = reminder_event(create_event, due_in=3)
    emails = add_confirmed(db.session, event.id, 2000, now=datetime.now(UTC))
    suffix = f"@e{event.id}.example.org"
    # Killed as soon as mail starts arriving: the fan-out is usually still queuing then.
    assert sink.wait_until(lambda: len(sink.messages) >= 5, 60), processes.log_tail()
    relays = children_of(victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    # Its mail relays finish the message each had in hand, then see it gone and exit.
    assert wait_for(lambda: all(process_gone(pid) for pid in relays), 10)
    # Dead, and no other scheduler yet: everything the sink has was sent by the victim.
    with sink.lock:
        from_victim = {m["To"].addresses[0].addr_spec for m in sink.messages}
    # The rows stay as the victim left them until the replacement starts.
    job = job_of(event.id)
    in_flight = db.session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.event_id == event.id, OutboxMessage.state == "sending"))
    unmarked = {r.to_addr for r in db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.event_id == event.id, OutboxMessage.state == "sending"))}
    db.session.commit()
    processes.scheduler()
    assert sink.wait_until(lambda: len(set(sink.addresses)) >= 2000, 90), processes.log_tail()
    processes.drain()
    counts = sink.recipients(suffix)
    duplicates = sum(counts.values()) - len(counts)
    received_at_kill = len(from_victim)
    unmarked_but_received = len(unmarked & from_victim)
    print(f"\nkilled after {received_at_kill} of its messages reached the sink, job {job.state} with {job.messages_queued} of 2000 queued, "
          f"{in_flight} claimed and unmarked ({unmarked_but_received} of them already received); "
          f"after restart: {duplicates} duplicate(s)")
    assert set(counts) == set(emails)
    assert duplicates <= in_flight
    assert duplicates == unmarked_but_received
    assert job_of(event.id).state == "done"


def test_scheduler_down_across_due_time_sends_late_only_before_the_start(app, create_event, processes, sink):
    process = processes.scheduler()
    upcoming = reminder_event(create_event, due_in=5, offset=55)
    started = reminder_event(create_event, due_in=4, offset=3)  # starts 7 s from now
    upcoming_emails = add_confirmed(db.session, upcoming.id, 100, now=datetime.now(UTC))
    add_confirmed(db.session, started.id, 50, now=datetime.now(UTC))
    time.sleep(1.5)  # both are timed in the running process now
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    assert heartbeats() == 0  # a clean stop removes its heartbeat
    wait_for(lambda: datetime.now(UTC) > started.starts_at + timedelta(seconds=0.5), 15)
    assert (job_of(upcoming.id).state, job_of(started.id).state) == ("planned", "planned")
    assert sink.messages == []
    processes.scheduler()
    assert sink.wait_until(lambda: len(sink.messages) >= 100, 30), processes.log_tail()
    processes.drain()
    assert sink.recipients() == {email: 1 for email in upcoming_emails}
    late = job_of(started.id)
    assert late.state == "skipped"
    assert late.reason.startswith("not sent: the event had already started when the job ran")
    assert job_of(upcoming.id).state == "done"


def test_event_created_over_http_is_fired_on_time_by_a_running_scheduler(app, processes, sink):
    processes.scheduler()
    base = processes.web()
    user = User(email="organiser@townhall.test", name="Organiser")
    user.set_password("correct horse battery")
    db.session.add(user)
    db.session.commit()
    browser = requests.Session()
    token = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
    page = browser.get(base + "/admin/login").text
    browser.post(base + "/admin/login", data={"email": user.email, "password": "correct horse battery",
                                              "csrf_token": token.search(page).group(1)})
    start = (datetime.now(UTC) + timedelta(seconds=70)).replace(microsecond=0)
    page = browser.get(base + "/admin/events/new").text
    response = browser.post(base + "/admin/events/new", allow_redirects=False, data={
        "csrf_token": token.search(page).group(1), "title": "Created over HTTP", "kind": "talk", "timezone": "UTC",
        "starts_at": f"{start:%Y-%m-%dT%H:%M:%S}", "ends_at": f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}",
        "join_url": "https://meet.example.org/http", "reminders": "1m", "briefing_offset": "3d",
        "nudge_offset": "15m", "thanks_offset": "1h"})
    assert response.status_code == 302, response.text[:2000]
    event_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    page = browser.get(f"{base}/admin/events/{event_id}").text
    response = browser.post(f"{base}/admin/events/{event_id}/publish", allow_redirects=False,
                            data={"csrf_token": token.search(page).group(1)})
    assert response.status_code == 302
    emails = add_confirmed(db.session, event_id, 50, now=datetime.now(UTC))
    due = job_of(event_id).due_at.timestamp()
    assert due == (start - timedelta(minutes=1)).timestamp()
    assert due - time.time() > 3, "setup took too long for the test to mean anything"
    assert sink.wait_until(lambda: len(sink.messages) >= 50, due - time.time() + 30), processes.log_tail()
    processes.drain()
    lateness = sink.first_arrival() - due
    print(f"\nevent created over HTTP: first reminder handed to SMTP {1000 * lateness:.0f} ms after its due time")
    assert 0 <= lateness <= 1.0
    assert sink.recipients() == {email: 1 for email in emails}
