"""Organiser pages (scheduler.web.admin): the event editor (create, validate, edit, publish, cancel, speakers),
the event page's planned jobs, sent log, signups chart and jobs timeline, and login. Every admin page refuses
strangers; every POST refuses a missing CSRF token."""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from scheduler import dispatch
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.mail.transports import transport_from_config
from scheduler.models import Event, EventSpeaker, PlannedJob, Speaker
from tests.support import Auth, add_confirmed, csrf_token


def form_data(**overrides) -> dict:
    data = {
        "title": "Open source AI panel", "slug": "", "summary": "A panel.", "description": "Hello **world**",
        "kind": "panel", "timezone": "America/Los_Angeles", "starts_at": "2031-03-06T09:00",
        "ends_at": "2031-03-06T10:30", "venue": "", "join_url": "https://meet.example.org/abc", "capacity": "50",
        "signup_opens_at": "", "signup_closes_at": "", "tags": "AI, Panels", "reminders": "1d, 1h",
        "double_opt_in": "y", "briefing_enabled": "y", "briefing_offset": "3d", "nudge_enabled": "y",
        "nudge_offset": "15m", "thanks_enabled": "y", "thanks_offset": "1h",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Event))


def test_create_event_stores_utc_and_zone(auth):
    response = auth.post("/admin/events/new", form_data())
    assert response.status_code == 302
    event = db.session.scalar(select(Event))
    assert event.slug == "open-source-ai-panel"
    assert event.timezone == "America/Los_Angeles"
    assert event.starts_at.isoformat() == "2031-03-06T17:00:00+00:00"
    assert event.ends_at.isoformat() == "2031-03-06T18:30:00+00:00"
    assert event.status == "draft"
    assert event.reminder_offsets == [86400, 3600]
    assert [t.slug for t in event.tags] == ["ai", "panels"]


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"ends_at": "2031-03-06T08:00"}, "ends_at", "The end must be after the start."),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone", "Unknown timezone"),
    ({"capacity": "-5"}, "capacity", "Capacity must be between 0 and 1,000,000"),
    ({"title": ""}, "title", "This field is required."),
    ({"reminders": "1d, soon"}, "reminders", "is not an offset like 1d"),
    ({"join_url": "javascript:alert(1)"}, "join_url", "Invalid URL."),
    ({"slug": "Not A Slug!"}, "slug", "Use lower-case letters"),
    ({"starts_at": "tomorrow"}, "starts_at", "Not a valid datetime value."),
])
def test_invalid_new_event_shows_message_and_stores_nothing(auth, overrides, field, message):
    response = auth.post("/admin/events/new", form_data(**overrides))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page
    assert message in page
    assert f'aria-describedby="{field}-help {field}-error"' in page or f'aria-describedby="{field}-error"' in page
    assert event_count() == 0


def test_duplicate_slug_is_refused(auth, create_event):
    existing = create_event(title="Taken")
    response = auth.post("/admin/events/new", form_data(slug=existing.slug))
    assert response.status_code == 422
    assert "That slug is already used by another event." in response.get_data(as_text=True)
    assert event_count() == 1


@pytest.mark.parametrize(("overrides", "message"), [
    ({"ends_at": "2031-03-06T08:00"}, "The end must be after the start."),
    ({"timezone": "Nowhere/City"}, "Unknown timezone"),
    ({"capacity": "-1"}, "Capacity must be between 0 and 1,000,000"),
    ({"signup_closes_at": "2031-03-07T08:00"}, "Signup cannot close after the event ends."),
])
def test_invalid_edit_changes_nothing(auth, create_event, overrides, message):
    event = create_event(title="Keep me", timezone="America/Los_Angeles", capacity=10)
    before = {c.name: getattr(event, c.key) for c in Event.__table__.columns}
    response = auth.post(f"/admin/events/{event.id}/edit", form_data(title="Changed", **overrides))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    after = {c.name: getattr(db.session.get(Event, event.id), c.key) for c in Event.__table__.columns}
    assert after == before


