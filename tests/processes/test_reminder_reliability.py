"""Issue 16's guarantees on a small scale, with real `flask scheduler run` processes on PostgreSQL and the
default claim settings: a SIGTERMed scheduler exits within 5 s and whoever runs next sends each
reminder once; after a SIGKILL mid delivery the survivor leaves nobody out within 15 s, and a copy
sent twice keeps its Message-ID; a signup during a fan-out gets the reminder or "Starting soon", once.

Every wait polls a condition with a deadline. What arrived is counted once the event's outbox rows
are all marked and its reminder job has finished, or once the processes have stopped.
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

from scheduler.domain import events as event_rules
from scheduler.extensions import db
from scheduler.models import OutboxMessage, PlannedJob
from tests.processes.support import Schedulers, arrived, committed, copies, scheduler_instance
from tests.support import TimedSink, add_confirmed, gunicorn, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
OFFSET = 600  # the reminder's offset: "starts in 10 minutes", so no event starts during a test
EXIT_SECONDS = 5.0
TAKEOVER_SECONDS = 15.0
MAX_DUPLICATES = 10
TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def backend():
    return "postgres"  # several processes on one database: what production runs


@pytest.fixture
def sink():
    server = TimedSink().start()
    yield server
    server.stop()


@pytest.fixture
def instance(app, tmp_path, sink) -> Path:
    return scheduler_instance(tmp_path / "instance", database_url=app.config["DATABASE_URL"], mail_url=sink.url)


@pytest.fixture
def cluster(instance, tmp_path):
    processes = Schedulers(instance, tmp_path)
    yield processes
    processes.kill_all()


def unsent(event_id: int) -> int:
    """The event's outbox rows still queued or claimed and not marked."""
    return committed(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.event_id == event_id, OutboxMessage.state.in_(("queued", "sending"))))


def job_state(event_id: int) -> str:
    return committed(select(PlannedJob.state).where(PlannedJob.event_id == event_id, PlannedJob.kind == "reminder"))


def claims() -> Counter:
    """Process id -> outbox rows it has claimed and not marked (worker names are host:pid:random)."""
    db.session.expire_all()
    found = db.session.execute(select(OutboxMessage.claimed_by, func.count()).where(OutboxMessage.state == "sending")
                               .group_by(OutboxMessage.claimed_by)).all()
    db.session.commit()
    return Counter({int(worker.split(":")[1]): n for worker, n in found if worker and worker.count(":") >= 2})


def reminder_event(recipients: int, *, due_in: float, n: int) -> tuple[int, list[str], str]:
    """A published event with `recipients` confirmed registrations whose one reminder is due in `due_in`
    seconds: (its id, their addresses, the suffix every one of them ends with)."""
    now = datetime.now(UTC)
    start = now + timedelta(seconds=due_in + OFFSET)
    event = event_rules.create_event(
        db.session, now=now, title=f"Reliability {n}", slug=f"reliability-{n}", timezone="Europe/Berlin",
        starts_at=start, ends_at=start + timedelta(hours=1), join_url=f"https://meet.example.org/r{n}",
        reminder_offsets=[OFFSET], briefing_enabled=False, nudge_enabled=False, thanks_enabled=False,
        double_opt_in=False)
    event_rules.publish_event(db.session, event, now=now)
    db.session.commit()
    emails = add_confirmed(db.session, event.id, recipients, now=now)
    return event.id, emails, f"@e{event.id}.example.org"


def delivered(event_id: int) -> bool:
    """The event's reminder job has finished and none of its rows is left to send."""
    return job_state(event_id) in ("done", "skipped") and unsent(event_id) == 0


def settled(sink: TimedSink, event_id: int, emails: list[str], suffix: str) -> bool:
    """Everyone has a reminder, no row of the event is left to send, and its job has finished."""
    return set(emails) <= set(sink.recipients(suffix)) and delivered(event_id)


