"""Fixtures: the app on SQLite and on PostgreSQL, a client, a CLI runner, a real SMTP server."""

from __future__ import annotations

import os
import re
import socket
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from flask import has_app_context
from flask.testing import FlaskClient
from sqlalchemy import text

from bench.server import fresh_database
from scheduler import create_app
from scheduler.extensions import db

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b.strip() for b in os.environ.get("TEST_BACKENDS", "sqlite,postgres").split(",") if b.strip()]


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


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    if not postgres_available():
        require("REQUIRE_POSTGRES", f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    with fresh_database("postgres", ".", prefix="townhall_test", admin_url=PG_ADMIN_URL) as url:
        yield url


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
        "DOUBLE_OPT_IN_DEFAULT": False,
        "UPDATE_BATCH_SECONDS": 0,  # event updates are due at once (still folded while queued)
    }
    config.update(overrides)
    return config


def _truncate_all() -> None:
    tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    db.session.commit()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def app_config(backend, tmp_path, request) -> dict:
    """Config for the app under test; override in a test module to change settings."""
    config = base_config(tmp_path)
    if backend == "postgres":
        config["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    else:
        config["DATABASE_URL"] = "sqlite:///" + str(tmp_path / "townhall.db")
    return config


@pytest.fixture(scope="session", autouse=True)
def instance_dir(tmp_path_factory):
    """Keep tests out of the real instance/ folder."""
    path = tmp_path_factory.mktemp("instance")
    os.environ["TOWNHALL_INSTANCE"] = str(path)
    return path


class CommittedClient(FlaskClient):
    """Each request starts after the test's own writes are committed, as a browser's would.

    The test and the requests share one app context, so one session: a test that has read since
    its last commit holds a transaction (on SQLite, the writer's turn), and a view that works on
    a connection of its own (the signup form) would wait for it.
    """

    def open(self, *args, **kwargs):
        if has_app_context():  # not in a thread of its own
            db.session.commit()
        return super().open(*args, **kwargs)


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.test_client_class = CommittedClient
    with app.app_context():
        db.create_all()
        try:
            yield app
        finally:
            db.session.remove()
            if db.engine.dialect.name == "postgresql":
                _truncate_all()
            db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_token(client, path: str = "/admin/login") -> str:
    """Fetch a page with a form and read its CSRF token, as a browser would."""
    page = client.get(path).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


@pytest.fixture
def admin_user(app):
    from scheduler.models import User

    user = User(email="organiser@townhall.test", name="Organiser")
    user.set_password("correct horse battery")
    db.session.add(user)
    db.session.commit()
    return user


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


@pytest.fixture
def auth(client, admin_user):
    helper = Auth(client)
    response = helper.login()
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return helper


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def create_event(app, now):
    """Factory: create_event(**fields) -> a published (by default) event in the future."""
    from scheduler.domain import events as event_rules

    counter = iter(range(1, 10_000))

    def make(publish: bool = True, speakers: list[tuple[str, str]] | None = None, tags=None, **fields):
        n = next(counter)
        start = fields.pop("starts_at", now + timedelta(days=7))
        fields.setdefault("title", f"Test event {n}")
        fields.setdefault("timezone", "Europe/Berlin")
        fields.setdefault("kind", "talk")
        fields.setdefault("double_opt_in", False)
        fields.setdefault("join_url", f"https://meet.example.org/secret-{n}")
        event = event_rules.create_event(db.session, now=now, starts_at=start,
                                         ends_at=fields.pop("ends_at", start + timedelta(hours=1)),
                                         tags=tags, **fields)
        for name, role in speakers or []:
            speaker = event_rules.create_speaker(db.session, now=now, name=name,
                                                 email=f"{name.split()[0].lower()}@speakers.test")
            event_rules.add_speaker(db.session, event, speaker, role=role, now=now)
        if publish:
            event_rules.publish_event(db.session, event, now=now)
        db.session.commit()
        return event

    return make


# --- a real SMTP server -------------------------------------------------------------------------

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


@pytest.fixture
def smtp_server():
    sink = SMTPSink().start()
    yield sink
    sink.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
