"""Reminders end to end through a local SMTP server, beside plain smtplib over one connection, same run.

1. Throughput: one event with N confirmed registrations (default 10,000) and a reminder due 3 s
   after the scheduler starts. Measured from the due time until every outbox row is marked sent:
   compose (render per recipient), insert, claim, build, send over SMTP, mark sent.
   Baseline: the very same messages (rebuilt from the rows beforehand, untimed) sent with plain
   smtplib over one connection.
2. Punctuality: 100 events whose reminders are due in the same second (20 registrations each);
   when each event's first message was handed to SMTP, relative to the due time.

The SMTP server is aiosmtpd's discarding Sink in its own process, so it does not share our GIL.

    .venv/bin/python bench/reminder_bench.py [--db sqlite|postgres] [--recipients 10000] [--events 100]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from sqlalchemy import func, insert, select  # noqa: E402

from bench.server import fresh_database  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ZONES = ("Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo", "America/New_York")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_smtp_sink() -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                                "-l", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the aiosmtpd sink did not start")




def make_event(session, *, now, start, count: int, offset: int, n: int):
    import secrets

    from scheduler.domain import events as event_rules
    from scheduler.models import Registration

    event = event_rules.create_event(
        session, now=now, title=f"Bench event {n}", slug=f"bench-{n}", timezone="Europe/Berlin",
        starts_at=start, ends_at=start + timedelta(hours=1), join_url=f"https://meet.example.org/bench-{n}",
        reminder_offsets=[offset], briefing_enabled=False, nudge_enabled=False, thanks_enabled=False,
        double_opt_in=False)
    event_rules.publish_event(session, event, now=now)
    session.execute(insert(Registration), [
        dict(event_id=event.id, name=f"Attendee {i}", email=f"a{i}@e{n}.bench.test", email_key=f"a{i}@e{n}.bench.test",
             question="", timezone=ZONES[i % len(ZONES)], state="confirmed", token_nonce=secrets.token_hex(16),
             reminders_opt_out=False, ics_sequence=0, consent_at=now, created_at=now, updated_at=now,
             email_verified_at=now, confirmed_at=now)
        for i in range(count)
    ])
    session.commit()
    return event


def wait_all_sent(session, expected: int, timeout: float) -> float:
    """Wait until every row is marked sent; returns when the last one was handed to SMTP.

    Polled slowly so the bench itself takes little of the process's time; the last message's
    own sent_at is the end (its mark is committed with the next few, milliseconds later).
    """
    from scheduler.models import OutboxMessage

    deadline = time.time() + timeout
    while time.time() < deadline:
        sent = session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == "sent"))
        session.commit()
        if sent >= expected:
            last = session.scalar(select(func.max(OutboxMessage.sent_at)))
            session.commit()
            return last.timestamp()
        time.sleep(0.25)
    raise SystemExit(f"only {sent} of {expected} messages were sent within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--per-event", type=int, default=20)
    args = parser.parse_args()

    os.environ.pop("DATABASE_URL", None)
    tmp = Path(tempfile.mkdtemp(prefix="townhall-reminder-bench-"))
    os.environ["TOWNHALL_INSTANCE"] = str(tmp)
    smtp, port = start_smtp_sink()
    try:
        with fresh_database(args.db, tmp, prefix="townhall_bench") as url:
            throughput(url, port, args)
            punctuality(url, port, args)
    finally:
        smtp.terminate()
        smtp.wait()


def build_app(url: str, port: int):
    from scheduler import create_app
    from scheduler.extensions import db

    app = create_app({"DATABASE_URL": url, "MAIL_URL": f"smtp://127.0.0.1:{port}", "SCHEDULER_MODE": "off",
                      "SECRET_KEY": "bench", "BASE_URL": "https://townhall.example.org",
                      "MAIL_FROM": "Townhall <events@townhall.example.org>", "SCHEDULER_POLL_SECONDS": 1.0})
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def throughput(url: str, port: int, args) -> None:
    from scheduler import jobs
    from scheduler.extensions import db
    from scheduler.mail.compose import build_message
    from scheduler.models import OutboxMessage, PlannedJob

    app = build_app(url, port)
    with app.app_context():
        now = datetime.now(UTC)
        event = make_event(db.session, now=now, start=now + timedelta(seconds=63), count=args.recipients,
                           offset=60, n=0)
        due = db.session.scalar(select(PlannedJob.due_at).where(PlannedJob.event_id == event.id)).timestamp()
        db.session.commit()
        runner = jobs.Runner(app, mode="standalone").start()
        try:
            finished = wait_all_sent(db.session, args.recipients, timeout=600)
        finally:
            runner.shutdown()
        first = db.session.scalar(select(func.min(OutboxMessage.sent_at))).timestamp()
        elapsed = finished - due
        rate = args.recipients / elapsed
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        messages = [build_message(row, app.config, now=datetime.now(UTC)) for row in rows]
        db.session.commit()

    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as connection:
        for message in messages:
            connection.send_message(message)
    baseline = len(messages) / (time.perf_counter() - started)
    print(f"database: {args.db}")
    print(f"reminder to {args.recipients:,} registrations, end to end (compose, send, mark sent): "
          f"{rate:,.0f} messages/s ({elapsed:.2f} s from the due time)")
    print(f"plain smtplib, the same {len(messages):,} messages over one connection: {baseline:,.0f} messages/s")
    print(f"ratio: {rate / baseline:.2f}x  (target >= 0.8x)")
    print(f"first message handed to SMTP {1000 * (first - due):.0f} ms after the due time")


def punctuality(url: str, port: int, args) -> None:
    from scheduler import jobs
    from scheduler.extensions import db
    from scheduler.models import OutboxMessage

    app = build_app(url, port)
    with app.app_context():
        now = datetime.now(UTC).replace(microsecond=0)
        start = now + timedelta(seconds=66)
        for n in range(args.events):
            make_event(db.session, now=now, start=start, count=args.per_event, offset=60, n=n + 1)
        due = (start - timedelta(seconds=60)).timestamp()
        assert due - time.time() > 2, "setup took too long: raise the lead time"
        runner = jobs.Runner(app, mode="standalone").start()
        try:
            wait_all_sent(db.session, args.events * args.per_event, timeout=600)
        finally:
            runner.shutdown()
        firsts = [t.timestamp() - due for (t,) in db.session.execute(
            select(func.min(OutboxMessage.sent_at)).group_by(OutboxMessage.event_id))]
        db.session.commit()
    firsts.sort()
    print(f"{args.events} events with reminders due in the same second ({args.per_event} registrations each):")
    print(f"  first message of all handed to SMTP {1000 * firsts[0]:.0f} ms after the due time (target <= 1000 ms)")
    print(f"  each event's first message: median {1000 * statistics.median(firsts):.0f} ms, "
          f"max {1000 * firsts[-1]:.0f} ms after the due time")


if __name__ == "__main__":
    main()
