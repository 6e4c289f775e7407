"""Reminder fan-out end to end through a local SMTP server, against plain smtplib over the same connections, same run.

Each run, on a fresh database (a SQLite file, or a PostgreSQL database on 127.0.0.1:5432 dropped
afterwards), with the scheduler running in this process as `flask scheduler run` runs it:

1. Throughput: one event with --recipients confirmed registrations and a reminder due a few
   seconds after set-up began (the scheduler is running by then), timed from the due time until every outbox row is marked sent (the
   fan-out composes and queues the messages; delivery claims, builds, sends and marks them).
   Baseline: the very same messages (built from the rows beforehand, untimed) sent with plain
   smtplib over --connections connections (one thread each when more than one). The scheduler is
   given the same number as MAIL_CONNECTIONS (a version without that setting ignores it).
2. Punctuality: --events events whose reminders fall due in the same second (--per-event
   registrations each): when each event's first message was handed to SMTP, after the due time.
3. Fairness, from the same reminders as they reached the recording SMTP server
   (bench/smtp_recorder.py): each event's first message after the due time (p99 over the events),
   and the last message of all after the due time against plain smtplib sending the same messages
   (built from the rows afterwards, untimed) over --connections connections to the same server.

The SMTP servers run on 127.0.0.1, each in its own process so that it does not share this
process's GIL: aiosmtpd's discarding Sink for the throughput, the recorder for the rest.

Targets (issue 16): the fan-out at least 0.9x plain smtplib over one connection on SQLite, 0.8x on
PostgreSQL, and 0.8x with more than one connection; the first message of the simultaneous
reminders handed to SMTP within 1 s of the due time; each event's first message at most 1 s after
the due time (p99), and the last message of all within 1.5x the time smtplib takes.

    .venv/bin/python bench/reminder_bench.py [--db sqlite|postgres] [--runs 5] [--recipients 10000]
        [--events 100] [--per-event 20] [--connections 1]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.smtp_recorder import Recorder  # noqa: E402
from tests.support import add_confirmed, free_port, fresh_database  # noqa: E402

HOST = "127.0.0.1"  # the bench starts its own SMTP server and talks to nothing else
PG_ADMIN = f"postgresql+psycopg://postgres@{HOST}:5432/postgres"
RATIO_TARGETS = {("sqlite", 1): 0.9, ("postgres", 1): 0.8}  # (database, connections) -> ratio; 0.8 with more
PUNCTUAL_TARGET_MS = 1000
FAIR_TARGET_MS = 1000  # each event's first message, p99 over the events
LAST_TARGET = 1.5  # the last message of all, against plain smtplib over as many connections
EVENT_OF = re.compile(r"@e(\d+)\.")  # add_confirmed's addresses: person<i>@e<event id>.<domain>
LEAD = 5  # seconds from the start of set-up to the reminder's due time: set-up and the scheduler's start fit in it
OFFSET = 60  # the reminder's offset before the event starts, in seconds


def start_smtp_sink() -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                                "-l", f"{HOST}:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise SystemExit("the aiosmtpd sink did not start")


def build_app(url: str, port: int, connections: int = 1):
    """The app on an empty schema, mail to the sink over `connections` connections, no scheduler of its own."""
    from scheduler import create_app
    from scheduler.extensions import db

    app = create_app({"DATABASE_URL": url, "MAIL_URL": f"smtp://{HOST}:{port}", "SCHEDULER_MODE": "off",
                      "SECRET_KEY": "bench", "BASE_URL": "https://townhall.example.org",
                      "MAIL_FROM": "Townhall <events@townhall.example.org>", "SCHEDULER_POLL_SECONDS": 1.0,
                      "MAIL_CONNECTIONS": connections})
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def make_event(session, *, now: datetime, start: datetime, count: int, n: int) -> int:
    """A published event starting at `start` with one reminder OFFSET seconds before, and `count`
    confirmed registrations; its id."""
    from scheduler.domain import events as event_rules

    event = event_rules.create_event(
        session, now=now, title=f"Bench event {n}", slug=f"bench-{n}", timezone="Europe/Berlin",
        starts_at=start, ends_at=start + timedelta(hours=1), join_url=f"https://meet.example.org/bench-{n}",
        reminder_offsets=[OFFSET], briefing_enabled=False, nudge_enabled=False, thanks_enabled=False,
        double_opt_in=False)
    event_rules.publish_event(session, event, now=now)
    session.commit()
    add_confirmed(session, event.id, count, now=now, domain="bench.test")
    return event.id


def run_scheduler_until_sent(app, expected: int, timeout: float = 600) -> None:
    """Run the scheduler until `expected` outbox rows are marked sent (polled slowly, so the
    bench itself takes little of the process's time)."""
    from scheduler import jobs
    from scheduler.extensions import db
    from scheduler.models import OutboxMessage

    # End this session's transaction first: on SQLite the one reading the event's id after set-up holds
    # the write lock, and the runner writes its first heartbeat as it starts.
    db.session.commit()
    jobs.tune_process()  # as `flask scheduler run` does before it starts
    runner = jobs.Runner(app, mode="standalone").start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                     .where(OutboxMessage.state == "sent"))
            db.session.commit()
            if sent >= expected:
                return
            time.sleep(0.25)
        raise SystemExit(f"only {sent} of {expected} messages were sent within {timeout:.0f} s")
    finally:
        runner.shutdown()


