"""Signup mail composed at delivery: the deferred outbox row, its delivery over real SMTP, a row that
cannot be composed (retried, then failed, the rest of the batch still sent), and the admin outbox page."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

from sqlalchemy import delete, select

from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.mail.transports import transport_from_config
from scheduler.models import OutboxMessage, Registration
from tests.web.signup_helpers import registration, signup, token_for

OUTBOX = OutboxMessage.__table__


def _deliver(app, *, at):
    return outbox.deliver(db.session, lambda: transport_from_config(app.config), app.config, worker="test",
                          clock=lambda: at)


def _stored(row_id: int):
    """The row as the database holds it (Core, so nothing is composed or cached on the way)."""
    db.session.expire_all()
    row = db.session.execute(select(OUTBOX).where(OUTBOX.c.id == row_id)).one()
    db.session.commit()  # end the read: the deliverer's claim must not wait on it
    return row


def _row_ids(kind: str | None = None) -> list[int]:
    query = select(OUTBOX.c.id).order_by(OUTBOX.c.id)
    if kind:
        query = query.where(OUTBOX.c.kind == kind)
    ids = list(db.session.scalars(query))
    db.session.commit()
    return ids


def _outbox_cell(page: str, row_id: int) -> str:
    """The Subject cell of one message on /admin/outbox, unescaped."""
    match = re.search(rf'<tr class="message[^"]*" id="message-{row_id}">(.*?)</tr>', page, re.S)
    assert match, f"message {row_id} not on the outbox page"
    return html.unescape(re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)[2])


def _calendar_text(part) -> str:
    return part.get_content().replace("\r\n ", "").replace("\n ", "")  # unfold RFC 5545 lines


def test_signup_row_is_deferred_then_composed_and_sent_over_smtp(app, auth, create_event, smtp_server, now):
    app.config["MAIL_URL"] = smtp_server.url
    event = create_event(capacity=5, title="Deferred mail night")
    response = signup(auth.client, event, email="ada@example.org", name="Ada Lovelace")
    assert response.status_code == 200
    ada = registration("ada@example.org")
    assert ada.state == "confirmed"
    manage_url = f"http://townhall.test/r/{token_for(app, ada)}"

    [row_id] = _row_ids()
    stored = _stored(row_id)
    # Queued as a small row naming the registration: nothing rendered yet.
    assert (stored.kind, stored.state, stored.registration_id) == ("confirmed", "queued", ada.id)
    assert (stored.subject, stored.body_text, stored.body_html, stored.ics) == (None, None, None, None)
    assert stored.ics_method == "REQUEST" and isinstance(stored.context, dict)
    assert stored.context["sequence"] == 0 and stored.context["starts_at"] == event.starts_at.isoformat()
    assert len(json.dumps(stored.context)) < 200
    assert event.title not in json.dumps(stored.context)

    report = _deliver(app, at=now + timedelta(minutes=1))
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    assert smtp_server.wait_for(1)
    [message] = smtp_server.messages
    assert message["Subject"] == "You're registered: Deferred mail night"
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    text = message.get_body(("plain",)).get_content()
    body_html = message.get_body(("html",)).get_content()
    assert "Hello Ada Lovelace" in text
    assert manage_url in text and manage_url in body_html
    assert event.join_url in text and event.join_url in body_html  # a confirmed seat gets the join link
    calendars = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert [p.get_param("method") for p in calendars] == ["REQUEST"]
    ics = _calendar_text(calendars[0])
    assert "METHOD:REQUEST" in ics and "SUMMARY:Deferred mail night" in ics
    assert "mailto:ada@example.org" in ics.lower()
    assert [p.get_filename() for p in message.walk() if p.get_filename()] == ["invite.ics"]

    stored = _stored(row_id)
    assert (stored.state, stored.attempts, stored.last_error) == ("sent", 1, None)
    assert stored.subject == "You're registered: Deferred mail night"
    # Kept: a later update says what this invitation put in their calendar.
    assert "METHOD:REQUEST" in stored.ics and "SUMMARY:Deferred mail night" in stored.ics
    assert stored.message_id == message["Message-ID"]
    page = auth.client.get("/admin/outbox").get_data(as_text=True)
    assert _outbox_cell(page, row_id) == "You're registered: Deferred mail night"


def test_row_whose_registration_is_gone_is_retried_then_failed_and_never_sent(app, create_event, smtp_server,
                                                                              now, client):
    app.config["MAIL_URL"] = smtp_server.url
    max_attempts = int(app.config["OUTBOX_MAX_ATTEMPTS"])
    assert max_attempts >= 2
    event = create_event(capacity=5, title="Gone test")
    for email in ("ada@example.org", "bob@example.org"):
        assert signup(client, event, email=email).status_code == 200
    bob = registration("bob@example.org")
    ada_row, bob_row = _row_ids()
    assert _stored(bob_row).registration_id == bob.id
    # The registration disappears while its message waits in the outbox.
    db.session.execute(delete(Registration.__table__).where(Registration.__table__.c.id == bob.id))
    db.session.commit()

    at = now + timedelta(minutes=1)
    report = _deliver(app, at=at)
    assert (report.sent, report.retried, report.failed) == (1, 1, 0)
    assert smtp_server.wait_for(1)
    assert [m["To"].addresses[0].addr_spec for m in smtp_server.messages] == ["ada@example.org"]
    assert _stored(ada_row).state == "sent"
    stored = _stored(bob_row)
    assert (stored.state, stored.attempts, stored.subject) == ("queued", 1, None)
    assert stored.last_error.startswith("could not compose the message")
    assert stored.next_attempt_at > at  # backoff, not at once

    for attempt in range(2, max_attempts + 1):
        at += timedelta(hours=2)  # past the longest backoff (one hour, plus jitter)
        report = _deliver(app, at=at)
        stored = _stored(bob_row)
        if attempt < max_attempts:
            assert (report.retried, report.failed) == (1, 0)
            assert (stored.state, stored.attempts) == ("queued", attempt)
        else:
            assert (report.retried, report.failed) == (0, 1)
            assert (stored.state, stored.attempts) == ("failed", max_attempts)
        assert report.sent == 0
        assert "could not compose the message" in stored.last_error
    assert stored.last_error.startswith(f"gave up after {max_attempts} attempts")
    assert _deliver(app, at=at + timedelta(days=1)).handled == 0  # failed stays failed
    assert [m["To"].addresses[0].addr_spec for m in smtp_server.messages] == ["ada@example.org"]
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [["ada@example.org"]]


def test_admin_outbox_shows_written_when_sent_for_a_queued_deferred_row(app, auth, create_event, now):
    event = create_event(capacity=5, title="Page test")
    assert signup(auth.client, event, email="ada@example.org").status_code == 200
    # A message rendered when queued, for contrast: its subject is known at once.
    outbox.queue(db.session, kind="confirmed", to_addr="eve@example.org", dedupe_key="contrast", now=now,
                 event=event, registration=registration("ada@example.org"), manage_url="http://townhall.test/x",
                 when="soon")
    db.session.commit()
    deferred, rendered = _row_ids()

    page = auth.client.get("/admin/outbox").get_data(as_text=True)
    assert _outbox_cell(page, deferred) == '<span class="help">written when sent</span>'
    assert _outbox_cell(page, rendered) == "You're registered: Page test"
    # Showing the page composes nothing.
    assert _stored(deferred).subject is None
    assert _stored(deferred).body_text is None
