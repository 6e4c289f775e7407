"""Helpers the tests share: configs, services to start (SMTP, gunicorn, databases), forms posted as a browser
would, bulk rows, and the browser checks. Fixtures stay in the conftest.py files, which import from here."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from scheduler.models import OutboxMessage, Registration

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


# --- services and configuration ----------------------------------------------------------------

def require(flag: str, reason: str):
    """Skip locally with a reason; in CI (flag set) a missing service is a failure."""
    if os.environ.get(flag) == "1":
        pytest.fail(f"{reason} ({flag}=1)")
    pytest.skip(reason)


def postgres_available() -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=1):
            return True
    except OSError:
        return False


def base_config(tmp_path, **overrides) -> dict:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SCHEDULER_MODE": "off",
        "BASE_URL": "http://townhall.test",
        "MAIL_URL": "",
        "MAIL_FROM": "Townhall <events@townhall.test>",
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "RATELIMIT_ENABLED": False,
        "RATELIMIT_STRATEGY": "moving-window",  # a test enabling limits never straddles a window's edge
        "DOUBLE_OPT_IN_DEFAULT": False,
        "UPDATE_BATCH_SECONDS": 0,  # event updates are due at once (still folded while queued)
    }
    config.update(overrides)
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def fresh_database(kind: str, directory: Path, *, prefix: str = "townhall", admin_url: str = PG_ADMIN_URL):
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


def seed_event(settings: dict, **fields) -> tuple[str, int]:
    """Create the schema in a fresh database and one published event; returns its (slug, id)."""
    from datetime import UTC, timedelta

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


# --- gunicorn ----------------------------------------------------------------------------------

#: Environment variables that would override the instance config: the server must not inherit them.
CONFIG_ENV = ("DATABASE_URL", "BASE_URL", "MAIL_URL", "MAIL_FROM", "SCHEDULER_MODE", "RATELIMIT_STORAGE_URI",
              "SIGNUP_RATE_LIMIT", "DOUBLE_OPT_IN_DEFAULT", "HOLD_EXPIRY_HOURS")


def write_instance(path: Path, **settings) -> Path:
    """An instance folder whose config.py sets these values."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.py").write_text("".join(f"{name} = {value!r}\n" for name, value in settings.items()))
    return path


@contextmanager
def gunicorn(instance: Path, *, app: str = "app:app", workers: int = 4, threads: int = 1, timeout: float = 30.0,
             log: Path | None = None, preload: bool = True, args: tuple[str, ...] = ()):
    """Start gunicorn with `workers` processes (and any further `args`); yields the base URL; stops it (and
    its workers) after, waiting for them to exit.

    --preload imports the app once before forking: on a small machine that is seconds of start-up saved.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV}
    env["TOWNHALL_INSTANCE"] = str(instance)
    env["PYTHONPATH"] = str(ROOT)
    command = [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "--threads", str(threads),
               "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT), "--backlog", "2048", "--timeout", "60",
               "--log-level", "warning", *(["--preload"] if preload else []), *args, app]
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


# --- a real SMTP server ------------------------------------------------------------------------

class SMTPSink:
    """aiosmtpd on 127.0.0.1 that keeps every message; can answer with a chosen error."""

    def __init__(self):
        self.messages: list = []
        self.envelopes: list = []
        self.reply_code: str | None = None  # e.g. "550 5.1.1 No such user" to refuse RCPT/DATA
        self.lock = threading.Lock()
        self.received = threading.Condition(self.lock)
        self.controller = None

    async def handle_DATA(self, server, session, envelope):
        if self.reply_code:
            return self.reply_code
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.received:
            self.envelopes.append(envelope)
            self.messages.append(msg)
            self.received.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.received:
            return self.received.wait_for(lambda: len(self.messages) >= count, timeout=timeout)

    def start(self, port: int = 0):
        from aiosmtpd.controller import Controller

        if port == 0:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.controller = Controller(self, hostname="127.0.0.1", port=port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


class TimedSink(SMTPSink):
    """The SMTP sink, also noting when each message arrived (time.time())."""

    def __init__(self):
        super().__init__()
        self.arrivals: list[float] = []
        self.addresses: list[str] = []
        # Re-entrant: predicates passed to wait_until() read the messages under the same lock.
        self.lock = threading.RLock()
        self.received = threading.Condition(self.lock)

    async def handle_DATA(self, server, session, envelope):
        arrived = time.time()
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            with self.lock:
                self.arrivals.append(arrived)
                self.addresses.append(self.messages[-1]["To"].addresses[0].addr_spec)
        return reply

    def recipients(self, suffix: str = "") -> Counter:
        """How many messages each address received (addresses parsed once, on arrival)."""
        with self.lock:
            return Counter(a for a in self.addresses if a.endswith(suffix))

    def first_arrival(self, suffix: str = "") -> float | None:
        with self.lock:
            times = [t for t, a in zip(self.arrivals, self.addresses, strict=True) if a.endswith(suffix)]
        return min(times) if times else None

    def wait_until(self, predicate, timeout: float) -> bool:
        with self.received:
            return self.received.wait_for(predicate, timeout=timeout)


# --- forms posted as a browser would -----------------------------------------------------------

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(client, path: str = "/admin/login") -> str:
    """Fetch a page with a form and read its CSRF token, as a browser would."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