def smtplib_seconds(messages: list, port: int, connections: int) -> float:
    """Seconds plain smtplib takes to send `messages` over `connections` connections, one thread each."""
    def send(share: list) -> None:
        with smtplib.SMTP(HOST, port) as connection:
            for message in share:
                connection.send_message(message)

    if connections == 1:
        started = time.perf_counter()
        send(messages)
        return time.perf_counter() - started
    threads = [threading.Thread(target=send, args=(messages[i::connections],)) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def built_messages(app) -> list:
    """Every outbox row as the message smtplib sends in the baseline (untimed)."""
    from scheduler.extensions import db
    from scheduler.mail.compose import build_message
    from scheduler.models import OutboxMessage

    rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    messages = [build_message(row, app.config, now=datetime.now(UTC)) for row in rows]
    db.session.commit()
    return messages


def throughput(url: str, port: int, args) -> dict:
    from scheduler.extensions import db
    from scheduler.models import OutboxMessage

    app = build_app(url, port, args.connections)
    with app.app_context():
        now = datetime.now(UTC)
        make_event(db.session, now=now, start=now + timedelta(seconds=OFFSET + LEAD), count=args.recipients, n=0)
        due = (now + timedelta(seconds=LEAD)).timestamp()
        assert due - time.time() > 0.5, "set-up took too long: raise LEAD"
        run_scheduler_until_sent(app, args.recipients)
        # The last message's own sent_at is the end: its mark is committed with the next few, a moment later.
        first, last = (t.timestamp() for t in db.session.execute(
            select(func.min(OutboxMessage.sent_at), func.max(OutboxMessage.sent_at))).one())
        messages = built_messages(app)
        db.engine.dispose()

    baseline = len(messages) / smtplib_seconds(messages, port, args.connections)
    rate = args.recipients / (last - due)
    result = {"rate": rate, "baseline": baseline, "ratio": rate / baseline, "first_ms": 1000 * (first - due)}
    over = "one connection" if args.connections == 1 else f"{args.connections} connections"
    print(f"  fan-out to {args.recipients:,}: {rate:,.0f} messages/s from the due time to the last sent; "
          f"plain smtplib, same {len(messages):,} messages, {over}: {baseline:,.0f} messages/s; "
          f"ratio {result['ratio']:.2f}; first message {result['first_ms']:.0f} ms after the due time")
    return result


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered) - 1e-9) - 1))]


def punctuality(url: str, recorder: Recorder, args) -> dict:
    """Punctuality from the rows' sent times, then fairness from what reached the recorder."""
    from scheduler.extensions import db
    from scheduler.models import OutboxMessage

    app = build_app(url, recorder.port, args.connections)
    before = len(recorder.read())
    with app.app_context():
        now = datetime.now(UTC).replace(microsecond=0)
        start = now + timedelta(seconds=OFFSET + 6)
        for n in range(1, args.events + 1):
            make_event(db.session, now=now, start=start, count=args.per_event, n=n)
        due = (start - timedelta(seconds=OFFSET)).timestamp()
        assert due - time.time() > 0.5, "set-up took too long: fewer --events"
        run_scheduler_until_sent(app, args.events * args.per_event)
        firsts = sorted(t.timestamp() - due for (t,) in db.session.execute(
            select(func.min(OutboxMessage.sent_at)).group_by(OutboxMessage.event_id)))
        db.session.commit()
        messages = built_messages(app)
        db.engine.dispose()
    result = {"first_ms": 1000 * firsts[0], "median_ms": 1000 * statistics.median(firsts), "max_ms": 1000 * firsts[-1]}
    print(f"  {args.events} events due in the same second ({args.per_event} registrations each): first message "
          f"of all {result['first_ms']:.0f} ms after the due time; each event's first: median "
          f"{result['median_ms']:.0f} ms, max {result['max_ms']:.0f} ms")
    return result | fairness(recorder.read()[before:], due, messages, recorder, args)


