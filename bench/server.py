"""Run Townhall under gunicorn on 127.0.0.1 with its own instance folder: for benchmarks and tests.

The instance folder holds config.py (SECRET_KEY, DATABASE_URL, ...), so every worker reads the same
settings without racing to create a secret key.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Environment variables that would override the instance config: the server must not inherit them.
CONFIG_ENV = ("DATABASE_URL", "BASE_URL", "MAIL_URL", "MAIL_FROM", "SCHEDULER_MODE", "RATELIMIT_STORAGE_URI",
              "SIGNUP_RATE_LIMIT", "DOUBLE_OPT_IN_DEFAULT", "HOLD_EXPIRY_HOURS")


PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(kind: str, directory: Path, *, prefix: str = "townhall", admin_url: str = PG_ADMIN):
    """Yield the URL of a new empty database: a SQLite file in `directory`, or a PostgreSQL
    database created on the server behind `admin_url` and dropped afterwards."""
    if kind == "sqlite":
        yield "sqlite:///" + str(Path(directory) / f"{prefix}.db")
        return
    import sqlalchemy as sa

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_event(settings: dict, **fields) -> tuple[str, int]:
    """Create the schema in a fresh database and one published event; returns its (slug, id)."""
    from datetime import UTC, datetime, timedelta

    from scheduler import create_app
    from scheduler.domain import events as event_rules
    from scheduler.extensions import db

    app = create_app({**settings, "TESTING": True})
    now = datetime.now(UTC).replace(microsecond=0)
    starts = fields.pop("starts_at", now + timedelta(days=3))
    fields.setdefault("timezone", "Europe/Berlin")
    with app.app_context():
        db.create_all()
        event = event_rules.create_event(db.session, now=now, starts_at=starts, ends_at=starts + timedelta(hours=1),
                                         **fields)
        event_rules.publish_event(db.session, event, now=now)
        db.session.commit()
        slug, event_id = event.slug, event.id
        db.session.remove()
        db.engine.dispose()
    return slug, event_id


def write_instance(path: Path, **settings) -> Path:
    """An instance folder whose config.py sets these values."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.py").write_text("".join(f"{name} = {value!r}\n" for name, value in settings.items()))
    return path


@contextmanager
def gunicorn(instance: Path, *, app: str = "app:app", workers: int = 4, threads: int = 1, timeout: float = 30.0,
             log: Path | None = None, preload: bool = True):
    """Start gunicorn with `workers` processes; yields the base URL; stops it (and its workers) after.

    --preload imports the app once before forking: on a small machine that is seconds of start-up saved.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV}
    env["TOWNHALL_INSTANCE"] = str(instance)
    env["PYTHONPATH"] = str(ROOT)
    command = [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "--threads", str(threads),
               "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT), "--backlog", "2048", "--timeout", "60",
               "--log-level", "warning", *(["--preload"] if preload else []), app]
    out = open(log or instance / "gunicorn.log", "ab")
    process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()


def server_cpu(port: str) -> float:
    """CPU seconds used so far by the gunicorn master and workers bound to this port (Linux /proc)."""
    total = 0
    marker = f"127.0.0.1:{port}".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _wait_ready(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer on {url} within {timeout} s")
