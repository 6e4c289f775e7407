"""Snapshots of the signup emails' plain-text parts: wording, the attendee's zone, links, no join URL before a seat."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.models import OutboxMessage
from scheduler.tokens import manage_token
from scheduler.urls import door_url

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
START = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


def _messages() -> dict[str, OutboxMessage]:
    return {m.kind: outbox.fill(m) for m in db.session.scalars(select(OutboxMessage))}


def test_confirmed_and_waitlisted_emails_snapshot(app, create_event):
    event = create_event(title="PyTorch: A Foundation for Open Source AI/ML", timezone="America/Los_Angeles",
                         starts_at=START, capacity=1, join_url="https://meet.example.org/pytorch",
                         venue="Room 1")
    ada = signups.sign_up(db.session, event, name="Ada Lovelace", email="ada@example.org",
                          timezone="Europe/Berlin", now=NOW, secret=app.config["SECRET_KEY"]).registration
    bob = signups.sign_up(db.session, event, name="Bob", email="bob@example.org", timezone="Asia/Kolkata",
                          now=NOW, secret=app.config["SECRET_KEY"]).registration
    db.session.commit()
    ada_link = f"http://townhall.test/r/{manage_token(app.config['SECRET_KEY'], ada)}"
    bob_link = f"http://townhall.test/r/{manage_token(app.config['SECRET_KEY'], bob)}"
    messages = _messages()
    assert messages["confirmed"].subject == "You're registered: PyTorch: A Foundation for Open Source AI/ML"
    assert messages["confirmed"].body_text == f"""Hello Ada Lovelace,

Your place is confirmed. The calendar invitation is attached.

Join online: {door_url(ada)}

PyTorch: A Foundation for Open Source AI/ML
Thursday 3 December 2026, 18:00–19:00 CET (Europe/Berlin)
Room 1

Manage your registration (status, cancel, change your question):
{ada_link}

You get this email because this address was used to sign up for this event on Townhall.
"""
    assert messages["waitlisted"].subject == "You're on the waitlist: PyTorch: A Foundation for Open Source AI/ML"
    assert messages["waitlisted"].body_text == f"""Hello Bob,

The event is full, so you are on the waitlist at position 1. If a seat opens up, it goes to the head of the waitlist and we email you at once.

PyTorch: A Foundation for Open Source AI/ML
Thursday 3 December 2026, 22:30–23:30 IST (Asia/Kolkata)
Room 1

Manage your registration (status, cancel, change your question):
{bob_link}

You get this email because this address was used to sign up for this event on Townhall.
"""