def ignores_sigterm(pid: int) -> bool:
    """Whether the process has SIGTERM set to ignored (/proc/<pid>/status, SigIgn: a hex mask of signals)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def test_sigterm_mid_fan_out_exits_within_5_s_and_the_next_process_sends_each_reminder_once(app, cluster, sink):
    current = cluster.start()
    event = reminder_event(300, due_in=2, n=0)
    for n in range(1, 4):
        this = event
        event_id, emails, suffix = this
        assert sink.wait_until(lambda s=suffix: arrived(sink, s) >= 30, 30), cluster.log_tail()
        began = time.monotonic()
        current.send_signal(signal.SIGTERM)
        if n == 1:
            # An impatient supervisor signals again while the scheduler stops: once the first signal is
            # handled the process ignores more, so a second one cannot kill the clean stop or the exit.
            assert wait_for(lambda pid=current.pid: ignores_sigterm(pid), 5, step=0.005), cluster.log_tail()
            current.send_signal(signal.SIGTERM)
        try:
            code = current.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"round {n}: no exit 30 s after SIGTERM\n{cluster.log_tail()}")
        took = time.monotonic() - began
        at_exit = arrived(sink, suffix)
        assert (code, took <= EXIT_SECONDS) == (0, True), f"round {n}: exit code {code} after {took:.2f} s"
        # The next round's event is due while the next process also finishes this one.
        if n < 3:
            event = reminder_event(300, due_in=3, n=n)
        current = cluster.start()
        assert wait_for(lambda e=this: settled(sink, *e), 30), (
            f"round {n}: {unsent(event_id)} row(s) unsent, job {job_state(event_id)}\n{cluster.log_tail()}")
        print(f"\nround {n}: exited {took:.2f} s after SIGTERM with {at_exit} of 300 reminders delivered")
        assert sink.recipients(suffix) == {email: 1 for email in emails}, f"round {n}"
    cluster.drain()


def test_sigkill_mid_delivery_loses_nothing_and_a_copy_sent_twice_keeps_its_message_id(app, cluster, sink):
    first, second = cluster.start(wait=False), cluster.start(wait=False)
    cluster.wait_started(first)
    cluster.wait_started(second)
    event_id, emails, suffix = reminder_event(300, due_in=2, n=0)
    assert sink.wait_until(lambda: arrived(sink, suffix) >= 60, 30), cluster.log_tail()
    held = claims()
    victim = second if held[second.pid] > held[first.pid] else first  # the one with more mail in hand
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    victim.wait(10)
    at_kill = arrived(sink, suffix)
    assert wait_for(lambda: settled(sink, event_id, emails, suffix), TAKEOVER_SECONDS + 15), (
        f"not settled {time.monotonic() - killed:.0f} s after the kill: {unsent(event_id)} row(s) unsent, "
        f"job {job_state(event_id)}; {len(sink.recipients(suffix))} of 300 addresses reached\n{cluster.log_tail()}")
    took = time.monotonic() - killed
    cluster.drain()
    ids = {address: [mid for _s, mid in found] for address, found in copies(sink, suffix).items()}
    repeated = {address: found for address, found in ids.items() if len(found) > 1}
    duplicates = sum(len(found) - 1 for found in repeated.values())
    print(f"\nkilled with {held[victim.pid]} message(s) claimed and {at_kill} of 300 delivered; settled {took:.1f} s "
          f"after the kill; {duplicates} duplicate(s)")
    assert set(emails) - set(ids) == set()
    assert {address: found for address, found in repeated.items() if len(set(found)) > 1} == {}
    assert duplicates <= MAX_DUPLICATES
    assert took <= TAKEOVER_SECONDS


def test_signups_during_a_fan_out_get_the_reminder_or_starting_soon_exactly_once(app, instance, cluster, sink):
    scheduler = cluster.start(wait=False)
    with gunicorn(instance, workers=2) as base:
        cluster.wait_started(scheduler)
        event_id, emails, suffix = reminder_event(1000, due_in=2, n=0)
        http = requests.Session()
        form = f"{base}/events/reliability-0/signup"
        token = TOKEN.search(http.get(form, timeout=30).text).group(1)
        late = [f"late{i}@example.org" for i in range(20)]
        states = Counter()
        assert wait_for(lambda: job_state(event_id) != "planned", 30, step=0.005), cluster.log_tail()
        for i, email in enumerate(late):
            # Ten one after the other as soon as the fan-out runs, then ten spread over the delivery.
            if i >= 10:
                wait_for(lambda t=(i - 9) * 90: arrived(sink, suffix) >= t or delivered(event_id), 30)
            states[job_state(event_id)] += 1
            response = http.post(form, timeout=30, data={
                "csrf_token": token, "name": f"Late {i}", "email": email, "timezone": "Europe/Berlin",
                "consent": "y", "question": "", "website": ""})
            assert response.status_code == 200, response.text[:500]

        def subjects() -> dict[str, list[str]]:
            with sink.lock:
                found = {email: [] for email in late}
                for message in sink.messages:
                    address = message["To"].addresses[0].addr_spec
                    if address in found and str(message["Subject"]).startswith(("Reminder: ", "Starting soon: ")):
                        found[address].append(str(message["Subject"]).split(":")[0])
                return found
        assert wait_for(lambda: all(subjects().values()) and settled(sink, event_id, emails, suffix), 30), (
            cluster.log_tail())
        cluster.drain()
    print(f"\nthe reminder job's state at each late signup: {dict(states)}")
    assert {email: kinds for email, kinds in subjects().items() if len(kinds) != 1} == {}
