"""What the process tests of mail after a crash share (reminders; announcements and follow-ups): `flask scheduler
run` processes on one instance folder, and one-query reads that never hold a transaction open while they work."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import SchedulerHeartbeat
from tests.support import TimedSink, flask_process, wait_for, write_instance


def scheduler_instance(path: Path, *, database_url: str, mail_url: str, **settings) -> Path:
    """An instance folder for scheduler processes (the default claim settings), plus `settings`."""
    return write_instance(
        path, DATABASE_URL=database_url, MAIL_URL=mail_url, SECRET_KEY="test-secret-key",
        BASE_URL="http://townhall.test", MAIL_FROM="Townhall <events@townhall.test>", SCHEDULER_MODE="off",
        SCHEDULER_POLL_SECONDS=1.0, RATELIMIT_ENABLED=False, DOUBLE_OPT_IN_DEFAULT=False, **settings)


class Schedulers:
    """`flask scheduler run` processes on one instance folder; kills what is left at the end."""

    def __init__(self, instance: Path, logs: Path):
        self.instance, self.logs = instance, logs
        self.started: list[subprocess.Popen] = []

    def start(self, *, wait: bool = True) -> subprocess.Popen:
        process = flask_process(self.instance, "scheduler", "run", log=self.logs / f"scheduler-{len(self.started)}.log")
        self.started.append(process)
        if wait:
            self.wait_started(process)
        return process

    def wait_started(self, process: subprocess.Popen) -> None:
        """Until the process's first heartbeat is in the database."""
        assert wait_for(lambda: beating(process.pid) or process.poll() is not None, 30), self.log_tail()
        assert process.poll() is None, self.log_tail()

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("scheduler-*.log")))

    def drain(self) -> None:
        """SIGTERM every running scheduler and wait for it: nothing it sent can still be on its way."""
        running = [p for p in self.started if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            assert process.wait(30) == 0, self.log_tail()

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def committed(statement):
    """One query, its transaction ended at once: never hold one open while the schedulers work."""
    try:
        return db.session.scalar(statement)
    finally:
        db.session.commit()


def beating(pid: int) -> bool:
    return committed(select(func.count()).select_from(SchedulerHeartbeat)
                     .where(SchedulerHeartbeat.id.like(f"%:{pid}:%"))) > 0


def arrived(sink: TimedSink, suffix: str) -> int:
    """Copies that reached the sink for these addresses (read from the addresses it notes, not the messages)."""
    return sum(sink.recipients(suffix).values())


def copies(sink: TimedSink, suffix: str) -> dict[str, list[tuple[str, str]]]:
    """Each address's (subject, Message-ID) per copy, in the order they arrived."""
    found: dict[str, list[tuple[str, str]]] = {}
    with sink.lock:
        for message in sink.messages:
            address = message["To"].addresses[0].addr_spec
            if address.endswith(suffix):
                found.setdefault(address, []).append((str(message["Subject"]), message["Message-ID"]))
    return found
