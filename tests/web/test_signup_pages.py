"""Attendee pages (scheduler.web.signup) as people read them: the page after signing up, the two-step cancel,
and the manage page's calendar links, which carry the join link as the personal feed does."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, unquote_plus, urlsplit

from icalendar import Calendar

from scheduler.domain.events import cancel_event
from scheduler.extensions import db
from scheduler.tokens import feed_token
from tests.support import CSRF_RE, csrf_token, outbox, registration, signup, token_for

GOOGLE = "https://calendar.google.com/calendar/render?"
OUTLOOK = "https://outlook.live.com/calendar/0/action/compose?"


def link_query(page: str, prefix: str) -> dict[str, str]:
    """The query of the one link on the page that starts with `prefix`, decoded."""
    [href] = re.findall(r'href="(' + re.escape(prefix) + r'[^"]*)"', page)
    return {key: values[0] for key, values in parse_qs(urlsplit(html.unescape(href)).query).items()}


def decoded(page: str) -> str:
    """The page with its links' query strings decoded: a join URL inside a calendar link is percent-encoded."""
    return unquote_plus(html.unescape(page))


def manage_page(app, client, email: str = "ada@example.org") -> str:
    return client.get(f"/r/{token_for(app, registration(email))}").get_data(as_text=True)


def personal_feed_event(app, client, email: str = "ada@example.org"):
    body = client.get(f"/feeds/{feed_token(app.config['SECRET_KEY'], registration(email))}.ics").get_data()
    [vevent] = Calendar.from_ical(body).events
    return vevent


# --- the page after signing up -------------------------------------------------------------------


def test_thanks_page_same_for_new_and_known_address_taking_the_last_seat(client, create_event):
    """A new address that takes the last seat and a known one, at the same moment, see the same page."""
    event = create_event(capacity=2)
    signup(client, event, email="ada@example.org")  # one seat left
    known = signup(client, event, email="ada@example.org").get_data(as_text=True)
    new = signup(client, event, email="bob@example.org").get_data(as_text=True)  # takes the last seat
    assert known.replace("ada@", "bob@") == new
    assert "The event is full" not in new
    assert [registration(e).state for e in ("ada@example.org", "bob@example.org")] == ["confirmed", "confirmed"]
    # Now full: a known address and a new one (waitlisted) again see the same page.
    known = signup(client, event, email="ada@example.org").get_data(as_text=True)
    new = signup(client, event, email="cyd@example.org").get_data(as_text=True)
    assert known.replace("ada@", "cyd@") == new
    assert "The event is full, so new signups join the waitlist." in new
    assert registration("cyd@example.org").state == "waitlisted"


def test_thanks_page_same_for_new_and_known_address_with_opt_in(client, create_event):
    event = create_event(capacity=5, double_opt_in=True)
    first = signup(client, event, email="ada@example.org", timezone="Asia/Tokyo").get_data(as_text=True)
    again = signup(client, event, email="ada@example.org", timezone="Asia/Tokyo").get_data(as_text=True)
    assert first == again
    assert "One click on the link in the message confirms your place." in first


def test_thanks_page_without_opt_in_says_what_comes_next(client, create_event):
    event = create_event(title="Open office hours", double_opt_in=False, venue="")
    page = signup(client, event).get_data(as_text=True)
    assert "Thanks — check your email" in page
    assert "Thanks for signing up for <strong>Open office hours</strong>." in page
    assert "<li>Your confirmation, with the calendar invitation attached, is on its way.</li>" in page
    assert "<li>We remind you 1 day and 1 hour before the start, with the join link.</li>" in page
    assert "<li>Every message has your private link to see your status, cancel, or change your question.</li>" in page
    assert "It comes from <strong>Townhall &lt;events@townhall.test&gt;</strong>." in page
    assert "look in your spam or junk folder" in page
    # Add to calendar: the public event, never its join link.
    assert f'href="/events/{event.slug}.ics"' in page
    assert 'href="webcal://townhall.test/calendar.ics"' in page
    google = link_query(page, GOOGLE)
    assert (google["text"], google["ctz"]) == ("Open office hours", "Europe/Berlin")
    assert google["details"] == f"http://townhall.test/events/{event.slug}"
    assert "location" not in google
    assert link_query(page, OUTLOOK)["body"] == f"http://townhall.test/events/{event.slug}"
    assert event.join_url not in decoded(page)


