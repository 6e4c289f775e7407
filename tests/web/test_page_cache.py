"""The public pages' cache is never stale, re-renders only what a change affects, and keeps visitors apart."""

from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask import template_rendered
from sqlalchemy import select

from scheduler.domain import events as event_rules
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.models import Event, Speaker
from tests.support import Auth, csrf_token, registration, signup, token_for

PAGES = ("a", "b", "home", "past", "series", "other")


@pytest.fixture
def site(create_event, now):
    """Two upcoming events in different series, and one past event."""
    a = create_event(title="Alpha talk", capacity=25, tags=["Series"], speakers=[("Ada Lovelace", "host")])
    b = create_event(title="Beta talk", capacity=10, tags=["Other"])
    create_event(title="Gamma long ago", starts_at=now - timedelta(days=3))
    return {"a": f"/events/{a.slug}", "b": f"/events/{b.slug}", "home": "/", "past": "/past",
            "series": "/tags/series", "other": "/tags/other", "event_a": a, "event_b": b}


@contextmanager
def renders(app):
    """Counts the pages rendered while the block runs, by template name."""
    seen: Counter = Counter()

    def record(_sender, template, context, **_extra):
        seen[template.name] = seen[template.name] + 1

    template_rendered.connect(record, app)
    try:
        yield seen
    finally:
        template_rendered.disconnect(record, app)


def visit_all(client, site) -> dict[str, str]:
    pages = {}
    for name in PAGES:
        response = client.get(site[name])
        assert response.status_code == 200, name
        pages[name] = response.get_data(as_text=True)
    return pages


def rerendered(app, client, site) -> tuple[dict[str, str], set[str]]:
    """Every page once; the pages and the names of those that were rendered (not served from the cache)."""
    pages, which = {}, set()
    for name in PAGES:
        with renders(app) as seen:
            response = client.get(site[name])
        assert response.status_code == 200, name
        pages[name] = response.get_data(as_text=True)
        if seen:
            which.add(name)
    return pages, which


def seats(page: str) -> str:
    return re.search(r'<p class="seats">([^<]*)</p>', page).group(1)


def test_every_page_is_rendered_once_then_served_from_the_cache(app, client, site):
    _, first = rerendered(app, client, site)
    assert first == set(PAGES)
    _, second = rerendered(app, client, site)
    assert second == set()


def test_a_signup_shows_at_once_on_its_event_home_and_series_pages_only(app, client, site):
    visit_all(client, site)
    assert signup(client, site["event_a"], email="new@example.org").status_code == 200
    pages, which = rerendered(app, client, site)
    assert which == {"a", "home", "series"}
    assert seats(pages["a"]) == "24 of 25 seats left"
    assert "24 seats left" in pages["home"] and "24 seats left" in pages["series"]


def test_a_cancellation_frees_the_seat_on_the_next_request(app, client, site):
    signup(client, site["event_a"], email="leaving@example.org")
    token = token_for(app, registration("leaving@example.org"))
    visit_all(client, site)
    manage = f"/r/{token}"
    response = client.post(f"{manage}/cancel", data={"csrf_token": csrf_token(client, manage)})
    assert response.status_code == 303
    pages, which = rerendered(app, client, site)
    assert which == {"a", "home", "series"}
    assert seats(pages["a"]) == "25 of 25 seats left"


def test_a_signup_by_another_path_shows_too(app, client, site, now):
    """The domain, as the API and jobs call it: the version is raised by the write, whoever makes it."""
    visit_all(client, site)
    signups.sign_up(db.session, site["event_b"], name="Bo", email="bo@example.org", now=now,
                    secret=app.config["SECRET_KEY"])
    db.session.commit()
    pages, which = rerendered(app, client, site)
    assert which == {"b", "home", "other"}
    assert seats(pages["b"]) == "9 of 10 seats left"


def test_a_time_change_shows_on_the_next_request(app, client, site, now):
    visit_all(client, site)
    event = site["event_a"]
    event_rules.update_event(db.session, event, now=now, starts_at=event.starts_at + timedelta(hours=2),
                             ends_at=event.ends_at + timedelta(hours=2))
    db.session.commit()
    pages, which = rerendered(app, client, site)
    assert which == {"a", "home", "series"}
    assert "Monday 9 November 2026, 15:00–16:00 CET (Europe/Berlin)" in pages["a"]
    assert "15:00–16:00" in pages["home"] and "15:00–16:00" in pages["series"]


