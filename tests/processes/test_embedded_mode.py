"""The embedded scheduler under `gunicorn -w 3`: one scheduler for the instance, and a successor if it dies.

Every scheduler start is logged by the worker that made it; the log is read once gunicorn and all its
workers have exited, so a second scheduler started late cannot go unseen.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request

import pytest
import sqlalchemy as sa

from tests.support import gunicorn, write_instance

pytestmark = pytest.mark.slow
#: The line Runner.start() logs: "scheduler <host>:<pid>:<random> started (embedded mode)".
STARTED = re.compile(r"scheduler \S+?:(\d+):\w+ started \(embedded mode\)")
#: The line Runner.shutdown() logs when the worker exits cleanly.
STOPPED = re.compile(r"scheduler \S+?:(\d+):\w+ stopped")
#: The workers log the scheduler's INFO lines to gunicorn's output; nothing else is added to it.
LOG_CONFIG = {"root": {"level": "WARNING", "handlers": ["console"]}, "loggers": {"scheduler.jobs": {"level": "INFO"}}}


def hit(base: str, times: int) -> None:
    for _ in range(times):
        with urllib.request.urlopen(base + "/", timeout=5) as response:
            response.read()


def test_gunicorn_workers_run_one_embedded_scheduler_and_replace_it(tmp_path):
    database = tmp_path / "townhall.db"
    db_url = f"sqlite:///{database}"
    instance = write_instance(tmp_path / "instance", SECRET_KEY="embedded-test", DATABASE_URL=db_url,
                              SCHEDULER_MODE="embedded", SCHEDULER_POLL_SECONDS=0.5,
                              OUTBOX_DIR=str(tmp_path / "outbox"))
    log_config, log = tmp_path / "logging.json", tmp_path / "gunicorn.log"
    log_config.write_text(json.dumps(LOG_CONFIG))
    from scheduler import create_app
    from scheduler.extensions import db

    app = create_app({"DATABASE_URL": db_url, "SECRET_KEY": "x", "TESTING": True})
    with app.app_context():
        db.create_all()
        db.engine.dispose()
    with gunicorn(instance, workers=3, log=log, args=("--log-config-json", str(log_config))) as base:
        hit(base, 60)  # every worker serves some of these
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _pids(db_url):
            time.sleep(0.2)
        first = _pids(db_url)
        assert len(first) == 1, first
        holder = first.pop()
        os.kill(holder, signal.SIGKILL)  # gunicorn forks a replacement worker
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            hit(base, 10)
            if _pids(db_url) - {holder}:
                break
            time.sleep(0.5)
        successors = _pids(db_url) - {holder}
        assert len(successors) == 1
    # gunicorn and every worker have exited: no scheduler can start any more.
    output = log.read_text()
    assert [int(pid) for pid in STARTED.findall(output)] == [holder, *successors], output[-3000:]
    assert [int(pid) for pid in STOPPED.findall(output)] == [*successors], output[-3000:]  # at the worker's exit


def _pids(db_url: str) -> set[int]:
    """Processes whose heartbeat row exists (a killed one keeps its row; callers subtract it)."""
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM scheduler_heartbeats")).scalars().all()
    engine.dispose()
    return {int(i.split(":")[1]) for i in ids}