def test_thanks_page_with_opt_in_tells_how_long_the_seat_is_held(app, client, create_event):
    app.config["HOLD_EXPIRY_HOURS"] = 2.0
    event = create_event(double_opt_in=True, venue="Town hall, room 2", join_url="")
    page = signup(client, event, timezone="Asia/Tokyo").get_data(as_text=True)
    # The fixed clock is Monday 2 November 2026, 12:00 UTC: two hours later, in the zone the person chose.
    assert ("One click on the link in the message confirms your place. We hold your seat until "
            "Monday 2 November 2026, 23:00 JST (Asia/Tokyo); after that") in page
    assert ("<li>Once you have confirmed, the calendar invitation follows by email, and we remind you 1 day and "
            "1 hour before the start.</li>") in page  # no join link to promise: the event is not online
    assert "is on its way" not in page


def test_thanks_page_for_a_full_event_explains_the_waitlist(client, create_event):
    event = create_event(capacity=1, double_opt_in=True)
    signup(client, event, email="first@example.org")
    page = signup(client, event, email="second@example.org").get_data(as_text=True)
    assert ("<li>The event is full, so new signups join the waitlist. When a seat frees up, it goes to the head of "
            "the waitlist and we email you at once.</li>") in page
    assert "Click the link in the message to confirm your address" in page
    assert ("With a seat, you get the calendar invitation and reminders 1 day and 1 hour before the start, "
            "with the join link.") in page
    assert "One click" not in page and "is on its way" not in page


def test_thanks_page_soon_before_the_start(app, client, create_event, now):
    """Only reminders still ahead are promised; a hold never lasts past the start."""
    event = create_event(starts_at=now + timedelta(hours=3), double_opt_in=True, timezone="UTC")
    page = signup(client, event, timezone="UTC").get_data(as_text=True)
    assert "we remind you 1 hour before the start, with the join link." in page
    assert "We hold your seat until Monday 2 November 2026, 15:00 UTC (UTC)" in page
    later = create_event(starts_at=now + timedelta(minutes=30))
    page = signup(client, later).get_data(as_text=True)
    assert "remind you" not in page and "reminders" not in page


def test_thanks_page_shows_a_bot_the_same_page(client, create_event):
    event = create_event(double_opt_in=True, timezone="Europe/Berlin")
    bot = signup(client, event, timezone="Europe/Berlin", website="http://spam.example.org")
    person = signup(client, event, timezone="Europe/Berlin")
    assert bot.get_data(as_text=True) == person.get_data(as_text=True)
    assert [m.kind for m in outbox()] == ["signup_received"]


# --- cancelling takes two steps ------------------------------------------------------------------


def test_manage_cancel_button_leads_to_a_page_that_asks_first(app, client, create_event):
    event = create_event(title="Keep or go", capacity=1)
    signup(client, event, email="a@example.org")
    signup(client, event, email="b@example.org")
    token = token_for(app, registration("a@example.org"))
    manage = client.get(f"/r/{token}").get_data(as_text=True)
    assert f'<a class="button danger" href="/r/{token}/cancel">Cancel my registration</a>' in manage
    assert f'action="/r/{token}/cancel"' not in manage  # no form that cancels in one click

    response = client.get(f"/r/{token}/cancel")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert '<h1 id="cancel-heading">Cancel your place at Keep or go?</h1>' in page
    assert f'<form method="post" action="/r/{token}/cancel">' in page and CSRF_RE.search(page)
    assert f'<a class="button" href="/r/{token}">Keep my place</a>' in page
    assert '<meta name="robots" content="noindex">' in page
    assert [registration(e).state for e in ("a@example.org", "b@example.org")] == ["confirmed", "waitlisted"]
    assert [m.kind for m in outbox()] == ["confirmed", "waitlisted"]

    response = client.post(f"/r/{token}/cancel", data={"csrf_token": csrf_token(client, f"/r/{token}/cancel")})
    assert (response.status_code, response.headers["Location"]) == (303, f"/r/{token}")
    assert [registration(e).state for e in ("a@example.org", "b@example.org")] == ["cancelled", "confirmed"]
    assert "Your registration is cancelled." in client.get(f"/r/{token}").get_data(as_text=True)


