"""200 people sign up at once for 100 seats on a real multi-worker server: nobody is oversold.

gunicorn runs 4 worker processes on 127.0.0.1 against a fresh SQLite file or a fresh PostgreSQL
database; every client fetches the form (and its CSRF token) like a browser, then all POST together.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from scheduler import create_app
from scheduler.extensions import db
from scheduler.models import Event, OutboxMessage, Registration
from scheduler.tokens import manage_token
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
SECRET = "concurrency-test-secret"
SIGNUPS, CAPACITY, CANCELLATIONS = 200, 100, 30


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    """A fresh database: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "postgres" and not postgres_available():
        require("REQUIRE_POSTGRES", "PostgreSQL is not reachable on 127.0.0.1:5432")
    with fresh_database(request.param, tmp_path, prefix="townhall_conc", admin_url=PG_ADMIN_URL) as url:
        yield url


def _settings(database_url: str, tmp_path) -> dict:
    return {"SECRET_KEY": SECRET, "DATABASE_URL": database_url, "SCHEDULER_MODE": "off",
            "BASE_URL": "http://townhall.test", "MAIL_URL": "", "OUTBOX_DIR": str(tmp_path / "outbox"),
            "RATELIMIT_ENABLED": False, "DOUBLE_OPT_IN_DEFAULT": False}


def _form_token(session: requests.Session, url: str) -> str:
    response = session.get(url, timeout=60)
    assert response.status_code == 200, response.status_code
    match = CSRF_RE.search(response.text)
    return match.group(1) or match.group(2)


def _all_at_once(jobs: list) -> list:
    """Run every job in its own thread, released together by a barrier; returns results in order."""
    barrier = threading.Barrier(len(jobs))

    def run(job):
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def test_signup_200_at_capacity_100_never_oversells(database_url, tmp_path):
    settings = _settings(database_url, tmp_path)
    slug, event_id = seed_event(settings, title="Busy talk", capacity=CAPACITY, double_opt_in=False,
                                join_url="https://meet.example.org/busy")
    app = create_app({**settings, "TESTING": True})

    instance = write_instance(tmp_path / "instance", **settings)
    started = time.monotonic()
    with gunicorn(instance, workers=4) as base:
        form_url = f"{base}/events/{slug}/signup"
        clients = [requests.Session() for _ in range(SIGNUPS)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            tokens = list(pool.map(lambda s: _form_token(s, form_url), clients))

        def signup(i: int):
            return lambda: clients[i].post(form_url, data={
                "csrf_token": tokens[i], "name": f"Person {i}", "email": f"person{i}@example.org",
                "timezone": "America/New_York", "consent": "y"}, timeout=120).status_code

        statuses = _all_at_once([signup(i) for i in range(SIGNUPS)])
        assert statuses == [200] * SIGNUPS

        with app.app_context():
            regs = list(db.session.scalars(select(Registration).where(Registration.event_id == event_id)))
            confirmed = [r for r in regs if r.state == "confirmed"]
            waitlisted = sorted((r for r in regs if r.state == "waitlisted"), key=lambda r: r.waitlist_seq)
            assert (len(regs), len(confirmed), len(waitlisted)) == (SIGNUPS, CAPACITY, SIGNUPS - CAPACITY)
            assert [r.waitlist_seq for r in waitlisted] == list(range(1, SIGNUPS - CAPACITY + 1))
            kinds = [m.kind for m in db.session.scalars(select(OutboxMessage))]
            assert (kinds.count("confirmed"), kinds.count("waitlisted")) == (CAPACITY, SIGNUPS - CAPACITY)
            leaving = [(r.id, manage_token(SECRET, r)) for r in confirmed[:CANCELLATIONS]]
            head = [r.id for r in waitlisted[:CANCELLATIONS]]
            db.session.remove()

        sessions = [requests.Session() for _ in leaving]
        with ThreadPoolExecutor(max_workers=16) as pool:
            csrf = list(pool.map(lambda pair: _form_token(pair[0], f"{base}/r/{pair[1][1]}"),
                                 zip(sessions, leaving, strict=True)))

        def cancel(i: int):
            token = leaving[i][1]
            return lambda: sessions[i].post(f"{base}/r/{token}/cancel", data={"csrf_token": csrf[i]},
                                            allow_redirects=False, timeout=120).status_code

        statuses = _all_at_once([cancel(i) for i in range(len(leaving))])
        assert statuses == [303] * CANCELLATIONS
    elapsed = time.monotonic() - started

    with app.app_context():
        regs = list(db.session.scalars(select(Registration).where(Registration.event_id == event_id)))
        states = {r.id: r.state for r in regs}
        assert sorted(i for i, s in states.items() if s == "cancelled") == sorted(i for i, _ in leaving)
        assert [states[i] for i in head] == ["confirmed"] * CANCELLATIONS
        assert sum(s == "confirmed" for s in states.values()) == CAPACITY
        still_waiting = sorted(r.waitlist_seq for r in regs if r.state == "waitlisted")
        assert still_waiting == list(range(CANCELLATIONS + 1, SIGNUPS - CAPACITY + 1))
        kinds = [m.kind for m in db.session.scalars(select(OutboxMessage))]
        assert (kinds.count("promoted"), kinds.count("cancelled")) == (CANCELLATIONS, CANCELLATIONS)
        assert db.session.get(Event, event_id).capacity == CAPACITY
        db.session.remove()
        db.engine.dispose()
    print(f"\n{database_url.split(':')[0]}: {SIGNUPS} signups + {CANCELLATIONS} cancellations in {elapsed:.1f} s")
