"""Announcements: who gets one, once each, in the transaction that saves it; bad input changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from scheduler.domain import announcements, signups
from scheduler.errors import Conflict, InvalidInput
from scheduler.extensions import db
from scheduler.models import Announcement, OutboxMessage, Registration
from tests.support import count, outbox


def people(app, event, now, names, *, capacity_full=False):
    return [signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@example.org", now=now,
                            secret=app.config["SECRET_KEY"]).registration for name in names]


def test_announcement_goes_once_to_each_confirmed_registrant_rendered_safely(app, create_event, now):
    event = create_event(capacity=2)
    ada, bob, cy = people(app, event, now, ["Ada", "Bob", "Cy"])
    assert (ada.state, bob.state, cy.state) == ("confirmed", "confirmed", "waitlisted")
    db.session.commit()
    sent = announcements.send_announcement(
        db.session, event, subject="Room change\r\nBcc: x@evil.test", body="**Room 2** <script>alert(1)</script>",
        audience="confirmed", now=now, sent_by="organiser@townhall.test")
    db.session.commit()
    assert sent.recipients == 2 and sent.subject == "Room change Bcc: x@evil.test"
    mails = outbox("announcement")
    assert sorted(m.to_addr for m in mails) == ["ada@example.org", "bob@example.org"]
    mail = mails[0]
    assert mail.subject == "Room change Bcc: x@evil.test"
    assert "<strong>Room 2</strong>" in mail.body_html and "<script>" not in mail.body_html
    assert "**Room 2**" in mail.body_text
    assert mail.unsubscribe_url.startswith("http://townhall.test/r/")
    assert {m.dedupe_key for m in mails} == {f"announcement:{sent.id}:{ada.id}", f"announcement:{sent.id}:{bob.id}"}


@pytest.mark.parametrize(("audience", "expected"), [("waitlisted", ["cy"]), ("all", ["ada", "bob", "cy"])])
def test_audiences_waitlisted_and_all(app, create_event, now, audience, expected):
    event = create_event(capacity=2)
    people(app, event, now, ["Ada", "Bob", "Cy"])
    db.session.commit()
    announcements.send_announcement(db.session, event, subject="Hi", body="Hello", audience=audience, now=now)
    db.session.commit()
    assert sorted(m.to_addr.split("@")[0] for m in outbox("announcement")) == expected


def test_those_who_turned_reminders_off_are_left_out(app, create_event, now):
    event = create_event()
    ada, bob = people(app, event, now, ["Ada", "Bob"])
    signups.set_reminders(db.session, bob, opt_out=True, now=now)
    db.session.commit()
    assert announcements.count_recipients(db.session, event, "confirmed") == (1, 1)
    announcements.send_announcement(db.session, event, subject="Hi", body="Hello", audience="confirmed", now=now)
    db.session.commit()
    assert [m.to_addr for m in outbox("announcement")] == ["ada@example.org"]


@pytest.mark.parametrize(("fields", "bad"), [
    ({"subject": "  ", "body": "x", "audience": "all"}, "subject"),
    ({"subject": "x" * 201, "body": "x", "audience": "all"}, "subject"),
    ({"subject": "Hi", "body": "\x00 \n", "audience": "all"}, "body"),
    ({"subject": "Hi", "body": "x" * 20_001, "audience": "all"}, "body"),
    ({"subject": "Hi", "body": "x", "audience": "everybody"}, "audience"),
])
def test_bad_input_is_refused_and_changes_nothing(app, create_event, now, fields, bad):
    event = create_event()
    people(app, event, now, ["Ada"])
    db.session.commit()
    with pytest.raises(InvalidInput) as refused:
        announcements.send_announcement(db.session, event, now=now, **fields)
    db.session.rollback()
    assert list(refused.value.fields) == [bad]
    assert (count(Announcement), count(OutboxMessage, OutboxMessage.kind == "announcement")) == (0, 0)


def test_nobody_to_send_to_a_draft_and_a_repeat_are_conflicts(app, create_event, now):
    event = create_event()
    with pytest.raises(Conflict, match="Nobody to send to"):
        announcements.send_announcement(db.session, event, subject="Hi", body="x", audience="waitlisted", now=now)
    db.session.rollback()
    draft = create_event(publish=False)
    with pytest.raises(Conflict, match="not published"):
        announcements.send_announcement(db.session, draft, subject="Hi", body="x", audience="all", now=now)
    db.session.rollback()
    people(app, event, now, ["Ada"])
    db.session.commit()
    announcements.send_announcement(db.session, event, subject="Hi", body="x", audience="all", now=now)
    db.session.commit()
    with pytest.raises(Conflict, match="already sent"):
        announcements.send_announcement(db.session, event, subject="Hi", body="x", audience="all", now=now)
    db.session.rollback()
    assert count(Announcement) == 1 and count(OutboxMessage, OutboxMessage.kind == "announcement") == 1


def test_a_large_audience_is_queued_in_one_transaction(app, create_event, now):
    from tests.support import add_confirmed

    event = create_event()
    emails = add_confirmed(db.session, event.id, 2500, now=now)
    sent = announcements.send_announcement(db.session, event, subject="Hi", body="x", audience="confirmed", now=now)
    db.session.commit()
    assert sent.recipients == 2500
    addresses = db.session.scalars(select(OutboxMessage.to_addr).where(OutboxMessage.kind == "announcement")).all()
    assert sorted(addresses) == sorted(emails)
    assert count(Registration) == 2500


def test_a_hostile_event_title_is_escaped_in_the_announcement(app, create_event, now):
    event = create_event(title="<script>x</script> & co")
    people(app, event, now, ["Ada"])
    db.session.commit()
    announcements.send_announcement(db.session, event, subject="Hi", body="Hello", audience="all", now=now)
    db.session.commit()
    mail = outbox("announcement")[0]
    assert "<script>" not in mail.body_html and "&lt;script&gt;x&lt;/script&gt; &amp; co" in mail.body_html
    assert "“<script>x</script> & co”" in mail.body_text
