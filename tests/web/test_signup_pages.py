"""Attendee pages (scheduler.web.signup) as people read them: the two-step cancel, and the manage page's
calendar links, which carry the join link as the personal feed does."""

from __future__ import annotations

import html
import re
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


def test_manage_calendar_links_carry_the_join_link_as_the_personal_feed_does(app, client, create_event):
    event = create_event(title="Online only", summary="All about it", venue="")
    signup(client, event)
    page = manage_page(app, client)
    google, outlook = link_query(page, GOOGLE), link_query(page, OUTLOOK)
    assert google["details"] == outlook["body"] == (
        f"All about it\n\nJoin online: {event.join_url}\n\nhttp://townhall.test/events/{event.slug}")
    assert google["location"] == outlook["location"] == event.join_url
    feed = personal_feed_event(app, client)
    assert f"Join online: {event.join_url}" in str(feed["DESCRIPTION"])
    assert str(feed["LOCATION"]) == google["location"]


def test_manage_calendar_links_keep_the_venue_as_location(app, client, create_event):
    event = create_event(venue="Town hall, room 2")
    signup(client, event)
    google = link_query(manage_page(app, client), GOOGLE)
    assert google["location"] == "Town hall, room 2" == str(personal_feed_event(app, client)["LOCATION"])
    assert f"Join online: {event.join_url}" in google["details"]


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
