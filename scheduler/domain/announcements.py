"""Announcements: the organiser writes to an event's confirmed, waitlisted or all registrants.

The Announcement row and one outbox row per recipient are written in one transaction (the mail
module does the rows, on the `announcement_made` signal): a crash leaves either all of them or none,
and each row's dedupe key names (announcement, registration), so nobody can get it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import signals
from ..errors import Conflict, InvalidInput
from ..models import AUDIENCES, Announcement, Event, Registration
from ..text import one_line, render_markdown, strip_controls
from .queries import lock_event

MAX_SUBJECT = 200
MAX_BODY = 20_000
#: Who each audience is: registrations in these states. Pending signups have not shown their address is real.
AUDIENCE_STATES = {"confirmed": ("confirmed",), "waitlisted": ("waitlisted",), "all": ("confirmed", "waitlisted")}
assert set(AUDIENCE_STATES) == set(AUDIENCES)
#: The same subject, body and audience again within this is refused as a repeat.
REPEAT_WINDOW = timedelta(minutes=10)


def clean(*, subject: str, body: str, audience: str) -> tuple[str, str]:
    """The subject as one line and the body without control characters; InvalidInput naming each bad field."""
    errors: dict[str, list[str]] = {}
    subject = one_line(subject or "")
    body = strip_controls(body or "").strip()
    if not subject:
        errors["subject"] = ["Write a subject."]
    elif len(subject) > MAX_SUBJECT:
        errors["subject"] = [f"Keep the subject to {MAX_SUBJECT} characters."]
    if not body:
        errors["body"] = ["Write a message."]
    elif len(body) > MAX_BODY:
        errors["body"] = [f"Keep the message to {MAX_BODY:,} characters."]
    if audience not in AUDIENCE_STATES:
        errors["audience"] = ["Choose confirmed, waitlisted or all."]
    if errors:
        raise InvalidInput("Some fields are not valid.", fields=errors)
    return subject, body


def recipients_filter(event_id: int, audience: str):
    """The WHERE clause of an audience: its states, and not those who turned off bulk mail for the event."""
    return (Registration.event_id == event_id, Registration.state.in_(AUDIENCE_STATES[audience]),
            Registration.reminders_opt_out.is_(False))


def count_recipients(session: Session, event: Event, audience: str) -> tuple[int, int]:
    """(who would get it, who is in the audience but turned reminders and announcements off)."""
    states = AUDIENCE_STATES[audience]
    rows = dict(session.execute(
        select(Registration.reminders_opt_out, func.count()).where(
            Registration.event_id == event.id, Registration.state.in_(states))
        .group_by(Registration.reminders_opt_out)).all())
    return rows.get(False, 0), rows.get(True, 0)


def send_announcement(session: Session, event: Event, *, subject: str, body: str, audience: str, now: datetime,
                      sent_by: str = "") -> Announcement:
    """Save the announcement and queue it to its audience, in the caller's transaction."""
    subject, body = clean(subject=subject, body=body, audience=audience)
    if event.status == "draft":
        raise Conflict("This event is not published yet: nobody is registered to hear from you.")
    # Under the event's lock, the recipients counted are the ones queued: a signup waits for this commit.
    lock_event(session, event.id)
    repeat = session.scalar(select(Announcement.created_at).where(
        Announcement.event_id == event.id, Announcement.subject == subject, Announcement.body == body,
        Announcement.audience == audience, Announcement.created_at > now - REPEAT_WINDOW).limit(1))
    if repeat is not None:  # a double click, or a client retrying a request that did go through
        raise Conflict("This announcement was already sent to the same people a moment ago.")
    wanted, _opted_out = count_recipients(session, event, audience)
    if not wanted:
        raise Conflict("Nobody to send to: no one in “%(audience)s” gets mail for this event.", field="audience",
                       params={"audience": audience_label(audience)})
    announcement = Announcement(event_id=event.id, subject=subject, body=body, body_html=render_markdown(body),
                                audience=audience, sent_by=one_line(sent_by)[:320], created_at=now, recipients=0)
    session.add(announcement)
    session.flush()
    signals.announcement_made.send(announcement, session=session, now=now)
    session.flush()
    return announcement


def recipients(session: Session, announcement: Announcement, *, after_id: int = 0, limit: int = 1000) -> list:
    """The next `limit` recipients after registration id `after_id`, as plain rows (id, name, email)."""
    return list(session.execute(
        select(Registration.id, Registration.name, Registration.email)
        .where(*recipients_filter(announcement.event_id, announcement.audience), Registration.id > after_id)
        .order_by(Registration.id).limit(limit)
    ))


def event_announcements(session: Session, event_id: int, *, limit: int = 50) -> list[Announcement]:
    """The event's announcements, newest first."""
    return list(session.scalars(
        select(Announcement).where(Announcement.event_id == event_id)
        .order_by(Announcement.created_at.desc(), Announcement.id.desc()).limit(limit)))


def audience_label(audience: str) -> str:
    return {"confirmed": "confirmed registrants", "waitlisted": "the waitlist",
            "all": "everyone registered (confirmed and waitlisted)"}[audience]