def fairness(records: list[dict], due: float, messages: list, recorder: Recorder, args) -> dict:
    """Each event's first arrival at the recorder, and the last of all against smtplib over as many connections."""
    arrivals: dict[int, float] = {}
    for record in records:
        event = int(EVENT_OF.search(record["rcpt"][0]).group(1))
        arrivals[event] = min(arrivals.get(event, record["t"]), record["t"])
    firsts = [1000 * (t - due) for t in arrivals.values()]
    last = max(record["t"] for record in records) - due
    baseline = smtplib_seconds(messages, recorder.port, args.connections)
    result = {"fair_median_ms": statistics.median(firsts), "fair_p99_ms": percentile(firsts, 0.99),
              "last_s": last, "smtplib_s": baseline, "last_ratio": last / baseline}
    over = "one connection" if args.connections == 1 else f"{args.connections} connections"
    print(f"  fairness, at the recording server: each event's first message median {result['fair_median_ms']:.0f} ms, "
          f"p99 {result['fair_p99_ms']:.0f} ms after the due time "
          f"[{'PASS' if result['fair_p99_ms'] <= FAIR_TARGET_MS else 'MISS'} p99 <= {FAIR_TARGET_MS} ms]; "
          f"last of all {last:.2f} s after it; plain smtplib, same {len(messages):,} messages, {over}: "
          f"{baseline:.2f} s; {result['last_ratio']:.2f}x "
          f"[{'PASS' if result['last_ratio'] <= LAST_TARGET else 'MISS'} <= {LAST_TARGET}x]")
    return result


def spread(values: list[float], form: str) -> str:
    return f"median {format(statistics.median(values), form)} (range {min(values):{form}}-{max(values):{form}})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", type=int, default=5, help="independent runs, each on a fresh database")
    parser.add_argument("--recipients", type=int, default=10_000, help="registrations of the throughput event")
    parser.add_argument("--events", type=int, default=100, help="events due in the same second")
    parser.add_argument("--per-event", type=int, default=20, help="registrations of each of those events")
    parser.add_argument("--connections", type=int, default=1,
                        help="SMTP connections of the scheduler (MAIL_CONNECTIONS) and of the smtplib baselines")
    args = parser.parse_args()
    if min(args.runs, args.recipients, args.events, args.per_event, args.connections) < 1:
        parser.error("every count must be at least 1")

    print(f"reminder fan-out vs plain smtplib: {args.db}, {args.connections} SMTP connection(s), {args.runs} run(s)")
    os.environ.pop("DATABASE_URL", None)
    fans, punctual = [], []
    with tempfile.TemporaryDirectory(prefix="townhall-reminder-bench-") as tmp:
        os.environ["TOWNHALL_INSTANCE"] = tmp  # the app's instance folder: keep the real one out of it
        smtp, port = start_smtp_sink()
        try:
            with Recorder(Path(tmp) / "recorded.jsonl") as recorder:
                for n in range(1, args.runs + 1):
                    print(f"run {n}:")
                    with fresh_database(args.db, Path(tmp), prefix=f"townhall_bench_{n}", admin_url=PG_ADMIN) as url:
                        fans.append(throughput(url, port, args))
                        punctual.append(punctuality(url, recorder, args))
        finally:
            smtp.terminate()
            smtp.wait()

    ratio_target = RATIO_TARGETS.get((args.db, args.connections), 0.8)
    ratios = [f["ratio"] for f in fans]
    firsts = [p["first_ms"] for p in punctual]
    print(f"fan-out/smtplib over {args.connections} connection(s) {spread(ratios, '.2f')}: at least {ratio_target} in "
          f"{sum(r >= ratio_target for r in ratios)} of {len(ratios)} run(s)")
    print(f"first of the simultaneous reminders, ms after the due time, {spread(firsts, '.0f')}: within "
          f"{PUNCTUAL_TARGET_MS} ms in {sum(f <= PUNCTUAL_TARGET_MS for f in firsts)} of {len(firsts)} run(s)")
    fair = [p["fair_p99_ms"] for p in punctual]
    lasts = [p["last_ratio"] for p in punctual]
    print(f"each event's first message, p99 ms after the due time, {spread(fair, '.0f')}: at most "
          f"{FAIR_TARGET_MS} ms in {sum(f <= FAIR_TARGET_MS for f in fair)} of {len(fair)} run(s)")
    print(f"last of the simultaneous reminders / smtplib over {args.connections} connection(s) {spread(lasts, '.2f')}: "
          f"at most {LAST_TARGET}x in {sum(r <= LAST_TARGET for r in lasts)} of {len(lasts)} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