def test_a_speaker_added_shows_on_the_next_request(app, client, site, now):
    visit_all(client, site)
    speaker = event_rules.create_speaker(db.session, now=now, name="Grace Hopper")
    event_rules.add_speaker(db.session, site["event_b"], speaker, role="panelist", now=now)
    db.session.commit()
    pages, which = rerendered(app, client, site)
    assert which == {"b", "home", "other"}
    assert "Grace Hopper" in pages["b"] and "With Grace Hopper" in pages["home"]


def test_a_speaker_renamed_shows_on_every_event_they_speak_at(app, client, site, now):
    visit_all(client, site)
    speaker = db.session.scalar(select(Speaker).where(Speaker.name == "Ada Lovelace"))
    speaker.name, speaker.updated_at = "Ada King", now
    db.session.commit()
    pages, which = rerendered(app, client, site)
    assert which == {"a", "home", "series"}
    assert "Ada King" in pages["a"] and "Ada Lovelace" not in pages["a"]


def test_a_speaker_removed_shows_on_the_next_request(app, client, site, now):
    visit_all(client, site)
    event = site["event_a"]
    event_rules.remove_speaker(db.session, event, event.speakers[0].speaker_id, now=now)
    db.session.commit()
    pages, which = rerendered(app, client, site)
    assert which == {"a", "home", "series"}
    assert "Ada Lovelace" not in pages["a"] and "Ada Lovelace" not in pages["home"]


def test_a_new_tag_shows_on_the_event_and_gets_its_page(app, client, site, now):
    visit_all(client, site)
    assert client.get("/tags/new-series").status_code == 404
    event_rules.update_event(db.session, site["event_b"], now=now, tags=["Other", "New series"])
    db.session.commit()
    pages, which = rerendered(app, client, site)
    assert which == {"b", "home", "other"}
    assert 'href="/tags/new-series">New series</a>' in pages["b"]
    tag_page = client.get("/tags/new-series")
    assert tag_page.status_code == 200 and "Beta talk" in tag_page.get_data(as_text=True)


def test_a_cancelled_event_shows_it_on_the_next_request(app, client, site, now):
    visit_all(client, site)
    event_rules.cancel_event(db.session, site["event_a"], now=now)
    db.session.commit()
    pages, which = rerendered(app, client, site)
    assert which == {"a", "home", "series"}
    assert "This event has been cancelled." in pages["a"]


def test_a_published_event_appears_on_the_lists(app, client, site, create_event, now):
    draft = create_event(title="Delta draft", publish=False, tags=["Series"])
    visit_all(client, site)
    assert client.get(f"/events/{draft.slug}").status_code == 404
    event_rules.publish_event(db.session, draft, now=now)
    db.session.commit()
    pages, which = rerendered(app, client, site)
    assert which == {"home", "series"}
    assert "Delta draft" in pages["home"] and "Delta draft" in pages["series"]
    assert client.get(f"/events/{draft.slug}").status_code == 200


def test_an_event_that_ends_moves_from_upcoming_to_past(app, client, site, now):
    visit_all(client, site)
    app.config["CLOCK"] = lambda: site["event_b"].ends_at + timedelta(minutes=1)
    pages, which = rerendered(app, client, site)
    assert {"b", "home", "past", "other"} <= which
    assert "This event has ended." in pages["b"]
    assert "Beta talk" in pages["past"] and "Beta talk" not in pages["home"]


def test_changes_no_page_shows_render_nothing(app, client, site, now):
    """Waitlist numbers and the reminder plan are not on any public page."""
    visit_all(client, site)
    event_rules.update_event(db.session, site["event_a"], now=now, reminder_offsets=[7200])
    event = db.session.get(Event, site["event_b"].id)
    event.waitlist_last += 1
    db.session.commit()
    _, which = rerendered(app, client, site)
    assert which == set()


def test_the_version_goes_up_in_the_writing_transaction(app, site, now):
    event = site["event_a"]
    before = event.version
    event_rules.update_event(db.session, event, now=now, title="Alpha, renamed")
    db.session.flush()
    assert db.session.scalar(select(Event.version).where(Event.id == event.id)) == before + 1
    db.session.rollback()
    assert db.session.scalar(select(Event.version).where(Event.id == event.id)) == before


