"""The outbox against a real SMTP server (aiosmtpd on 127.0.0.1): headers, parts, outages, refusals, crashes."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import select

from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.mail.transports import transport_from_config
from scheduler.models import OutboxMessage
from tests.conftest import SMTPSink, free_port

SECRET = "test-secret-key"


def _deliver(app, *, at, worker: str = "test"):
    return outbox.deliver(db.session, lambda: transport_from_config(app.config), app.config, worker=worker,
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
            assert event.join_url in text and event.join_url in html
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
