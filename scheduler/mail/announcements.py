"""Announcement mail: one small outbox row per recipient, written with the announcement, composed at delivery.

Imported by create_app, so the receiver connects and the renderer is registered.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from sqlalchemy.orm import Session

from .. import signals
from ..domain import announcements as rules
from ..extensions import db
from ..models import Announcement, Registration
from ..text import one_line
from ..timefmt import format_range
from ..urls import registration_url
from . import outbox
from .compose import render

KIND = "announcement"
#: Recipients read and rows written per round trip; all of them in the one transaction.
BATCH = 1000


def dedupe_key(announcement_id: int, registration_id: int) -> str:
    return f"announcement:{announcement_id}:{registration_id}"


@signals.announcement_made.connect
def on_announcement(announcement: Announcement, *, session: Session, now: datetime, **_) -> None:
    """Queue the announcement once per recipient, in the transaction that saved it."""
    after, queued = 0, 0
    while True:
        people = rules.recipients(session, announcement, after_id=after, limit=BATCH)
        if not people:
            break
        after = people[-1].id
        queued += outbox.insert_rows(session, [dict(
            dedupe_key=dedupe_key(announcement.id, person.id), kind=KIND, to_addr=person.email,
            to_name=one_line(person.name)[:200], event_id=announcement.event_id, registration_id=person.id,
            context={"announcement_id": announcement.id}, state="queued", attempts=0, next_attempt_at=now,
            created_at=now) for person in people])
    announcement.recipients = queued


@outbox.renders(KIND)
def compose(row) -> None:
    """The announcement as the organiser wrote it, with the recipient's manage and unsubscribe links."""
    announcement = db.session.get(Announcement, (row.context or {}).get("announcement_id"))
    registration = db.session.get(Registration, row.registration_id) if row.registration_id else None
    if announcement is None or registration is None:
        raise LookupError("the announcement or its registration no longer exists")
    event = registration.event
    unsubscribe_url = registration_url("signup.unsubscribe", registration)
    row.unsubscribe_url = unsubscribe_url
    row.subject, row.body_text, row.body_html = render(
        KIND, announcement=announcement, event=event, name=registration.name,
        manage_url=registration_url("signup.manage", registration), unsubscribe_url=unsubscribe_url,
        when=format_range(event.starts_at, event.ends_at, registration.timezone or event.timezone),
        organiser=current_app.config["ORGANIZER_NAME"])