# --- what each visitor sees of their own ---------------------------------------------------------

def test_a_flashed_message_reaches_only_its_visitor(app, site):
    mine, theirs = app.test_client(), app.test_client()
    theirs.get(site["a"])  # the page is in the cache before anyone has a message
    assert mine.get("/admin/").status_code == 302  # Flask-Login flashes "Please log in"; not followed
    page = mine.get(site["a"]).get_data(as_text=True)
    assert "Please log in to see that page." in page
    for visitor in (theirs, mine):  # the message was shown once, to its visitor, and is gone
        page = visitor.get(site["a"]).get_data(as_text=True)
        assert "Please log in" not in page and 'class="flashes"' not in page


def test_the_organiser_menu_and_its_csrf_token_reach_only_the_organiser(app, site, admin_user):
    from scheduler.models import User

    other = User(email="second@townhall.test", name="Second")
    other.set_password("another long password")
    db.session.add(other)
    db.session.commit()
    first, second, visitor = app.test_client(), app.test_client(), app.test_client()
    visitor.get(site["a"])
    Auth(first).login()
    Auth(second).login(email="second@townhall.test", password="another long password")
    tokens = []
    for organiser in (first, second):
        page = organiser.get(site["a"]).get_data(as_text=True)
        assert 'href="/admin/"' in page and "Log out" in page
        tokens.append(re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
    assert tokens[0] != tokens[1]
    for page in (visitor.get(site["a"]).get_data(as_text=True), visitor.get("/").get_data(as_text=True)):
        assert 'href="/admin/"' not in page and "Log out" not in page and "csrf_token" not in page
    page = second.get(site["a"]).get_data(as_text=True)
    assert tokens[0] not in page


def test_a_personal_page_is_stored_by_nobody(app, site, auth, client):
    response = client.get(site["a"])
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "ETag" not in response.headers
    assert "Cookie" in response.headers["Vary"]
    anonymous = app.test_client().get(site["a"])
    assert anonymous.headers["Cache-Control"] == "no-cache" and "ETag" in anonymous.headers
    assert "Cookie" in anonymous.headers["Vary"]


def test_pages_under_another_script_root_are_not_shared(app, site):
    for root in ("", "/townhall", ""):
        page = app.test_client().get(site["a"], base_url=f"http://localhost{root}/").get_data(as_text=True)
        assert f'href="{root}/static/style.css"' in page and f'href="{root}/tags/series"' in page


# --- shared through Redis, as in production -----------------------------------------------------

@pytest.fixture
def redis_url(tmp_path):
    """A redis-server of its own on a free port, nothing saved to disk."""
    import shutil
    import subprocess

    import redis

    from tests.support import free_port, require, wait_for

    if shutil.which("redis-server") is None:
        require("REQUIRE_REDIS", "redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)

    def answers() -> bool:
        assert server.poll() is None, "redis-server exited"
        try:
            return client.ping()
        except redis.ConnectionError:  # not listening yet: a refused connection returns at once
            return False

    try:
        assert wait_for(answers, 30), "redis-server did not answer within 30 s"
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow  # starts a redis-server: outside the year-ahead run, as libfaketime would be preloaded into it
def test_machines_sharing_redis_render_each_version_once(app, app_config, site, redis_url, now):
    from scheduler import create_app

    machines = [create_app({**app_config, "CACHE_REDIS_URL": redis_url}) for _ in range(2)]
    assert [m.config["CACHE_TYPE"] for m in machines] == ["RedisCache"] * 2
    clients = [m.test_client() for m in machines]

    def visit(n: int) -> tuple[str, int]:
        with renders(machines[n]) as seen:
            page = clients[n].get(site["a"]).get_data(as_text=True)
        return seats(page), sum(seen.values())

    assert visit(0) == ("25 of 25 seats left", 1)
    assert visit(1) == ("25 of 25 seats left", 0)  # rendered by the other machine
    signups.sign_up(db.session, site["event_a"], name="Cy", email="cy@example.org", now=now,
                    secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert visit(1) == ("24 of 25 seats left", 1)
    assert visit(0) == ("24 of 25 seats left", 0)
    for machine in machines:
        with machine.app_context():
            db.engine.dispose()
