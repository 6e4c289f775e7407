"""Admin pages for series: create from a rule, publish, skip or cancel one occurrence, change this and all
following, and the public series page with its whole-series signup and manage page."""

from __future__ import annotations

from sqlalchemy import func, select

from scheduler.domain import recurrence, series_signups
from scheduler.domain import series as series_rules
from scheduler.extensions import db
from scheduler.models import Event, Registration, Series, SeriesSubscription
from tests.support import csrf_token

FORM = {"title": "Community call", "kind": "live discussion", "timezone": "Europe/Berlin", "freq": "monthly",
        "interval": "1", "byday": "3we", "starts_on": "2026-11-01", "start_time": "17:00",
        "duration_minutes": "60", "count": "4", "reminders": "1d, 1h", "summary": "", "description": ""}


def published(auth, **changes) -> Series:
    """A series created from FORM with `changes` and published, both through the admin."""
    auth.post("/admin/series/new", data=dict(FORM, **changes))
    series = db.session.scalar(select(Series))
    auth.post(f"/admin/series/{series.id}/publish")
    return series


def test_create_publish_skip_cancel_and_following(auth, client):
    created = auth.post("/admin/series/new", data=FORM)
    assert created.status_code == 303, created.get_data(as_text=True)[:2000]
    series = db.session.scalar(select(Series))
    assert (series.byday, recurrence.rrule_text(series)) == ("3WE", "FREQ=MONTHLY;BYDAY=3WE;COUNT=4")
    page = client.get(f"/admin/series/{series.id}").get_data(as_text=True)
    assert "FREQ=MONTHLY;BYDAY=3WE;COUNT=4" in page and "Publish and plan occurrences" in page
    assert auth.post(f"/admin/series/{series.id}/publish").status_code == 303
    _first, second, third, fourth = (e.id for e in series_rules.occurrences(db.session, series.id))
    assert auth.post(f"/admin/series/{series.id}/occurrences/{second}/skip").status_code == 303
    assert auth.post(f"/admin/series/{series.id}/occurrences/{third}/cancel").status_code == 303
    moved = auth.post(f"/admin/series/{series.id}/occurrences/{fourth}/following",
                      data={"start_time": "18:00", "venue": "Room 2"})
    assert moved.status_code == 303
    db.session.expire_all()
    assert db.session.get(Event, second) is None
    assert db.session.get(Event, third).status == "cancelled"
    fourth = db.session.get(Event, fourth)
    assert (fourth.venue, fourth.series_id != series.id) == ("Room 2", True)
    listing = client.get("/admin/series").get_data(as_text=True)
    # The first part now ends (UNTIL) before the split; the new part is the one occurrence left.
    assert "Community call" in listing and "UNTIL=" in listing and "COUNT=1" in listing


def test_bad_rule_shows_the_form_again_and_writes_nothing(auth):
    response = auth.post("/admin/series/new", data=dict(FORM, byday="3XX"))
    assert response.status_code == 422
    assert "Unknown day" in response.get_data(as_text=True)
    response = auth.post("/admin/series/new", data=dict(FORM, count="", until="2026-11-10"))
    assert response.status_code == 422 and "before its first occurrence" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Series)) == 0


def test_public_page_signup_for_all_then_drop_one(auth, client, app):
    published(auth, double_opt_in="")
    page = client.get("/series/community-call")
    assert page.status_code == 200 and "Sign up for all" in page.get_data(as_text=True)
    token = csrf_token(client, "/series/community-call")
    done = client.post("/series/community-call/signup", data={
        "name": "Ann", "email": "ann@example.org", "timezone": "Europe/Paris", "consent": "y", "website": "",
        "csrf_token": token})
    assert done.status_code == 200 and "You have a place in each" in done.get_data(as_text=True)
    subscription = db.session.scalar(select(SeriesSubscription))
    manage = f"/s/{series_signups.subscription_token(app.config['SECRET_KEY'], subscription)}"
    places = series_signups.subscription_places(db.session, subscription)
    assert len(places) == 4
    dropped = client.post(f"{manage}/drop/{places[1].id}", data={"csrf_token": csrf_token(client, manage)})
    assert dropped.status_code == 303
    assert db.session.get(Registration, places[1].id).state == "cancelled"
    assert "dropped" in client.get(manage).get_data(as_text=True)
    assert client.get("/s/not-a-real-token-at-all-xxxxxxxx").status_code == 404


def test_occurrence_page_links_its_series(auth, client):
    series = published(auth)
    first = series_rules.occurrences(db.session, series.id)[0]
    page = client.get(f"/events/{first.slug}").get_data(as_text=True)
    assert 'href="/series/community-call"' in page


def test_occurrence_admin_page_links_its_series(auth, client):
    series = published(auth)
    first = series_rules.occurrences(db.session, series.id)[0]
    page = client.get(f"/admin/events/{first.id}").get_data(as_text=True)
    assert f'href="/admin/series/{series.id}"' in page


def test_reminders_off_for_the_whole_series_from_the_manage_page(auth, client, app):
    series = published(auth, double_opt_in="")
    subscription, _ = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org",
                                               now=series.created_at, secret=app.config["SECRET_KEY"])
    db.session.commit()
    manage = f"/s/{series_signups.subscription_token(app.config['SECRET_KEY'], subscription)}"
    assert "Stop reminders for the whole series" in client.get(manage).get_data(as_text=True)
    done = client.post(f"{manage}/reminders", data={"reminders": "off", "csrf_token": csrf_token(client, manage)})
    assert done.status_code == 303
    db.session.expire_all()
    assert {p.reminders_opt_out for p in series_signups.subscription_places(db.session, subscription)} == {True}
    assert "Get reminders again" in client.get(manage).get_data(as_text=True)


def test_series_page_shows_its_description_cleaned(auth, client):
    published(auth, description="**Bring questions** <script>alert(1)</script>")
    page = client.get("/series/community-call").get_data(as_text=True)
    assert "<strong>Bring questions</strong>" in page and "<script>alert" not in page


def test_confirm_then_leave_the_whole_series_from_the_manage_page(auth, client, app):
    series = published(auth, double_opt_in="y")
    subscription, _ = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org",
                                               now=series.created_at, secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert subscription.state == "pending"
    manage = f"/s/{series_signups.subscription_token(app.config['SECRET_KEY'], subscription)}"
    assert client.post(f"{manage}/confirm").status_code == 400
    for action, state, places, said in (("confirm", "active", "confirmed", "Confirmed: you have a place in each"),
                                        ("cancel", "cancelled", "cancelled", "You left the series")):
        done = client.post(f"{manage}/{action}", data={"csrf_token": csrf_token(client, manage)})
        assert (done.status_code, done.headers["Location"]) == (303, manage), action
        assert said in client.get(manage).get_data(as_text=True)
        db.session.expire_all()
        assert subscription.state == state
        assert {p.state for p in series_signups.subscription_places(db.session, subscription)} == {places}
