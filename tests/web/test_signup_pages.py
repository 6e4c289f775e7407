"""Attendee pages (scheduler.web.signup) as people read them: the two-step cancel."""

from __future__ import annotations

from tests.support import CSRF_RE, csrf_token, outbox, registration, signup, token_for

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
