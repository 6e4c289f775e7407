"""What a reminder's fan-out costs in CPU per message, part by part, against plain smtplib's two sides.

Each part is measured alone, on one thread of an otherwise idle process, on a SQLite file (or PostgreSQL
with --db postgres):

- the baseline's sides: plain smtplib sending the messages over --connections connections (one thread
  each) to aiosmtpd's Sink in its own process: the client's CPU and the server's, per message; and the
  same with the messages' composed bytes (smtplib's sendmail, as a relay sends them);
- the scheduler's own work: firing the reminder (rendering and queuing the rows), claiming them 50 at a
  time, building each message, and a whole delivery run (claim, compose, send, mark, its threads) through
  a transport that accepts every message at once.

The baseline's client also flattens each message, which the delivery run does when it composes; the
floor counts an SMTP client of the composed bytes instead (what a relay process does). Their sum is what
two cores must do per message whatever the design; dividing the cores by it bounds the
messages per second, which the script prints against 0.8x the baseline measured in the same run. The
delivery through relays adds the relay processes' own CPU on top.

    .venv/bin/python bench/delivery_floor.py [--db sqlite|postgres] [--recipients 4000] [--connections 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import smtplib
import sys
import tempfile
import threading
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench.reminder_bench import HOST, PG_ADMIN, build_app, make_event, smtplib_seconds, start_smtp_sink  # noqa: E402
from tests.support import fresh_database  # noqa: E402


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Accepting:
    """A transport whose server accepts every message at once: the delivery run's own cost."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def send(self, message) -> None:
        pass


def measure(url: str, port: int, args) -> dict[str, float]:
    from scheduler import dispatch
    from scheduler.extensions import db
    from scheduler.mail import outbox
    from scheduler.mail.compose import build_message, prepare
    from scheduler.models import OutboxMessage, PlannedJob

    n = args.recipients
    app = build_app(url, port, args.connections)
    per: dict[str, float] = {}
    with app.app_context():
        now = datetime.now(UTC)
        make_event(db.session, now=now, start=now + timedelta(hours=2), count=n, n=1)
        job = db.session.scalars(select(PlannedJob).where(PlannedJob.kind == "reminder")).one()
        due = job.due_at
        db.session.commit()

        started = own_cpu()
        dispatch.fire(db.session, job.id, worker="bench", clock=lambda: due)
        per["fire"] = own_cpu() - started

        rows, per["claim"] = [], 0.0
        while True:
            started = own_cpu()
            claimed = outbox.claim(db.session, worker="bench", now=due, limit=50)
            per["claim"] += own_cpu() - started
            if not claimed:
                break
            rows += claimed
            # Sent, as delivery would mark them: the claims that follow read no more rows in "sending".
            db.session.execute(OutboxMessage.__table__.update().where(OutboxMessage.id.in_([r.id for r in claimed]))
                               .values(state="sent"))
            db.session.commit()
        started = own_cpu()
        messages = [build_message(row, app.config, now=due) for row in rows]
        per["build"] = own_cpu() - started
        flat = [prepare(row, app.config, now=due) for row in rows]

        # The same rows queued again, for a whole delivery run of them.
        db.session.execute(OutboxMessage.__table__.update().values(state="queued", claimed_by=None))
        db.session.commit()
        started = own_cpu()
        report = outbox.deliver(db.session, Accepting, app, worker="bench", clock=lambda: due, limit=50, chunks=None)
        per["delivery without SMTP"] = own_cpu() - started
        assert report.sent == n, report
        db.engine.dispose()

    started, server = own_cpu(), cpu_of(args.sink_pid)
    seconds = smtplib_seconds(messages, port, args.connections)
    per["smtplib client"] = own_cpu() - started
    per["SMTP server"] = cpu_of(args.sink_pid) - server
    # What a relay does: the same dialogue with the bytes composed already.
    started, server = own_cpu(), cpu_of(args.sink_pid)
    send_bytes(flat, port, args.connections)
    per["SMTP client of composed bytes"] = own_cpu() - started
    per["SMTP server for them"] = cpu_of(args.sink_pid) - server
    per = {part: cpu / n for part, cpu in per.items()}
    per["baseline rate"] = n / seconds
    return per


def send_bytes(prepared: list, port: int, connections: int) -> None:
    def send(share: list) -> None:
        with smtplib.SMTP(HOST, port) as connection:
            for message in share:
                connection.sendmail(message.sender, list(message.recipients), message.data)

    threads = [threading.Thread(target=send, args=(prepared[i::connections],)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--recipients", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    sink, port = start_smtp_sink()
    args.sink_pid = sink.pid
    try:
        with tempfile.TemporaryDirectory() as folder, (
                fresh_database("postgres", folder, prefix="townhall_floor", admin_url=PG_ADMIN)
                if args.db == "postgres" else nullcontext(f"sqlite:///{folder}/floor.db")) as url:
            per = measure(url, port, args)
    finally:
        sink.kill()
        sink.wait()
    cores = os.cpu_count() or 1
    baseline = per.pop("baseline rate")
    print(f"CPU per message, {args.db}, {args.recipients:,} recipients, {args.connections} connection(s):")
    for part, seconds in per.items():
        print(f"  {part}: {seconds * 1e6:,.0f} µs")
    floor = (per["SMTP client of composed bytes"] + per["SMTP server for them"] + per["fire"]
             + per["delivery without SMTP"])
    smtplib_busy = baseline * (per["smtplib client"] + per["SMTP server"]) / cores
    print(f"baseline: {baseline:,.0f} messages/s, the cores {100 * smtplib_busy:.0f} % busy; 0.8x is "
          f"{0.8 * baseline:,.0f}/s")
    print(f"the fan-out's floor (SMTP client of the bytes, its server, fire, delivery without SMTP): {floor * 1e6:,.0f} µs a message: "
          f"at most {cores / floor:,.0f}/s with {cores} cores fully busy ({cores / floor / baseline:.2f}x), "
          f"{smtplib_busy * cores / floor:,.0f}/s as busy as smtplib keeps them ({smtplib_busy * cores / floor / baseline:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