class Auth:
    def __init__(self, client):
        self.client = client

    def login(self, email="organiser@townhall.test", password="correct horse battery"):
        token = csrf_token(self.client)
        return self.client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token})

    def post(self, path: str, data: dict | None = None, **kwargs):
        """POST a form with a valid CSRF token."""
        data = dict(data or {})
        data.setdefault("csrf_token", csrf_token(self.client, "/admin/" if path.startswith("/admin") else path))
        return self.client.post(path, data=data, **kwargs)


def signup(client, event, **fields):
    """POST the signup form with a CSRF token read from the form page."""
    path = f"/events/{event.slug}/signup"
    data = {"name": "Ada Lovelace", "email": "ada@example.org", "timezone": "Europe/London", "consent": "y",
            "question": "", "website": ""}
    data.update(fields)
    if "csrf_token" not in data:
        data["csrf_token"] = csrf_token(client, path)
    return client.post(path, data=data)


# --- rows --------------------------------------------------------------------------------------

def count(model, *where) -> int:
    from sqlalchemy import func, select

    from scheduler.extensions import db

    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def registration(email: str) -> Registration:
    from sqlalchemy import select

    from scheduler.extensions import db
    from scheduler.models import Registration

    db.session.expire_all()
    return db.session.scalar(select(Registration).where(Registration.email_key == email.lower()))


def token_for(app, reg: Registration) -> str:
    from scheduler.tokens import manage_token

    return manage_token(app.config["SECRET_KEY"], reg)


def outbox(kind: str | None = None) -> list[OutboxMessage]:
    """The queued messages as they will be sent: those composed at delivery are composed now, detached."""
    from sqlalchemy import select

    from scheduler.extensions import db
    from scheduler.mail.outbox import fill
    from scheduler.models import OutboxMessage

    db.session.expire_all()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    rows = list(db.session.scalars(query))
    for row in rows:
        db.session.expunge(row)
        fill(row)
    return rows


def nothing_written() -> bool:
    from scheduler.models import OutboxMessage, Registration

    return count(Registration) == 0 and count(OutboxMessage) == 0


ZONES = ("Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo")


def empty_tables(keep: tuple[str, ...] = ()) -> None:
    """Empty every table but those named in `keep`; ids count from 1 again."""
    from sqlalchemy import text

    from scheduler.extensions import db

    tables = [table for table in db.metadata.sorted_tables if table.name not in keep]
    # DELETE, dependants first: TRUNCATE makes new files for each table and syncs them at commit, 80-120 ms
    # after every PostgreSQL test against 5 ms for this.
    for table in reversed(tables):
        db.session.execute(table.delete())
    if db.engine.dialect.name == "postgresql":  # SQLite gives the next row max(id) + 1
        db.session.execute(text(_RESTART_SEQUENCES), {"tables": [table.name for table in tables]})
    db.session.commit()


