"""The door through the test client: the waiting page never shows the join URL, the open door redirects and
records attendance once per person, shut doors for cancelled places, and the door link (not the join URL)
in every mail, the manage page and the personal feeds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.domain import door, signups
from scheduler.extensions import db
from scheduler.models import EventSpeaker, Registration
from tests.support import token_for

JOIN = "https://meet.example.org/very-secret-room"


def join(app, event, name: str, now, **kw) -> Registration:
    registration = signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@example.org", now=now,
                                   secret=app.config["SECRET_KEY"], **kw).registration
    db.session.commit()
    return registration


def door_path(app, registration: Registration) -> str:
    return f"/door/{registration.id}/{door.registrant_token(app.config['SECRET_KEY'], registration)}"


def speaker_door_path(app, link: EventSpeaker) -> str:
    return f"/door/s/{link.id}/{door.speaker_token(app.config['SECRET_KEY'], link)}"


def at(app, moment) -> None:
    app.config["CLOCK"] = lambda: moment


def reveals(response) -> bool:
    """Whether the join URL is anywhere in a response: its body or any header (Location, Refresh, Link)."""
    return JOIN in response.get_data(as_text=True) or any(JOIN in value for _, value in response.headers)


def attendance(registration: Registration):
    db.session.expire_all()
    row = db.session.get(Registration, registration.id)
    return row.door_first_at, row.door_last_at


@pytest.fixture
def event(create_event, now):
    return create_event(join_url=JOIN, starts_at=now + timedelta(hours=2), board_public=True,
                        speakers=[("Alan Turing", "host")])


# --- before the opening -------------------------------------------------------------------------

def test_before_opening_waiting_page_counts_down_without_the_join_url(app, client, event, now):
    registration = join(app, event, "Ada", now)
    response = client.get(door_path(app, registration))
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert not reveals(response)
    page = response.get_data(as_text=True)
    left = int((event.starts_at - timedelta(minutes=15) - now).total_seconds())
    assert f'data-seconds="{left}"' in page and ">01:45:00</time>" in page
    assert "The door opens in 105 minutes" in page
    assert '<meta http-equiv="refresh" content="3600">' in page  # hourly while far, also without JS
    assert 'src="/static/door.js"' in page
    assert f'href="/events/{event.slug}/questions"' in page  # the board
    assert "calendar.google.com" in page and "outlook.live.com" in page and f"/events/{event.slug}.ics" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert attendance(registration) == (None, None)


def test_one_second_before_opening_still_waits_also_for_head(app, client, event, now):
    registration = join(app, event, "Ada", now)
    at(app, event.starts_at - timedelta(minutes=15, seconds=1))
    for method in (client.get, client.head):
        response = method(door_path(app, registration))
        assert response.status_code == 200 and not reveals(response)
    # The page reloads itself the moment the door opens, also without JavaScript.
    assert '<meta http-equiv="refresh" content="1">' in client.get(door_path(app, registration)).get_data(as_text=True)
    assert attendance(registration) == (None, None)


def test_waiting_page_long_ahead_reloads_hourly(app, client, create_event, now):
    event = create_event(join_url=JOIN, starts_at=now + timedelta(days=3))
    registration = join(app, event, "Ada", now)
    page = client.get(door_path(app, registration)).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="3600">' in page and ">2:23:45:00</time>" in page
    assert "The door opens in 2 days" in page
    assert JOIN not in page
    # The board is not public: no link that would carry the registrant's manage token.
    assert token_for(app, registration) not in page and "/questions" not in page


def test_door_offset_is_configurable(app, client, event, now):
    event.door_offset = 3 * 3600
    db.session.commit()
    registration = join(app, event, "Ada", now)
    response = client.get(door_path(app, registration))
    assert (response.status_code, response.headers["Location"]) == (302, JOIN)


# --- open ---------------------------------------------------------------------------------------

def test_open_door_redirects_and_records_the_first_and_last_pass(app, client, event, now):
    registration = join(app, event, "Ada", now)
    opening = event.starts_at - timedelta(minutes=15)
    at(app, opening)
    response = client.get(door_path(app, registration))
    assert (response.status_code, response.headers["Location"]) == (302, JOIN)
    assert response.headers["Cache-Control"] == "no-store"
    assert attendance(registration) == (opening, opening)
    later = event.starts_at + timedelta(minutes=20)
    at(app, later)
    assert client.get(door_path(app, registration)).headers["Location"] == JOIN
    assert attendance(registration) == (opening, later)


def test_head_through_an_open_door_is_not_attendance(app, client, event, now):
    registration = join(app, event, "Ada", now)
    at(app, event.starts_at)
    assert client.head(door_path(app, registration)).status_code == 302
    assert attendance(registration) == (None, None)


def test_two_people_are_counted_once_each(app, client, event, now):
    ada, grace = join(app, event, "Ada", now), join(app, event, "Grace", now)
    at(app, event.starts_at)
    for _ in range(3):
        client.get(door_path(app, ada))
    client.get(door_path(app, grace))
    assert door.attendance(db.session, event) == (2, 0)


def test_speaker_door_redirects_and_records_per_event(app, client, event, now):
    link = event.speakers[0]
    path = speaker_door_path(app, link)
    waiting = client.get(path)
    assert waiting.status_code == 200 and not reveals(waiting)
    at(app, event.starts_at)
    assert client.get(path).headers["Location"] == JOIN
    db.session.expire_all()
    assert db.session.get(EventSpeaker, link.id).door_first_at == event.starts_at
    assert door.attendance(db.session, event) == (0, 1)


def test_open_door_of_an_event_without_join_url_says_so(app, client, create_event, now):
    event = create_event(join_url="", venue="Town hall, <b>room 2</b>", starts_at=now + timedelta(minutes=5))
    registration = join(app, event, "Ada", now)
    response = client.get(door_path(app, registration))
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Location" not in response.headers
    assert "There is no online link for this event" in page and "&lt;b&gt;room 2&lt;/b&gt;" in page


# --- after the end ------------------------------------------------------------------------------

def test_after_the_end_the_page_says_so_without_the_join_url(app, client, event, now):
    registration = join(app, event, "Ada", now)
    at(app, event.ends_at)
    response = client.get(door_path(app, registration))
    assert response.status_code == 200 and not reveals(response)
    page = response.get_data(as_text=True)
    assert "This event has ended" in page and f'href="/events/{event.slug}/questions"' in page
    assert attendance(registration) == (None, None)


# --- shut ---------------------------------------------------------------------------------------

def test_cancelled_registration_finds_the_door_shut_during_the_window(app, client, event, now):
    registration = join(app, event, "Ada", now)
    signups.cancel_registration(db.session, registration, now=now)
    db.session.commit()
    at(app, event.starts_at)
    response = client.get(door_path(app, registration))
    assert response.status_code == 410 and not reveals(response)
    assert "This link no longer opens" in response.get_data(as_text=True)
    assert attendance(registration) == (None, None)


def test_waitlisted_place_is_shut_until_confirmed(app, client, create_event, now):
    event = create_event(join_url=JOIN, capacity=1, starts_at=now + timedelta(minutes=5))
    join(app, event, "Ada", now)
    waiting = join(app, event, "Grace", now)
    response = client.get(door_path(app, waiting))
    assert response.status_code == 403 and not reveals(response)
    assert "not confirmed yet" in response.get_data(as_text=True)


def test_cancelled_event_shuts_every_door(app, client, event, now):
    from scheduler.domain import events as event_rules

    registration = join(app, event, "Ada", now)
    event_rules.cancel_event(db.session, event, now=now)
    db.session.commit()
    at(app, event.starts_at)
    for path in (door_path(app, registration), speaker_door_path(app, event.speakers[0])):
        response = client.get(path)
        assert response.status_code == 410 and not reveals(response)


def test_unknown_or_forged_links_are_404(app, client, event, now):
    registration = join(app, event, "Ada", now)
    at(app, event.starts_at)
    token = door.registrant_token(app.config["SECRET_KEY"], registration)
    manage = token_for(app, registration)
    for path in (f"/door/{registration.id + 99}/{token}", f"/door/{registration.id}/{manage}",
                 f"/door/{registration.id}/{token[:-2]}xx", f"/door/{registration.id}/short",
                 f"/door/s/{event.speakers[0].id}/{token}", "/door/abc/def"):
        response = client.get(path)
        assert response.status_code == 404 and not reveals(response), path
    assert attendance(registration) == (None, None)


# --- the door link where the join URL used to be -------------------------------------------------

BASE = "http://townhall.test"


def unfolded(ics: str) -> str:
    return ics.replace("\r\n ", "")


def fire(event, kind: str, now) -> None:
    from scheduler import dispatch
    from scheduler.domain import reminders

    job = next(j for j in reminders.event_jobs(db.session, event.id) if j.kind == kind and j.due_at > now)
    assert dispatch.fire(db.session, job.id, worker="test", clock=lambda: job.due_at).outcome == "done"
    db.session.expire_all()


def test_confirmation_mail_and_invitation_carry_the_door_link_not_the_join_url(app, event, now):
    from tests.support import outbox

    registration = join(app, event, "Ada", now)
    [mail] = outbox("confirmed")
    link = BASE + door_path(app, registration)
    assert link in mail.body_text and link in mail.body_html and link in unfolded(mail.ics)
    assert JOIN not in mail.body_text + mail.body_html + unfolded(mail.ics)


def test_reminder_and_speaker_mails_carry_each_persons_own_door_link(app, event, now):
    from sqlalchemy import select

    from scheduler.models import OutboxMessage

    ada, grace = join(app, event, "Ada", now), join(app, event, "Grace", now)
    fire(event, "reminder", now)
    fire(event, "nudge", now)
    mails = {m.to_addr: m for m in db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind.in_(("reminder", "speaker_nudge"))))}
    for person in (ada, grace):
        mail = mails[person.email]
        assert BASE + door_path(app, person) in mail.body_text and BASE + door_path(app, person) in mail.body_html
        assert JOIN not in mail.body_text + mail.body_html
    speaker = mails["alan@speakers.test"]
    assert BASE + speaker_door_path(app, event.speakers[0]) in speaker.body_text
    assert JOIN not in speaker.body_text + speaker.body_html


def test_starting_soon_mail_carries_the_door_link(app, event, now):
    from tests.support import outbox

    join(app, event, "Ada", now)
    fire(event, "reminder", now)  # the 1 hour reminder went out: later signups get "starting soon"
    at(app, event.starts_at - timedelta(minutes=30))
    grace = join(app, event, "Grace", event.starts_at - timedelta(minutes=30))
    [mail] = outbox("starting_soon")
    assert BASE + door_path(app, grace) in mail.body_text and BASE + door_path(app, grace) in mail.body_html
    assert JOIN not in mail.body_text + mail.body_html


def test_update_mail_carries_the_door_link_when_the_join_url_changes(app, event, now):
    from scheduler.domain.events import update_event
    from tests.support import outbox

    registration = join(app, event, "Ada", now)
    update_event(db.session, event, now=now, join_url="https://meet.example.org/new-secret-room")
    db.session.commit()
    mails = {m.to_addr: m for m in outbox("event_updated")}
    everything = "".join(m.body_text + m.body_html + unfolded(m.ics or "") for m in mails.values())
    assert "new-secret-room" not in everything and JOIN not in everything
    assert BASE + door_path(app, registration) in mails["ada@example.org"].body_text
    assert BASE + door_path(app, registration) in unfolded(mails["ada@example.org"].ics)
    assert BASE + speaker_door_path(app, event.speakers[0]) in mails["alan@speakers.test"].body_text


def test_manage_page_shows_the_door_link_not_the_join_url(app, client, event, now):
    registration = join(app, event, "Ada", now)
    page = client.get(f"/r/{token_for(app, registration)}").get_data(as_text=True)
    assert f'href="{BASE}{door_path(app, registration)}"' in page
    assert "opens 15 minutes before the start" in page
    assert JOIN not in page and "very-secret-room" not in page  # the Google and Outlook links included


def test_personal_and_speaker_feeds_lead_through_the_door(app, client, event, now):
    from scheduler.tokens import feed_token
    from scheduler.web.feeds import speaker_feed_url

    registration = join(app, event, "Ada", now)
    ics = unfolded(client.get(f"/feeds/{feed_token(app.config['SECRET_KEY'], registration)}.ics")
                   .get_data(as_text=True))
    door_link = BASE + door_path(app, registration)
    assert f"URL:{door_link}" in ics and f"LOCATION:{door_link}" in ics and door_link in ics.split("DESCRIPTION:")[1]
    assert JOIN not in ics
    speaker_url = speaker_feed_url(db.session, event.speakers[0].speaker)
    db.session.commit()
    ics = unfolded(client.get(speaker_url.removeprefix(BASE)).get_data(as_text=True))
    assert BASE + speaker_door_path(app, event.speakers[0]) in ics and JOIN not in ics


def test_public_pages_feeds_and_api_never_show_the_join_url(app, client, event, now):
    join(app, event, "Ada", now)
    for path in (f"/events/{event.slug}", f"/events/{event.slug}.ics", "/calendar.ics", "/api/v1/events",
                 f"/api/v1/events/{event.slug}", f"/events/{event.slug}/questions"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert not reveals(response), path


# --- the organiser sets the opening, and sees who came ------------------------------------------

def form_data(event, **overrides) -> dict:
    """The event form as the organiser sends it back, with `overrides` changed."""
    data = {"title": event.title, "slug": event.slug, "kind": event.kind, "timezone": "UTC",
            "starts_at": f"{event.starts_at:%Y-%m-%dT%H:%M}", "ends_at": f"{event.ends_at:%Y-%m-%dT%H:%M}",
            "join_url": event.join_url, "reminders": "1d, 1h", "briefing_offset": "3d", "nudge_offset": "15m",
            "thanks_offset": "1h", "board_mode": "open", "board_public": "y"}
    return data | overrides


def test_admin_form_sets_the_door_opening_and_refuses_out_of_range(app, client, auth, event, now):
    path = f"/admin/events/{event.id}/edit"
    assert 'name="door_minutes"' in client.get(path).get_data(as_text=True)
    assert 'value="15"' in client.get(path).get_data(as_text=True)
    assert auth.post(path, form_data(event, door_minutes="45")).status_code == 302
    db.session.expire_all()
    assert db.session.get(type(event), event.id).door_offset == 45 * 60
    for bad in ("-1", "10081", "soon"):
        response = auth.post(path, form_data(event, door_minutes=bad))
        assert response.status_code == 422, bad
        db.session.expire_all()
        assert db.session.get(type(event), event.id).door_offset == 45 * 60


def test_api_takes_and_shows_the_door_offset(app, client, event, now):
    from scheduler import clock
    from scheduler.domain import api_tokens

    db.session.commit()
    _row, token = api_tokens.create_token(db.session, name="write token", scope="write", now=clock.now())
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    payload = {"title": "Door through the API", "timezone": "UTC", "starts_at": "2026-11-20T18:00:00+00:00",
               "ends_at": "2026-11-20T19:00:00+00:00", "join_url": JOIN, "door_offset": 600}
    response = client.post("/api/v1/events", json=payload, headers=headers)
    assert (response.status_code, response.get_json()["door_offset"]) == (201, 600)
    slug = response.get_json()["slug"]
    response = client.patch(f"/api/v1/events/{slug}", json={"door_offset": 0}, headers=headers)
    assert (response.status_code, response.get_json()["door_offset"]) == (200, 0)
    for bad in (-1, 7 * 86400 + 1, None, "15m"):
        response = client.patch(f"/api/v1/events/{slug}", json={"door_offset": bad}, headers=headers)
        assert (response.status_code, list(response.get_json()["error"]["fields"])) == (422, ["door_offset"]), bad
    assert "door_offset" in client.get("/api/v1/openapi.json").get_data(as_text=True)


def test_admin_event_page_counts_who_came_through(app, client, auth, event, now):
    ada, _grace = join(app, event, "Ada", now), join(app, event, "Grace", now)
    at(app, event.starts_at)
    client.get(door_path(app, ada))
    client.get(speaker_door_path(app, event.speakers[0]))
    page = client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert "<strong>1</strong> came in through their door (and 1 speaker)" in page


def test_whole_series_feeds_lead_through_each_occurrences_door(app, client, now):
    from sqlalchemy import select

    from scheduler.domain import events as event_rules
    from scheduler.domain import series as series_rules
    from scheduler.domain import series_signups
    from scheduler.models import Registration
    from scheduler.tokens import feed_token
    from scheduler.web.feeds import speaker_feed_url

    secret = app.config["SECRET_KEY"]
    speaker = event_rules.create_speaker(db.session, now=now, name="Grace Hopper", email="grace@speakers.test")
    series = series_rules.create_series(
        db.session, now=now, title="Community call", timezone="Europe/Berlin", freq="weekly", byday="WE",
        first_start=now + timedelta(days=2), duration_minutes=60, count=3, double_opt_in=False, join_url=JOIN,
        speakers=[[speaker.id, "host"]])
    series_rules.publish_series(db.session, series, now=now, secret=secret)
    subscription, _outcome = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org",
                                                      timezone="Europe/Paris", now=now, secret=secret)
    speaker_url = speaker_feed_url(db.session, speaker)
    db.session.commit()
    places = list(db.session.scalars(select(Registration).where(Registration.subscription_id == subscription.id)))
    personal = unfolded(client.get(f"/feeds/{feed_token(secret, places[0])}.ics").get_data(as_text=True))
    assert JOIN not in personal
    assert len(places) == 3 and all(BASE + door_path(app, place) in personal for place in places)
    assert JOIN not in client.get(speaker_url.removeprefix(BASE)).get_data(as_text=True)
