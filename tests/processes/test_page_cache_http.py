"""The page cache on a real server: two gunicorn workers and a writer in another process agree on what is current.

Each worker keeps its own copy of the pages (SimpleCache); the versions in the database are what
they agree on. Signups and cancellations go through the server; an organiser's time change is
written by this test's process, as another machine would.
"""

from __future__ import annotations

import gzip
import http.client
import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests

from scheduler import create_app
from scheduler.domain import events as event_rules
from scheduler.extensions import db
from scheduler.models import Event
from tests.support import (
    CSRF_RE,
    PG_ADMIN_URL,
    fresh_database,
    gunicorn,
    postgres_available,
    require,
    seed_event,
    write_instance,
)

pytestmark = pytest.mark.slow
SECRET = "page-cache-test-secret"
#: Requests per check, each on a new connection: both workers answer some of them.
TRIES = 12
SEATS = re.compile(r'<p class="seats">([^<]*)</p>')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "postgres" and not postgres_available():
        require("REQUIRE_POSTGRES", "PostgreSQL is not reachable on 127.0.0.1:5432")
    with fresh_database(request.param, tmp_path, prefix="townhall_pages", admin_url=PG_ADMIN_URL) as url:
        yield url


def _settings(database_url: str, tmp_path, **extra) -> dict:
    return {"SECRET_KEY": SECRET, "DATABASE_URL": database_url, "SCHEDULER_MODE": "off",
            "BASE_URL": "http://townhall.test", "MAIL_URL": "", "OUTBOX_DIR": str(tmp_path / "outbox"),
            "RATELIMIT_ENABLED": False, **extra}


def _seats_everywhere(url: str) -> set[str]:
    """The seats line of TRIES fresh requests (a new connection each, so both workers answer)."""
    return {SEATS.search(requests.get(url, timeout=30).text).group(1) for _ in range(TRIES)}


def _sign_up(url: str, email: str) -> None:
    visitor = requests.Session()
    page = visitor.get(url, timeout=30).text
    match = CSRF_RE.search(page)
    response = visitor.post(url, timeout=30, data={
        "csrf_token": match.group(1) or match.group(2), "name": "Visitor", "email": email,
        "timezone": "Europe/Berlin", "consent": "y"})
    assert response.status_code == 200


def _raw_get(base: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
    """One GET as sent, the body as received (requests would decompress it)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_every_worker_shows_each_change_on_the_next_request(database_url, tmp_path):
    settings = _settings(database_url, tmp_path, PAGE_CHECK_SECONDS=0.0)
    slug, event_id = seed_event(settings, title="Served warm", capacity=10, double_opt_in=False,
                                join_url="https://meet.example.org/warm")
    with gunicorn(write_instance(tmp_path / "instance", **settings), workers=2) as base:
        page = f"{base}/events/{slug}"
        assert _seats_everywhere(page) == {"10 of 10 seats left"}
        _sign_up(f"{page}/signup", "first@example.org")
        assert _seats_everywhere(page) == {"9 of 10 seats left"}

        app = create_app({**settings, "TESTING": True})
        with app.app_context():
            event = db.session.get(Event, event_id)
            event_rules.update_event(db.session, event, now=event.updated_at + timedelta(seconds=1),
                                     title="Served warm, moved", starts_at=event.starts_at + timedelta(hours=1),
                                     ends_at=event.ends_at + timedelta(hours=1))
            db.session.commit()
            db.session.remove()
            db.engine.dispose()
        titles = {re.search(r"<h1>([^<]*)</h1>", requests.get(page, timeout=30).text).group(1) for _ in range(TRIES)}
        assert titles == {"Served warm, moved"}
        assert all("Served warm, moved" in requests.get(f"{base}/", timeout=30).text for _ in range(TRIES))

        # Over the wire: gzip once stored, an ETag per encoding, 304 for each.
        status, headers, body = _raw_get(base, f"/events/{slug}", {"Accept-Encoding": "gzip"})
        assert (status, headers["Content-Encoding"]) == (200, "gzip")
        assert b"9 of 10 seats left" in gzip.decompress(body)
        status, plain_headers, plain = _raw_get(base, f"/events/{slug}", {})
        assert "Content-Encoding" not in plain_headers and plain == gzip.decompress(body)
        assert headers["ETag"] != plain_headers["ETag"]
        for accept, etag in (({"Accept-Encoding": "gzip"}, headers["ETag"]), ({}, plain_headers["ETag"])):
            assert _raw_get(base, f"/events/{slug}", {**accept, "If-None-Match": etag})[0] == 304


def test_visitors_never_see_each_others_messages(database_url, tmp_path):
    settings = _settings(database_url, tmp_path)
    slug, _ = seed_event(settings, title="Two visitors", capacity=5)
    with gunicorn(write_instance(tmp_path / "instance", **settings), workers=2) as base:
        page = f"{base}/events/{slug}"
        mine, theirs = requests.Session(), requests.Session()
        assert "Please log in" not in theirs.get(page, timeout=30).text
        assert mine.get(f"{base}/admin/", allow_redirects=False, timeout=30).status_code == 302
        assert "Please log in to see that page." in mine.get(page, timeout=30).text
        for visitor in (theirs, mine, requests.Session()):
            assert "Please log in" not in visitor.get(page, timeout=30).text


def test_a_signup_shows_on_every_worker_within_the_check_interval(database_url, tmp_path):
    """With the default PAGE_CHECK_SECONDS each worker re-reads the versions within a second: wait for it."""
    settings = _settings(database_url, tmp_path)
    slug, _ = seed_event(settings, title="Default interval", capacity=3, double_opt_in=False)
    with gunicorn(write_instance(tmp_path / "instance", **settings), workers=2) as base:
        page = f"{base}/events/{slug}"
        assert _seats_everywhere(page) == {"3 of 3 seats left"}
        _sign_up(f"{page}/signup", "second@example.org")
        deadline = time.monotonic() + 30
        while _seats_everywhere(page) != {"2 of 3 seats left"}:
            assert time.monotonic() < deadline, "a worker kept showing the old seat count"