#: What TRUNCATE ... RESTART IDENTITY restarts: the sequences owned by these tables' columns.
_RESTART_SEQUENCES = """
    SELECT setval(owned.objid::regclass, 1, false)
    FROM pg_depend AS owned
    JOIN pg_class AS sequence ON sequence.oid = owned.objid AND sequence.relkind = 'S'
    JOIN pg_class AS owner ON owner.oid = owned.refobjid
    WHERE owned.classid = 'pg_class'::regclass AND owned.refclassid = 'pg_class'::regclass
      AND owned.deptype IN ('a', 'i') AND owner.relname = ANY(:tables)
"""


def beat(worker: str, at) -> None:
    """Write scheduler `worker`'s heartbeat as of `at` (its claims stay its own while the beat is fresh)."""
    from scheduler.extensions import db
    from scheduler.models import SchedulerHeartbeat

    row = db.session.get(SchedulerHeartbeat, worker)
    if row is None:
        db.session.add(SchedulerHeartbeat(id=worker, mode="standalone", started_at=at, beat_at=at))
    else:
        row.beat_at = at
    db.session.commit()


def add_confirmed(session, event_id: int, count: int, *, now: datetime, domain: str = "example.org") -> list[str]:
    """Insert `count` confirmed registrations in one statement (signing up one by one is slow); their emails."""
    from sqlalchemy import insert

    from scheduler.models import Registration

    emails = [f"person{i}@e{event_id}.{domain}" for i in range(count)]
    session.execute(insert(Registration), [
        dict(event_id=event_id, name=f"Person {i}", email=email, email_key=email, question="",
             timezone=ZONES[i % len(ZONES)], state="confirmed", token_nonce=secrets.token_hex(16),
             reminders_opt_out=False, ics_sequence=0, consent_at=now, created_at=now, updated_at=now,
             email_verified_at=now, confirmed_at=now)
        for i, email in enumerate(emails)
    ])
    session.commit()
    return emails


@contextmanager
def statements():
    """The SQL statements run on the app's engine inside the block."""
    from sqlalchemy import event

    from scheduler.extensions import db

    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


# --- the browser -------------------------------------------------------------------------------

AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
WIDTHS = {"desktop": (1280, 900), "phone": (375, 740)}
ADMIN_EMAIL, ADMIN_PASSWORD = "organiser@townhall.test", "correct horse battery"


def mail_text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def links_in(text: str, base: str) -> list[str]:
    return re.findall(re.escape(base) + r"[^\s<>\"')\]]+", text)


def axe_violations(page) -> list[dict]:
    """Serious and critical axe-core violations on the current page."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"] if v["impact"] in ("serious", "critical")
    ]


def check_page(page, name: str) -> None:
    """Screenshot the page at desktop and phone widths, check no sideways scrolling on a phone, run axe."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        if label == "phone":
            scroll = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert scroll[0] <= scroll[1], f"{name}: horizontal scrolling at {width} px ({scroll[0]} > {scroll[1]})"
        found = axe_violations(page)
        assert found == [], f"{name} at {width} px:\n" + json.dumps(found, indent=1)
    page.set_viewport_size({"width": 1280, "height": 900})


def log_in(page) -> None:
    page.goto("/admin/login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")


# --- scheduler and web processes started with `flask` (issue 16: process tests and benches) -------------

def flask_process(instance: Path, *args: str, log: Path, **env: str) -> subprocess.Popen:
    """Start `flask <args>` (e.g. "scheduler", "run") on app.py with this instance folder, output to `log`.

    No configuration variable of this environment reaches it: instance/config.py decides, and `env`
    (e.g. DATABASE_URL for one process) is added on top.
    """
    from scheduler.config import ENV_VARS

    clean = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    clean.update(TOWNHALL_INSTANCE=str(instance), FLASK_APP="app.py", PYTHONUNBUFFERED="1", **env)
    with open(log, "ab") as out:
        return subprocess.Popen([str(Path(sys.executable).parent / "flask"), *args], cwd=ROOT, env=clean,
                                stdout=out, stderr=subprocess.STDOUT)


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc): a scheduler's mail relays."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return found


def process_gone(pid: int) -> bool:
    """True once `pid` has exited: no such process, or a zombie nobody reaped yet (an orphan's exit)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
