"""Fixtures: the app on SQLite and on PostgreSQL, a client, a CLI runner, a real SMTP server."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import has_app_context
from flask.testing import FlaskClient

from scheduler import create_app
from scheduler.extensions import db
from scheduler.web import board_stream
from tests.support import (
    PG_ADMIN_URL,
    Auth,
    SMTPSink,
    base_config,
    empty_tables,
    fresh_database,
    postgres_available,
    require,
)

if os.environ.get("TEST_SLEEP_ON_EVENT"):
    # .ci/run's year-ahead step runs under libfaketime 0.9.10, which breaks time.sleep() (it sleeps until a
    # monotonic deadline: EINVAL, wolfcw/libfaketime#426). Set here, it holds in every xdist worker too.
    def sleep(seconds: float) -> None:
        threading.Event().wait(seconds)

    time.sleep = sleep

BACKENDS = [b.strip() for b in os.environ.get("TEST_BACKENDS", "sqlite,postgres").split(",") if b.strip()]
#: What the app's clock shows in every test: a fixed instant, so no expectation depends on today's date.
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    if not postgres_available():
        require("REQUIRE_POSTGRES", f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    with fresh_database("postgres", ".", prefix="townhall_test", admin_url=PG_ADMIN_URL) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def app_config(backend, tmp_path, request, now) -> dict:
    """Config for the app under test; override in a test module to change settings.

    The app's clock (CLOCK) stands still at `now`; a test moves it with `app.config["CLOCK"] = ...`.
    """
    config = base_config(tmp_path, CLOCK=lambda: now)
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

    The test's session ends its transaction (on SQLite a reader or writer would hold up the
    request's), and each request runs in an app context of its own, as it does in a server: its
    own session and its own `g` (the signed-in user is not carried over from the last request).
    """

    def open(self, *args, **kwargs):
        if not has_app_context():  # a thread of its own
            return super().open(*args, **kwargs)
        db.session.commit()
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.commit()  # what the test reads next is read after the request's commit
        return response


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.test_client_class = CommittedClient
    with app.app_context():
        db.create_all()
        try:
            yield app
        finally:
            board_stream.stop(app)  # its LISTEN thread would outlive the test database
            db.session.remove()
            if db.engine.dialect.name == "postgresql":
                empty_tables()
            db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def admin_user(app):
    from scheduler.models import User

    user = User(email="organiser@townhall.test", name="Organiser")
    user.set_password("correct horse battery")
    db.session.add(user)
    db.session.commit()
    return user


@pytest.fixture
def auth(client, admin_user):
    helper = Auth(client)
    response = helper.login()
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return helper


@pytest.fixture
def now() -> datetime:
    """The time by the app's clock (override in a test module for another instant)."""
    return NOW


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

@pytest.fixture
def smtp_server():
    sink = SMTPSink().start()
    yield sink
    sink.stop()
