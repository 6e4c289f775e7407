"""The private manage page and its actions: status, join link, confirm, cancel, reminders, question, unsubscribe."""

from __future__ import annotations

from datetime import timedelta

from scheduler.domain import signups
from scheduler.extensions import db
from tests.conftest import csrf_token
from tests.web.signup_helpers import outbox, registration, signup, token_for


def _post(client, token: str, action: str, **data):
    data.setdefault("csrf_token", csrf_token(client, f"/r/{token}"))
    return client.post(f"/r/{token}/{action}", data=data)


def test_manage_unknown_or_malformed_token_is_not_found(client):
    assert client.get("/r/" + "A" * 43).status_code == 404
    assert client.get("/r/short").status_code == 404
    assert client.post("/r/" + "A" * 43 + "/unsubscribe").status_code == 404


def test_manage_confirmed_shows_status_and_join_link(app, client, create_event):
    event = create_event(timezone="Europe/Berlin")
    signup(client, event, timezone="Asia/Tokyo")
    reg = registration("ada@example.org")
    response = client.get(f"/r/{token_for(app, reg)}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>Confirmed</strong> — you have a seat, Ada Lovelace." in page
    assert f'href="{event.join_url}"' in page
    assert "JST (Asia/Tokyo)" in page
    assert '<meta name="robots" content="noindex">' in page


def test_manage_waitlisted_shows_position_and_no_join_link(app, client, create_event):
    event = create_event(capacity=1)
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        signup(client, event, email=email)
    page = client.get(f"/r/{token_for(app, registration('c@example.org'))}").get_data(as_text=True)
    assert "<strong>On the waitlist</strong>, position 2." in page
    assert event.join_url not in page


def test_manage_pending_hides_join_link_until_confirmed_by_post(app, client, create_event):
    event = create_event(double_opt_in=True)
    signup(client, event)
    reg = registration("ada@example.org")
    token = token_for(app, reg)
    page = client.get(f"/r/{token}").get_data(as_text=True)
    assert "Waiting for your confirmation" in page and event.join_url not in page
    # The mailed link only shows a button: a mail scanner fetching it confirms nothing.
    confirm_page = client.get(f"/r/{token}/confirm")
    assert confirm_page.status_code == 200 and "Confirm my place" in confirm_page.get_data(as_text=True)
    assert registration("ada@example.org").state == "pending"
    response = _post(client, token, "confirm")
    assert (response.status_code, response.headers["Location"]) == (303, f"/r/{token}")
    assert registration("ada@example.org").state == "confirmed"
    page = client.get(f"/r/{token}").get_data(as_text=True)
    assert "Your place is confirmed. The calendar invitation is on its way." in page
    assert event.join_url in page
    assert [m.kind for m in outbox()] == ["signup_received", "confirmed"]
    _post(client, token, "confirm")  # twice is harmless
    assert [m.kind for m in outbox()] == ["signup_received", "confirmed"]


def test_manage_cancel_promotes_head_of_waitlist(app, client, create_event):
    event = create_event(capacity=1)
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        signup(client, event, email=email)
    token = token_for(app, registration("a@example.org"))
    assert client.get(f"/r/{token}/cancel").status_code == 405  # only POST changes state
    response = _post(client, token, "cancel")
    assert response.status_code == 303
    assert [registration(e).state for e in ("a@example.org", "b@example.org", "c@example.org")] == [
        "cancelled", "confirmed", "waitlisted"]
    assert [(m.kind, m.to_addr) for m in outbox()][-2:] == [("cancelled", "a@example.org"),
                                                            ("promoted", "b@example.org")]
    page = client.get(f"/r/{token_for(app, registration('c@example.org'))}").get_data(as_text=True)
    assert "position 1." in page
    assert "<strong>Cancelled</strong>" in client.get(f"/r/{token}").get_data(as_text=True)


def test_manage_reminders_opt_out_and_back(app, client, create_event):
    event = create_event()
    signup(client, event)
    token = token_for(app, registration("ada@example.org"))
    _post(client, token, "reminders", opt_out="1")
    assert registration("ada@example.org").reminders_opt_out is True
    assert "Reminders are off for this event." in client.get(f"/r/{token}").get_data(as_text=True)
    _post(client, token, "reminders", opt_out="0")
    assert registration("ada@example.org").reminders_opt_out is False


def test_manage_edit_question_escapes_and_validates(app, client, create_event):
    event = create_event()
    signup(client, event)
    token = token_for(app, registration("ada@example.org"))
    _post(client, token, "question", question="<b>Why</b> PyTorch?")
    assert registration("ada@example.org").question == "<b>Why</b> PyTorch?"
    page = client.get(f"/r/{token}").get_data(as_text=True)
    assert "&lt;b&gt;Why&lt;/b&gt; PyTorch?" in page and "<b>Why</b>" not in page
    response = _post(client, token, "question", question="x" * 2001)
    assert response.status_code == 422
    assert "Field cannot be longer than 2000 characters." in response.get_data(as_text=True)
    assert registration("ada@example.org").question == "<b>Why</b> PyTorch?"


def test_manage_actions_refuse_missing_csrf(app, client, create_event):
    event = create_event()
    signup(client, event)
    token = token_for(app, registration("ada@example.org"))
    assert client.post(f"/r/{token}/cancel").status_code == 400
    assert registration("ada@example.org").state == "confirmed"


def test_one_click_unsubscribe_works_without_session_or_csrf(app, client, create_event):
    event = create_event()
    signup(client, event)
    token = token_for(app, registration("ada@example.org"))
    assert "Stop reminders" in client.get(f"/r/{token}/unsubscribe").get_data(as_text=True)
    assert registration("ada@example.org").reminders_opt_out is False  # GET changes nothing
    fresh = app.test_client()  # a mail provider's server: no cookies, no token
    response = fresh.post(f"/r/{token}/unsubscribe", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "Reminders are off" in response.get_data(as_text=True)
    assert registration("ada@example.org").reminders_opt_out is True
    assert registration("ada@example.org").state == "confirmed"


def test_confirm_after_hold_expired_takes_free_seat(app, client, create_event, now):
    event = create_event(double_opt_in=True, capacity=1)
    signup(client, event)
    reg = registration("ada@example.org")
    assert signups.expire_holds(db.session, now=now + timedelta(hours=25)) == 1
    db.session.commit()
    token = token_for(app, reg)
    assert "<strong>Expired</strong>" in client.get(f"/r/{token}").get_data(as_text=True)
    _post(client, token, "confirm")
    assert registration("ada@example.org").state == "confirmed"


def test_manage_cancel_passes_the_seat_on_with_the_configured_hold(app, client, create_event, now):
    app.config["HOLD_EXPIRY_HOURS"] = 2.0
    event = create_event(capacity=1, double_opt_in=True)
    signup(client, event, email="a@example.org")
    signup(client, event, email="b@example.org")
    assert _post(client, token_for(app, registration("a@example.org")), "cancel").status_code == 303
    db.session.expire_all()
    promoted = registration("b@example.org")
    assert promoted.state == "pending"
    held_for = promoted.hold_expires_at - promoted.updated_at
    assert held_for == timedelta(hours=2)
