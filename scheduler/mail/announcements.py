"""Announcement mail: one small outbox row per recipient, written with the announcement, composed at delivery.

Imported by create_app, so the receiver connects and the renderer is registered.
"""

from __future__ import annotations

import threading
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import signals
from ..domain import announcements as rules
from ..extensions import db
from ..languages import known, speaking
from ..models import Announcement, Event, Registration
from ..text import one_line
from ..timefmt import format_range
from . import outbox
from .compose import render
from .reminders import MANAGE, NAME, UNSUBSCRIBE, attendee_links, put_in, reader_zone

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


#: Rendered announcements kept per process; a few are live at any time.
KEEP = 32
_rendered: dict[tuple, tuple[str, str, str]] = {}
_rendered_lock = threading.Lock()


def _template(announcement_id: int, zone: str, language: str, version: int) -> tuple[str, str, str]:
    """(subject, text, html) of the announcement for one zone and language, with stand-ins for the person;
    `version` is the event's, so a change to the event while the announcement goes out shows in the rest."""
    key = (announcement_id, zone, language, version)
    with _rendered_lock:
        found = _rendered.get(key)
    if found is not None:
        return found
    announcement = db.session.get(Announcement, announcement_id)
    if announcement is None:
        raise LookupError("the announcement no longer exists")
    event = db.session.get(Event, announcement.event_id)
    with speaking(language):
        found = render(KIND, announcement=announcement, event=event, name=NAME, manage_url=MANAGE,
                       unsubscribe_url=UNSUBSCRIBE, when=format_range(event.starts_at, event.ends_at, zone))
    with _rendered_lock:
        if len(_rendered) >= KEEP:
            _rendered.clear()
        _rendered[key] = found
    return found


@outbox.renders(KIND)
def compose(row) -> None:
    """The announcement as the organiser wrote it, in the recipient's zone and language, with their links.

    Rendered once per zone and language and kept: each message then costs one small query and a few
    replacements, so a large announcement is delivered as fast as a reminder.
    """
    person = db.session.execute(
        select(Registration.id, Registration.name, Registration.timezone, Registration.token_nonce,
               Registration.language, Event.timezone.label("event_zone"), Event.version)
        .join(Event, Event.id == Registration.event_id).where(Registration.id == row.registration_id)).first()
    if person is None:
        raise LookupError("the registration no longer exists")
    subject, text, html = _template((row.context or {}).get("announcement_id"),
                                    reader_zone(person.timezone, person.event_zone), known(person.language),
                                    person.version)
    secret = current_app.config["SECRET_KEY"]
    manage_url, unsubscribe_url = attendee_links(secret, person)
    text, html = put_in(text, html, ((NAME, person.name), (MANAGE, manage_url), (UNSUBSCRIBE, unsubscribe_url)))
    row.subject, row.body_text, row.body_html, row.unsubscribe_url = subject, text, html, unsubscribe_url
