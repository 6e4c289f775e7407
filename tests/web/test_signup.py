"""Attendee pages (scheduler.web.signup): the signup form — validation, outcomes, repeats, closed windows, honeypot,
rate limit, hostile input — and the private manage page and its actions: status, join link, confirm, cancel,
reminders, question, unsubscribe."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from types import SimpleNamespace

from itsdangerous import URLSafeTimedSerializer

from scheduler import create_app
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.mail.compose import build_message
from scheduler.mail.notify import EPOCH
from scheduler.models import OutboxMessage, Registration
from scheduler.urls import door_url
from tests.support import CSRF_RE, count, csrf_token, nothing_written, outbox, registration, signup, token_for

THANKS = "Thanks — check your email"


def test_signup_form_prefills_event_zone_for_the_browser(client, create_event):
    event = create_event(timezone="America/Los_Angeles", capacity=10)
    page = client.get(f"/events/{event.slug}/signup").get_data(as_text=True)
    assert 'data-browser-timezone="replace"' in page
    assert 'value="America/Los_Angeles"' in page
    assert 'name="website"' in page and 'aria-hidden="true"' in page
    assert 'name="csrf_token"' in page
    assert "10 of 10" not in page  # seats are on the event page; the form only warns when full


def test_event_page_links_to_signup(client, create_event):
    event = create_event()
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert f'href="/events/{event.slug}/signup"' in page


def test_signup_without_opt_in_confirms_and_queues_invitation(app, client, create_event):
    event = create_event(timezone="Europe/Berlin", double_opt_in=False)
    response = signup(client, event, timezone="Asia/Tokyo")
    assert response.status_code == 200
    assert THANKS in response.get_data(as_text=True)
    reg = registration("ada@example.org")
    assert (reg.state, reg.timezone, reg.name) == ("confirmed", "Asia/Tokyo", "Ada Lovelace")
    [message] = outbox()
    assert (message.kind, message.to_addr, message.ics_method) == ("confirmed", "ada@example.org", "REQUEST")
    assert message.subject == f"You're registered: {event.title}"
    assert "METHOD:REQUEST" in message.ics and "BEGIN:VEVENT" in message.ics
    # Their own door link (web/door.py), never the join URL itself.
    assert door_url(reg) in message.body_text and door_url(reg) in message.body_html
    assert door_url(reg) in message.ics.replace("\r\n ", "")  # unfolded
    assert event.join_url not in message.body_text + message.body_html + message.ics
    assert "JST (Asia/Tokyo)" in message.body_text
    assert f"http://townhall.test/r/{token_for(app, reg)}" in message.body_text
    assert message.dedupe_key == f"confirmed:{reg.id}:{(reg.confirmed_at - EPOCH) // timedelta(microseconds=1)}"


def test_signup_with_opt_in_holds_seat_and_sends_confirm_link(app, client, create_event):
    event = create_event(double_opt_in=True, capacity=5)
    assert signup(client, event).status_code == 200
    reg = registration("ada@example.org")
    assert reg.state == "pending"
    [message] = outbox()
    assert message.kind == "signup_received"
    assert message.ics is None
    assert f"http://townhall.test/r/{token_for(app, reg)}/confirm" in message.body_text
    assert event.join_url not in message.body_text and event.join_url not in message.body_html


def test_signup_full_event_waitlists_with_position(client, create_event):
    event = create_event(capacity=1)
    signup(client, event, email="first@example.org")
    signup(client, event, email="second@example.org")
    signup(client, event, email="third@example.org")
    assert [registration(e).state for e in ("first@example.org", "second@example.org", "third@example.org")] == [
        "confirmed", "waitlisted", "waitlisted"]
    waitlisted = outbox("waitlisted")
    assert [m.to_addr for m in waitlisted] == ["second@example.org", "third@example.org"]
    assert "at position 2" in waitlisted[1].body_text
    assert event.join_url not in waitlisted[1].body_text
    page = client.get(f"/events/{event.slug}/signup").get_data(as_text=True)
    assert "The event is full: you will join the waitlist." in page


def test_signup_repeat_gives_same_page_no_second_seat_and_resends_link(client, create_event):
    event = create_event(capacity=3)
    first = signup(client, event, email="ada@example.org")
    again = signup(client, event, email="ADA@example.org", name="Someone Else")
    assert first.status_code == again.status_code == 200
    assert first.get_data(as_text=True) == again.get_data(as_text=True).replace("ADA@", "ada@")
    assert count(Registration) == 1
    assert registration("ada@example.org").name == "Ada Lovelace"
    assert [m.kind for m in outbox()] == ["confirmed", "manage_link"]
    # A third try within the window does not flood the inbox.
    signup(client, event, email="ada@example.org")
    assert [m.kind for m in outbox()] == ["confirmed", "manage_link"]


def test_signup_normalises_email(client, create_event):
    event = create_event()
    signup(client, event, email="  Ada.Lovelace@EXAMPLE.ORG ")
    reg = registration("ada.lovelace@example.org")
    assert (reg.email, reg.email_key) == ("Ada.Lovelace@example.org", "ada.lovelace@example.org")


def test_signup_invalid_fields_show_messages_and_write_nothing(client, create_event):
    event = create_event()
    response = signup(client, event, name="", email="not-an-email", timezone="Mars/Olympus", consent="")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Please tell us your name." in page
    assert "Please enter a valid email address" in page
    assert "Unknown timezone: use an IANA name such as Europe/Berlin." in page
    assert "Please agree so we can register you." in page
    assert 'aria-invalid="true"' in page
    assert nothing_written()


def test_signup_csrf_token_comes_with_every_form_page_and_is_checked(app, client, create_event):
    event = create_event()
    refused = signup(client, event, name="")
    assert refused.status_code == 422
    # The page that explains the refusal carries a token again (forms render it; CSRFProtect checks it).
    again = CSRF_RE.search(refused.get_data(as_text=True))
    assert again
    token = again.group(1) or again.group(2)
    assert signup(client, event, csrf_token=token).status_code == 200
    assert count(Registration) == 1
    # A token signed for another visitor's session, a mangled one, or none: 400, and nothing more is written.
    # (Signed here: the tests' long-lived app context would hand a second client this client's own token.)
    foreign = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="wtf-csrf-token").dumps("f" * 40)
    for bad in (foreign, token[:-2] + "xx", "not-a-token", ""):
        response = signup(client, event, email="eve@example.org", csrf_token=bad)
        assert response.status_code == 400, bad
    assert count(Registration) == 1
    assert len(outbox()) == 1


def test_signup_honeypot_pretends_success_and_writes_nothing(client, create_event):
    event = create_event()
    response = signup(client, event, website="http://spam.example.org")
    assert response.status_code == 200
    assert THANKS in response.get_data(as_text=True)
    assert nothing_written()


def test_signup_closed_window_shows_message_and_writes_nothing(client, create_event, now):
    event = create_event(signup_closes_at=now - timedelta(hours=1), starts_at=now + timedelta(days=2))
    page = client.get(f"/events/{event.slug}/signup")
    assert page.status_code == 200
    assert "Signup for this event has closed." in page.get_data(as_text=True)
    token = csrf_token(client)  # the closed page has no form: a token from another page, as a stale tab has
    response = signup(client, event, csrf_token=token)
    assert response.status_code == 409
    assert "Signup for this event has closed." in response.get_data(as_text=True)
    assert nothing_written()


def test_signup_not_yet_open_and_cancelled_events_explain(client, create_event, now):
    later = create_event(signup_opens_at=now + timedelta(days=1))
    assert "Signup has not opened yet." in client.get(f"/events/{later.slug}/signup").get_data(as_text=True)
    from scheduler.domain.events import cancel_event

    gone = create_event()
    cancel_event(db.session, gone, now=now)
    db.session.commit()
    response = client.get(f"/events/{gone.slug}/signup")
    assert response.status_code == 200
    assert "This event has been cancelled; signup is closed." in response.get_data(as_text=True)


def test_signup_draft_event_is_not_found(client, create_event):
    event = create_event(publish=False)
    assert client.get(f"/events/{event.slug}/signup").status_code == 404


def test_signup_rate_limit_gives_friendly_429_and_writes_nothing(app, app_config, create_event):
    event = SimpleNamespace(slug=create_event().slug)
    db.session.rollback()  # end this session's (SQLite write) transaction before another app writes
    limited = create_app({**app_config, "RATELIMIT_ENABLED": True, "SIGNUP_RATE_LIMIT": "2 per minute"})
    client = limited.test_client()
    with limited.app_context():
        assert signup(client, event, email="one@example.org").status_code == 200
        assert signup(client, event, email="two@example.org").status_code == 200
        response = signup(client, event, email="three@example.org")
    assert response.status_code == 429
    assert "Too many requests from your address. Please wait a minute and try again." in response.get_data(
        as_text=True)
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert registration("three@example.org") is None
    assert [m.to_addr for m in outbox()] == ["one@example.org", "two@example.org"]
    # GETs are not limited: people can still read the form.
    assert client.get(f"/events/{event.slug}/signup").status_code == 200


def test_signup_too_long_fields_are_refused(client, create_event):
    event = create_event()
    response = signup(client, event, name="N" * 10_000, question="Q" * 10_000, email="a" * 10_000 + "@example.org")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Field cannot be longer than 200 characters." in page
    assert "Field cannot be longer than 2000 characters." in page
    assert nothing_written()


def test_signup_hostile_text_is_escaped_in_page_and_mail(app, client, create_event, now):
    event = create_event(double_opt_in=False)
    hostile = '<script>alert("x")</script>\r\nBcc: victim@example.org\u202e \u200bZoë 🎉'
    question = '<img src=x onerror=alert(1)> =1+1 \x00\x07 ok'
    response = signup(client, event, name=hostile, question=question)
    assert response.status_code == 200
    reg = registration("ada@example.org")
    assert reg.name == '<script>alert("x")</script> Bcc: victim@example.org \u200bZoë 🎉'
    assert reg.question == "<img src=x onerror=alert(1)> =1+1  ok"
    page = client.get(f"/r/{token_for(app, reg)}").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    [row] = outbox()
    assert "<script>" not in row.body_html and "&lt;script&gt;" in row.body_html
    raw = build_message(row, app.config, now=now).as_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_all("Bcc") is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ada@example.org"]
    # RFC 2047 decoding (adjacent encoded words join without a space) gives the name back exactly.
    head = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n\n", 1)[0]
    unfolded = head.replace("\n ", " ").split("\n")
    to_line = next(line for line in unfolded if line.startswith("To: "))
    assert str(make_header(decode_header(to_line[4:].rsplit(" <", 1)[0]))) == reg.name
    assert not any(line.lower().startswith("bcc:") for line in unfolded)
    assert all(ord(c) < 128 for c in head)
    assert count(OutboxMessage) == 1


def test_signup_again_after_cancelling_takes_a_seat_in_the_same_transaction(app, client, create_event):
    """A known address goes through the locked path, in an ORM session joined to the form's connection."""
    event = create_event(capacity=2)
    signup(client, event)
    assert _post(client, token_for(app, registration("ada@example.org")), "cancel").status_code == 303
    assert registration("ada@example.org").state == "cancelled"
    response = signup(client, event, name="Ada Again")
    assert response.status_code == 200 and THANKS in response.get_data(as_text=True)
    reg = registration("ada@example.org")
    assert (reg.state, reg.name) == ("confirmed", "Ada Again")
    db.session.refresh(event)
    assert (event.seats_taken, count(Registration)) == (1, 1)


