"""The outbox against a real SMTP server (aiosmtpd on 127.0.0.1): headers, parts, outages, refusals, crashes.

Signup mail composed at delivery: the deferred outbox row, its delivery over real SMTP, a row that
cannot be composed (retried, then failed, the rest of the batch still sent), and the admin outbox page."""

from __future__ import annotations

import html
import json
import re
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.mail.transports import transport_from_config
from scheduler.models import OutboxMessage, Registration
from tests.support import SMTPSink, free_port, registration, signup, token_for

SECRET = "test-secret-key"


def _deliver(app, *, at, worker: str = "test"):
    return outbox.deliver(db.session, lambda: transport_from_config(app.config), app, worker=worker,
                          clock=lambda: at)


def _sign_up(event, email: str, now, name: str = "Ada Lovelace"):
    result = signups.sign_up(db.session, event, name=name, email=email, timezone="America/New_York", now=now,
                             secret=SECRET)
    db.session.commit()
    return result.registration


def _rows() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_smtp_every_signup_message_arrives_with_headers_and_both_parts(app, create_event, smtp_server, now):
    app.config["MAIL_URL"] = smtp_server.url
    event = create_event(capacity=1, double_opt_in=True, timezone="Europe/Berlin", title="Mail test")
    ada = _sign_up(event, "ada@example.org", now)                              # signup_received
    signups.confirm_email(db.session, ada, now=now)                            # confirmed
    db.session.commit()
    bob = _sign_up(event, "bob@example.org", now, name="Bob Example")          # waitlisted
    signups.confirm_email(db.session, bob, now=now)                            # verified, still waiting
    db.session.commit()
    _sign_up(event, "ada@example.org", now)                                    # manage_link
    signups.cancel_registration(db.session, ada, now=now)                      # cancelled + promoted
    db.session.commit()
    kinds = ["signup_received", "confirmed", "waitlisted", "manage_link", "cancelled", "promoted"]
    assert [r.kind for r in _rows()] == kinds

    report = _deliver(app, at=now)
    assert (report.sent, report.retried, report.failed) == (6, 0, 0)
    assert smtp_server.wait_for(6)
    assert [r.state for r in _rows()] == ["sent"] * 6
    by_subject = {m["Subject"]: m for m in smtp_server.messages}
    assert sorted(by_subject) == sorted([
        "Please confirm your place: Mail test", "You're registered: Mail test",
        "You're on the waitlist: Mail test", "Your registration: Mail test",
        "Registration cancelled: Mail test", "Good news, you have a seat: Mail test"])
    for message, row in zip(smtp_server.messages, _rows(), strict=True):
        assert message["From"] == "Townhall <events@townhall.test>"
        assert message["To"].addresses[0].addr_spec == row.to_addr
        assert message["Message-ID"] == row.message_id and message["Message-ID"].endswith("@townhall.test>")
        assert message["Date"].datetime == now
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "Mail test" in text and "Mail test" in html
        # Times in the attendee's zone (New York), named.
        assert "EST (America/New_York)" in text and "EST (America/New_York)" in html
        assert "http://townhall.test/r/" in text
        calendar = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
        if row.kind in ("confirmed", "promoted"):
            assert [p.get_param("method") for p in calendar] == ["REQUEST"]
            # Their own door link (web/door.py), never the join URL itself.
            assert "http://townhall.test/door/" in text and "http://townhall.test/door/" in html
            assert event.join_url not in text + html + calendar[0].get_content()
            assert "METHOD:REQUEST" in calendar[0].get_content()
        elif row.kind == "cancelled":
            assert [p.get_param("method") for p in calendar] == ["CANCEL"]
            assert event.join_url not in calendar[0].get_content()
        else:
            assert calendar == []
            assert event.join_url not in text and event.join_url not in html
    assert [e.rcpt_tos for e in smtp_server.envelopes] == [[r.to_addr] for r in _rows()]


def test_smtp_down_loses_nothing_and_delivers_all_when_back(app, create_event, now):
    port = free_port()
    app.config["MAIL_URL"] = f"smtp://127.0.0.1:{port}"
    event = create_event(capacity=10)
    for i in range(3):
        _sign_up(event, f"p{i}@example.org", now)

    report = _deliver(app, at=now)
    assert (report.sent, report.retried, report.failed) == (0, 3, 0)
    rows = _rows()
    assert [(r.state, r.attempts) for r in rows] == [("queued", 1)] * 3
    assert all(r.last_error.startswith(f"cannot connect to 127.0.0.1:{port}") for r in rows)
    assert all(r.next_attempt_at > now for r in rows)
    # Backoff: asking again at once sends nothing and makes no new attempt (no retry storm).
    assert _deliver(app, at=now).handled == 0

    sink = SMTPSink().start(port)
    try:
        report = _deliver(app, at=now + timedelta(minutes=5))
        assert (report.sent, report.retried, report.failed) == (3, 0, 0)
        assert sink.wait_for(3)
        assert sorted(m["To"].addresses[0].addr_spec for m in sink.messages) == [
            "p0@example.org", "p1@example.org", "p2@example.org"]
    finally:
        sink.stop()
    assert [(r.state, r.attempts, r.last_error) for r in _rows()] == [("sent", 2, None)] * 3


