"""A real Townhall server on 127.0.0.1 and headless Chromium driving it; mail read from the .eml sink."""

from __future__ import annotations

import os
import shutil
import threading
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from scheduler import create_app
from scheduler.extensions import db
from tests.support import ADMIN_EMAIL, ADMIN_PASSWORD, AXE, SCREENSHOTS, base_config, free_port, require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")


class LiveServer:
    """The app served by werkzeug in a thread, plus what a test needs to reach into it."""

    def __init__(self, app, port: int):
        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def deliver_mail(self) -> list:
        """Run the real outbox deliverer once and return every message in the .eml sink, oldest first."""
        from scheduler.mail.outbox import deliver
        from scheduler.mail.transports import transport_from_config

        with self.app.app_context():
            deliver(db.session, lambda: transport_from_config(self.app.config), self.app,
                    worker="browser-test")
            db.session.remove()
        outbox = Path(self.app.config["OUTBOX_DIR"])
        return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(outbox.glob("*.eml"))]

    def mail_to(self, address: str) -> list:
        return [m for m in self.deliver_mail() if address in str(m["To"])]

    def add_event(self, *, title: str, days_ahead: int = 14, **fields) -> str:
        """Create and publish an event through the domain, as the admin would; returns its slug."""
        from scheduler.domain import events as event_rules
        from scheduler.models import utcnow

        now = utcnow()
        # Noon UTC, not the hour of the run: the hour never crosses midnight in Berlin or New York, whose dates
        # the tests read as one day.
        start = (now + timedelta(days=days_ahead)).replace(hour=12, minute=0, second=0, microsecond=0)
        fields.setdefault("timezone", "Europe/Berlin")
        fields.setdefault("kind", "talk")
        fields.setdefault("double_opt_in", False)
        with self.app.app_context():
            event = event_rules.create_event(db.session, now=now, title=title, starts_at=start,
                                             ends_at=start + timedelta(hours=1), **fields)
            event_rules.publish_event(db.session, event, now=now)
            db.session.commit()
            slug = event.slug
            db.session.remove()
        return slug

    def sign_up_earlier(self, slug: str, count: int, *, every: timedelta) -> None:
        """`count` signups through the domain, the last one `every` ago, spaced `every` apart."""
        from sqlalchemy import select

        from scheduler.domain import signups
        from scheduler.models import Event, utcnow

        now = utcnow()
        with self.app.app_context():
            event = db.session.scalar(select(Event).where(Event.slug == slug))
            for n in range(count):
                signups.sign_up(db.session, event, name=f"Early bird {n}", email=f"early{n}@example.org",
                                now=now - every * (count - n), secret=self.app.config["SECRET_KEY"])
            db.session.commit()
            db.session.remove()


# Package scope: the server and Chromium stop once the browser tests are done, not at the end of the run.
@pytest.fixture(scope="package")
def live_server(tmp_path_factory):
    from scheduler.cli import seed_demo
    from scheduler.models import User, utcnow

    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    app = create_app(base_config(
        tmp, DATABASE_URL="sqlite:///" + str(tmp / "townhall.db"), BASE_URL=f"http://127.0.0.1:{port}",
        TESTING=False, SCHEDULER_MODE="off"))
    with app.app_context():
        db.create_all()
        seed_demo(db.session, now=utcnow())
        user = User(email=ADMIN_EMAIL, name="Organiser", created_at=utcnow())
        user.set_password(ADMIN_PASSWORD)
        db.session.add(user)
        db.session.commit()
        db.session.remove()
    server = LiveServer(app, port)
    server.thread.start()
    yield server
    server.server.shutdown()
    server.thread.join(timeout=5)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="package")
def browser():
    if not os.path.exists(CHROMIUM):
        require("REQUIRE_BROWSER", f"Chromium is not installed at {CHROMIUM}")
    if not AXE.exists():
        require("REQUIRE_BROWSER", f"axe-core is not installed ({AXE}): run npm ci in tests/js")
    from playwright.sync_api import sync_playwright

    shutil.rmtree(SCREENSHOTS, ignore_errors=True)  # the folder shows this run only
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, live_server):
    """open_page(**options): a page in a new browser context (1280×900, Europe/Berlin, `options` on top), closed at
    the end; the test fails on any JavaScript error such a page logged."""
    contexts: list = []
    errors: list[str] = []

    def open_(**options):
        # axe-core goes in as an inline script, which the site's CSP refuses: these pages skip the policy, and
        # test_content_security_policy.py walks the pages under it.
        context = browser.new_context(**{"base_url": live_server.url, "viewport": {"width": 1280, "height": 900},
                                         "timezone_id": "Europe/Berlin", "bypass_csp": True, **options})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == [], f"JavaScript errors: {errors}"


@pytest.fixture
def page(open_page):
    return open_page(locale="en-GB", accept_downloads=True)