def test_cancel_page_of_a_waitlist_place_says_what_is_given_up(app, client, create_event):
    event = create_event(capacity=1)
    signup(client, event, email="a@example.org")
    signup(client, event, email="b@example.org")
    page = client.get(f"/r/{token_for(app, registration('b@example.org'))}/cancel").get_data(as_text=True)
    assert "You leave the waitlist; the people behind you move up." in page


def test_cancel_page_after_cancelling_has_nothing_to_cancel(app, client, create_event):
    event = create_event()
    signup(client, event)
    token = token_for(app, registration("ada@example.org"))
    client.post(f"/r/{token}/cancel", data={"csrf_token": csrf_token(client, f"/r/{token}/cancel")})
    page = client.get(f"/r/{token}/cancel").get_data(as_text=True)
    assert '<h1 id="cancel-heading">Nothing to cancel</h1>' in page
    assert 'method="post"' not in page
    assert client.get("/r/" + "A" * 43 + "/cancel").status_code == 404


# --- the manage page's calendar links ------------------------------------------------------------


def test_manage_calendar_links_carry_the_door_link_as_the_personal_feed_does(app, client, create_event):
    from scheduler.urls import door_url

    event = create_event(title="Online only", summary="All about it", venue="")
    signup(client, event)
    page = manage_page(app, client)
    door = door_url(registration("ada@example.org"))
    google, outlook = link_query(page, GOOGLE), link_query(page, OUTLOOK)
    assert google["details"] == outlook["body"] == (
        f"All about it\n\nJoin online: {door}\n\nhttp://townhall.test/events/{event.slug}")
    assert google["location"] == outlook["location"] == door
    assert event.join_url not in page
    feed = personal_feed_event(app, client)
    assert f"Join online: {door}" in str(feed["DESCRIPTION"])
    assert str(feed["LOCATION"]) == google["location"]


def test_manage_calendar_links_keep_the_venue_as_location(app, client, create_event):
    event = create_event(venue="Town hall, room 2")
    signup(client, event)
    google = link_query(manage_page(app, client), GOOGLE)
    assert google["location"] == "Town hall, room 2" == str(personal_feed_event(app, client)["LOCATION"])
    assert "Join online: http://townhall.test/door/" in google["details"]


def test_manage_calendar_links_without_a_confirmed_seat_have_no_join_link(app, client, create_event, now):
    full = create_event(capacity=1, venue="")
    signup(client, full, email="seated@example.org")
    signup(client, full, email="waiting@example.org")
    held = create_event(double_opt_in=True, venue="")
    signup(client, held, email="held@example.org")
    called_off = create_event(venue="")
    signup(client, called_off, email="seated-off@example.org")
    cancel_event(db.session, called_off, now=now)
    db.session.commit()
    for email, event in (("waiting@example.org", full), ("held@example.org", held),
                         ("seated-off@example.org", called_off)):
        page = manage_page(app, client, email)
        assert GOOGLE in page and OUTLOOK in page, email
        assert event.join_url not in decoded(page), email
        assert event.join_url.encode() not in client.get(
            f"/feeds/{feed_token(app.config['SECRET_KEY'], registration(email))}.ics").get_data(), email


def test_public_event_page_calendar_links_have_no_join_link(client, create_event):
    event = create_event(venue="")
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert GOOGLE in page and OUTLOOK in page
    assert event.join_url not in decoded(page)