def test_smtp_550_fails_with_reply_in_admin_outbox_and_no_retry(app, auth, create_event, smtp_server, now):
    app.config["MAIL_URL"] = smtp_server.url
    smtp_server.reply_code = "550 5.1.1 <nobody@example.org>: no such user"
    event = create_event(capacity=10)
    _sign_up(event, "nobody@example.org", now)

    report = _deliver(app, at=now)
    assert (report.sent, report.retried, report.failed) == (0, 0, 1)
    [row] = _rows()
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error == "550 5.1.1 <nobody@example.org>: no such user"
    assert _deliver(app, at=now + timedelta(days=1)).handled == 0  # never tried again by itself
    assert smtp_server.messages == []

    page = auth.client.get("/admin/outbox?state=failed").get_data(as_text=True)
    assert "550 5.1.1 &lt;nobody@example.org&gt;: no such user" in page
    assert f'action="/admin/outbox/{row.id}/retry?state=failed"' in page

    smtp_server.reply_code = None  # the address was fixed on the server side; the organiser retries
    response = auth.post(f"/admin/outbox/{row.id}/retry")
    assert response.status_code == 303
    assert _deliver(app, at=now + timedelta(days=1)).sent == 1
    assert smtp_server.wait_for(1)
    assert [(r.state, r.attempts) for r in _rows()] == [("sent", 2)]


def test_crash_between_claim_and_mark_resends_after_lease(app, create_event, smtp_server, now):
    app.config["MAIL_URL"] = smtp_server.url
    event = create_event(capacity=10)
    for i in range(4):
        _sign_up(event, f"p{i}@example.org", now)
    # A deliverer claims the batch and dies before sending or marking anything.
    claimed = outbox.claim(db.session, worker="crashed", now=now)
    assert len(claimed) == 4
    assert [r.state for r in _rows()] == ["sending"] * 4

    # While the claim is fresh, nobody else sends these rows...
    assert _deliver(app, at=now + outbox.LEASE - timedelta(seconds=1)).handled == 0
    # ...once the lease lapses, another deliverer sends every one of them, once.
    report = _deliver(app, at=now + outbox.LEASE + timedelta(seconds=1), worker="survivor")
    assert report.sent == 4
    assert smtp_server.wait_for(4)
    assert sorted(m["To"].addresses[0].addr_spec for m in smtp_server.messages) == [
        f"p{i}@example.org" for i in range(4)]
    assert [r.state for r in _rows()] == ["sent"] * 4
    assert _deliver(app, at=now + timedelta(days=1)).handled == 0


class ProbingSink(SMTPSink):
    """Refuses mail to nobody@; for every other message, checks that a writer could start on the database now."""

    def __init__(self, database: str):
        super().__init__()
        self.database = database
        self.writable: list[bool] = []

    async def handle_DATA(self, server, session, envelope):
        if any(rcpt.startswith("nobody@") for rcpt in envelope.rcpt_tos):
            return "550 5.1.1 no such user"
        probe = sqlite3.connect(self.database, timeout=0.2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            self.writable.append(True)
        except sqlite3.OperationalError:  # "database is locked": the deliverer holds a write transaction
            self.writable.append(False)
        finally:
            probe.close()
        return await super().handle_DATA(server, session, envelope)


def test_refused_message_mark_is_committed_before_the_next_send(app, create_event, now, backend):
    """A failed or retried mark must not keep a write transaction open while the next messages go out."""
    if backend != "sqlite":
        pytest.skip("the write lock that would block every signup is SQLite's")
    sink = ProbingSink(db.engine.url.database).start()
    try:
        app.config["MAIL_URL"] = sink.url
        event = create_event(capacity=10)
        _sign_up(event, "nobody@example.org", now)
        _sign_up(event, "ada@example.org", now)
        _sign_up(event, "bob@example.org", now)
        report = _deliver(app, at=now)
    finally:
        sink.stop()
    assert (report.sent, report.failed) == (2, 1)
    assert sink.writable == [True, True]


OUTBOX = OutboxMessage.__table__


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
    # A confirmed seat gets its own door link, never the join URL itself.
    assert "http://townhall.test/door/" in text and "http://townhall.test/door/" in body_html
    assert event.join_url not in text + body_html
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
    assert _outbox_cell(page, deferred) == "You're registered: Page test"
    assert _outbox_cell(page, rendered) == "You're registered: Page test"
    # Showing the page composes nothing.
    assert _stored(deferred).subject is None
    assert _stored(deferred).body_text is None