def test_edit_moves_published_event_and_bumps_sequence(auth, create_event, now):
    event = create_event(timezone="America/Los_Angeles")
    assert event.sequence == 0
    jobs_before = {j.kind: j.due_at for j in db.session.scalars(select(PlannedJob))}
    response = auth.post(f"/admin/events/{event.id}/edit", form_data(
        title=event.title, slug=event.slug, starts_at="2031-04-01T10:00", ends_at="2031-04-01T11:00"))
    assert response.status_code == 302
    db.session.expire_all()
    event = db.session.get(Event, event.id)
    assert event.sequence == 1
    assert event.starts_at.isoformat() == "2031-04-01T17:00:00+00:00"
    jobs_after = {(j.kind, j.offset_seconds): j for j in db.session.scalars(select(PlannedJob))}
    assert jobs_after[("reminder", 3600)].due_at == event.starts_at - timedelta(hours=1)
    assert jobs_after[("reminder", 3600)].state == "planned"
    assert jobs_before


def test_edit_of_title_only_keeps_sequence(auth, create_event, now):
    event = create_event(timezone="UTC", starts_at=now.replace(second=0) + timedelta(days=3))
    from scheduler.forms import to_local
    data = form_data(title="New title", slug=event.slug, timezone="UTC",
                     starts_at=to_local(event.starts_at, "UTC").strftime("%Y-%m-%dT%H:%M"),
                     ends_at=to_local(event.ends_at, "UTC").strftime("%Y-%m-%dT%H:%M"),
                     join_url=event.join_url, capacity="", reminders="1d, 1h")
    assert auth.post(f"/admin/events/{event.id}/edit", data).status_code == 302
    db.session.expire_all()
    event = db.session.get(Event, event.id)
    assert event.title == "New title"
    assert event.sequence == 0