def test_signup_after_the_last_reminder_queues_starting_soon(client, create_event, now):
    """The late-registrant message, queued on the form's Core connection."""
    from sqlalchemy import update

    from scheduler.models import PlannedJob

    event = create_event(starts_at=now + timedelta(minutes=30), reminder_offsets=[3600])
    db.session.execute(update(PlannedJob).where(PlannedJob.event_id == event.id, PlannedJob.kind == "reminder")
                       .values(state="done"))  # the hour-before reminder went out half an hour ago
    db.session.commit()
    assert signup(client, event, timezone="Asia/Tokyo").status_code == 200
    reg = registration("ada@example.org")
    [soon] = outbox("starting_soon")
    assert (soon.to_addr, soon.registration_id, soon.event_id) == ("ada@example.org", reg.id, event.id)
    assert soon.subject == f"Starting soon: {event.title}" and "(Asia/Tokyo)" in soon.body_text


def _post(client, token: str, action: str, **data):
    data.setdefault("csrf_token", csrf_token(client, f"/r/{token}"))
    return client.post(f"/r/{token}/{action}", data=data)


def test_manage_unknown_or_malformed_token_is_not_found(client):
    assert client.get("/r/" + "A" * 43).status_code == 404
    assert client.get("/r/short").status_code == 404
    assert client.post("/r/" + "A" * 43 + "/unsubscribe").status_code == 404


def test_manage_confirmed_shows_status_and_door_link(app, client, create_event):
    event = create_event(timezone="Europe/Berlin")
    signup(client, event, timezone="Asia/Tokyo")
    reg = registration("ada@example.org")
    response = client.get(f"/r/{token_for(app, reg)}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>Confirmed</strong> — you have a seat, Ada Lovelace." in page
    assert f'href="{door_url(reg)}"' in page and event.join_url not in page
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
    assert door_url(registration("ada@example.org")) in page and event.join_url not in page
    assert [m.kind for m in outbox()] == ["signup_received", "confirmed"]
    _post(client, token, "confirm")  # twice is harmless
    assert [m.kind for m in outbox()] == ["signup_received", "confirmed"]


def test_manage_cancel_promotes_head_of_waitlist(app, client, create_event):
    event = create_event(capacity=1)
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        signup(client, event, email=email)
    token = token_for(app, registration("a@example.org"))
    assert client.get(f"/r/{token}/cancel").status_code == 200  # asks first: only POST changes state
    assert registration("a@example.org").state == "confirmed"
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