def test_publish_plans_jobs_and_cancel_removes_them(auth, create_event):
    event = create_event(publish=False)
    assert db.session.scalar(select(func.count()).select_from(PlannedJob)) == 0
    assert auth.post(f"/admin/events/{event.id}/publish").status_code == 302
    db.session.expire_all()
    states = {(j.kind, j.state) for j in db.session.scalars(select(PlannedJob))}
    assert states == {("reminder", "planned"), ("briefing", "planned"), ("nudge", "planned"), ("thanks", "planned")}
    assert auth.post(f"/admin/events/{event.id}/cancel", {"reason": "Speaker ill"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Event, event.id).status == "cancelled"
    assert {j.state for j in db.session.scalars(select(PlannedJob))} == {"cancelled"}


def test_add_new_and_existing_speaker(auth, create_event):
    event = create_event()
    response = auth.post(f"/admin/events/{event.id}/speakers", {
        "name": "Soumith Chintala", "email": "s@example.org", "affiliation": "Meta", "bio": "PyTorch", "role": "panelist"})
    assert response.status_code == 302
    speaker = db.session.scalar(select(Speaker))
    other = create_event(title="Other")
    assert auth.post(f"/admin/events/{other.id}/speakers", {"speaker_id": str(speaker.id), "role": "host"}).status_code == 302
    links = {(link.event_id, link.role) for link in db.session.scalars(select(EventSpeaker))}
    assert links == {(event.id, "panelist"), (other.id, "host")}


def test_invalid_speaker_changes_nothing(auth, create_event):
    event = create_event()
    response = auth.post(f"/admin/events/{event.id}/speakers", {"name": "", "email": "not-an-email", "role": "boss"})
    assert response.status_code == 303
    assert db.session.scalar(select(func.count()).select_from(Speaker)) == 0


def test_dashboard_shows_counts(auth, create_event):
    create_event(title="Dashboard event", capacity=30)
    page = auth.client.get("/admin/").get_data(as_text=True)
    assert "Dashboard event" in page
    assert "Next jobs due" in page


def test_event_page_shows_job_counts_and_sent_log(app, auth, create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    add_confirmed(db.session, event.id, 3, now=now)
    job = db.session.scalar(select(PlannedJob).where(PlannedJob.event_id == event.id, PlannedJob.kind == "reminder"))
    due = job.due_at
    db.session.commit()
    dispatch.fire(db.session, job.id, worker="w", clock=lambda: due)
    report = outbox.deliver(db.session, lambda: transport_from_config(app.config), app, worker="w",
                            clock=lambda: due + timedelta(seconds=1))
    assert report.sent == 3
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert "Sent log" in page
    sent_rows = page.split('id="sent-heading"')[1]
    assert "<td>Reminder</td>\n      <td>sent</td>\n      <td>3</td>" in sent_rows
    assert '<tr class="job job-done">' in page


def test_event_detail_draws_signups_chart_and_timeline(app, auth, create_event, now):
    event = create_event(title="Chart <night>", capacity=10)
    for n, hours_ago in enumerate((30, 2)):
        signups.sign_up(db.session, event, name=f"P{n}", email=f"p{n}@example.org", now=now - timedelta(hours=hours_ago),
                        secret=app.config["SECRET_KEY"])
    db.session.commit()

    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)

    assert 'aria-label="Signups over time for Chart &lt;night&gt;"' in page
    assert re.search(r"<desc id=\"chart-signups-desc-\w+\">2 signups between ", page)
    assert 'aria-label="Jobs timeline for Chart &lt;night&gt;"' in page
    # Two reminders (1 day, 1 hour), briefing, nudge and thanks: one dot each, all still planned.
    assert page.count('class="job-dot job-planned"') == 5
    assert "<night>" not in page


def test_event_detail_without_signups_says_so(auth, create_event):
    event = create_event()
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert '<p class="empty">No signups yet.</p>' in page
    assert "chart-signups" not in page


CSRF_EXEMPT_TOKEN_ENDPOINTS = {"signup.unsubscribe"}
SAMPLE_VALUES = {"int": "1", "default": "x", "string": "x", "path": "x"}


def concrete(rule) -> str:
    """Fill a URL rule's variables with sample values."""
    def fill(match):
        converter = match.group(1) or "default"
        return SAMPLE_VALUES.get(converter.split("(")[0], "x")
    return re.sub(r"<(?:([a-z]+(?:\([^)]*\))?):)?[a-z_]+>", fill, rule.rule)


def test_every_admin_endpoint_refuses_anonymous(app, client, create_event):
    create_event()
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.") and r.endpoint != "admin.login"]
    assert len(rules) >= 8
    for rule in rules:
        url = concrete(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            assert response.status_code in (302, 401, 403, 400), (method, url, response.status_code)
            if response.status_code == 302:
                assert "/admin/login" in response.headers["Location"], (method, url)


def test_every_post_refuses_missing_csrf(app, client, auth, create_event):
    event = create_event()
    before = db.session.scalar(select(func.count()).select_from(Event))
    posts = [r for r in app.url_map.iter_rules() if "POST" in r.methods]
    assert posts
    for rule in posts:
        url = concrete(rule).replace("/x", f"/{event.slug}")
        response = client.post(url, data={"title": "changed", "email": "a@b.test", "name": "x"})
        # A session-cookie POST without a token is refused: 400 (CSRF) or 401 for bearer-only endpoints.
        # RFC 8058 one-click unsubscribe is CSRF-exempt (mail providers POST it); its private token is
        # the protection, so a wrong token is simply not found.
        expected = (404,) if rule.endpoint in CSRF_EXEMPT_TOKEN_ENDPOINTS else (400, 401)
        assert response.status_code in expected, (url, response.status_code)
    assert db.session.scalar(select(func.count()).select_from(Event)) == before
    db.session.expire_all()
    assert db.session.get(Event, event.id).title == event.title


def test_login_rejects_wrong_password(client, admin_user):
    response = Auth(client).login(password="wrong password")
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


@pytest.mark.timing  # compares measured times: run alone
def test_login_takes_as_long_for_an_unknown_address_as_for_an_organisers(client, admin_user):
    """Both check a password hash: the medians of 20 interleaved wrong-password logins each are alike.

    A hash takes about 80 ms and the rest of a login 3 ms: without the dummy hash an unknown address
    answers some 25 times sooner, far below the half this allows.
    """
    token = csrf_token(client)
    timings: dict[str, list[float]] = {"organiser@townhall.test": [], "stranger@townhall.test": []}
    for _ in range(20):
        for email, times in timings.items():
            started = time.perf_counter()
            response = client.post("/admin/login", data={"email": email, "password": "wrong password",
                                                         "csrf_token": token})
            times.append(time.perf_counter() - started)
            assert response.status_code == 401
    known, unknown = (statistics.median(times) for times in timings.values())
    assert unknown >= 0.5 * known, f"known {known * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms"


def test_login_with_a_control_character_in_the_address_is_refused(client, admin_user):
    response = Auth(client).login(email="organiser\x00@townhall.test")
    assert response.status_code == 422
    assert "Remove the control characters." in response.get_data(as_text=True)


def test_login_next_is_not_an_open_redirect(client, admin_user):
    token = csrf_token(client)
    response = client.post("/admin/login?next=//evil.example/", data={
        "email": "organiser@townhall.test", "password": "correct horse battery", "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_session_cookie_is_httponly(client, admin_user):
    response = Auth(client).login()
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def copy_of_session(app, client):
    """Another browser holding a copy of `client`'s session cookie, as a thief would."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def test_session_cookie_copied_before_logout_no_longer_opens_the_admin(app, client, auth):
    copy = copy_of_session(app, client)
    assert copy.get("/admin/").status_code == 200
    assert auth.post("/admin/logout").status_code == 302
    assert copy.get("/admin/").status_code == 302
    assert client.get("/admin/").status_code == 302
    assert auth.login().status_code == 302  # a new login works, and the old copy stays out
    assert client.get("/admin/").status_code == 200
    assert copy.get("/admin/").status_code == 302


def test_new_password_ends_every_earlier_session(app, client, auth, runner):
    copy = copy_of_session(app, client)
    result = runner.invoke(args=["create-admin", "--email", "organiser@townhall.test", "--password", "new password!"])
    assert result.exit_code == 0, result.output
    assert client.get("/admin/").status_code == 302
    assert copy.get("/admin/").status_code == 302
    assert auth.login(password="new password!").status_code == 302
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("removal", ["deactivated", "deleted"])
def test_removed_organiser_session_no_longer_opens_the_admin(client, auth, admin_user, removal):
    if removal == "deleted":
        db.session.delete(admin_user)
    else:
        admin_user.active = False
    db.session.commit()
    assert client.get("/admin/").status_code == 302


def test_login_rotates_the_csrf_token(client, admin_user):
    before = csrf_token(client)
    assert Auth(client).login().status_code == 302
    assert client.post("/admin/logout", data={"csrf_token": before}).status_code == 400
    assert client.get("/admin/").status_code == 200  # still signed in: the stale token changed nothing
    after = csrf_token(client, "/admin/")
    assert after != before
    assert client.post("/admin/logout", data={"csrf_token": after}).status_code == 302
    assert client.get("/admin/").status_code == 302


# --- the outbox: the subject of a message composed at delivery -----------------------------------

def _outbox_subject(client, row_id: int) -> str:
    """The Subject cell of one message on /admin/outbox, unescaped."""
    import html

    page = client.get("/admin/outbox").get_data(as_text=True)
    row = re.search(rf'<tr class="message[^"]*" id="message-{row_id}">(.*?)</tr>', page, re.S).group(1)
    return html.unescape(re.search(r'<td data-label="Subject"[^>]*>(.*?)</td>', row, re.S).group(1))


def _deferred_row():
    from scheduler.models import OutboxMessage

    row = db.session.scalars(select(OutboxMessage)).one()
    assert (row.subject, row.body_text) == (None, None)  # composed at delivery
    return row


def test_outbox_shows_the_subject_a_deferred_message_will_be_sent_with(app, auth, create_event, now):
    from scheduler.models import OutboxMessage
    from tests.support import signup

    event = create_event(title="Subjects <night>")
    assert signup(auth.client, event).status_code == 200
    row_id = _deferred_row().id

    shown = _outbox_subject(auth.client, row_id)

    assert shown == "You're registered: Subjects <night>"
    db.session.expire_all()
    assert (db.session.get(OutboxMessage, row_id).subject, db.session.get(OutboxMessage, row_id).body_text) == (
        None, None)  # the page composed a copy: the row still waits to be composed when sent
    report = outbox.deliver(db.session, lambda: transport_from_config(app.config), app, worker="w",
                            clock=lambda: now + timedelta(minutes=1))
    assert report.sent == 1
    db.session.expire_all()
    assert db.session.get(OutboxMessage, row_id).subject == shown


def test_outbox_shows_the_subject_of_a_failed_message_that_was_never_written(auth, create_event):
    from tests.support import signup

    event = create_event(title="Failed before writing")
    assert signup(auth.client, event).status_code == 200
    row = _deferred_row()
    row.state, row.attempts, row.last_error = "failed", 5, "gave up after 5 attempts: 451 try later"
    db.session.commit()
    assert _outbox_subject(auth.client, row.id) == "You're registered: Failed before writing"


def test_outbox_says_why_a_message_cannot_be_composed(auth, create_event):
    from sqlalchemy import delete

    from scheduler.models import Registration
    from tests.support import signup

    event = create_event(title="Gone")
    assert signup(auth.client, event).status_code == 200
    row = _deferred_row()
    db.session.execute(delete(Registration.__table__))
    row.state = "failed"
    db.session.commit()
    assert _outbox_subject(auth.client, row.id) == (
        '<span class="help">cannot be composed: the registration no longer exists</span>')
