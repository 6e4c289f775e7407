"""The door: each registrant's and speaker's own join link, which leads to the event's join URL only
while it is open, and remembers who came through (attendance)."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..models import Event, EventSpeaker, Registration
from ..tokens import derive, looks_like_token

#: Door states for an event at a moment.
WAITING, OPEN, ENDED = "waiting", "open", "ended"
#: Why a door stays shut whatever the time.
CANCELLED_REGISTRATION, NOT_CONFIRMED, EVENT_CANCELLED = "registration-cancelled", "not-confirmed", "event-cancelled"
#: How early the door can open, at most (the form and the API refuse more).
MAX_OFFSET = 7 * 86400
#: door_last_at moves at most once per this span: a reload loop does not write on every request.
LAST_SEEN_STEP = timedelta(seconds=60)

REGISTRANT_PURPOSE, SPEAKER_PURPOSE = "door", "speaker-door"


def opens_at(event: Event) -> datetime:
    return event.starts_at - timedelta(seconds=event.door_offset or 0)


def door_state(event: Event, *, now: datetime) -> str:
    """waiting before the opening time, open from then until the end, ended after."""
    if now < opens_at(event):
        return WAITING
    if now < event.ends_at:
        return OPEN
    return ENDED


def shut_reason(event: Event, registration: Registration | None = None) -> str | None:
    """Why this door stays shut whatever the time (None: it follows the clock). Speakers pass no registration."""
    if event.status == "cancelled":
        return EVENT_CANCELLED
    if registration is None:
        return None
    if registration.state in ("cancelled", "expired"):
        return CANCELLED_REGISTRATION
    if registration.state != "confirmed":
        return NOT_CONFIRMED
    return None


def check_offset(seconds: int | None) -> str | None:
    """The message for an opening offset out of range, None when it is fine."""
    if seconds is None or not 0 <= seconds <= MAX_OFFSET:
        return "The door opens between 0 minutes and 7 days before the start."
    return None


# --- private links ------------------------------------------------------------------------------

def registrant_token(secret: str, registration: Registration) -> str:
    """Derived like the manage link from the registration's nonce, but for another purpose: the door
    link may be forwarded without giving the manage page away."""
    return derive(secret, REGISTRANT_PURPOSE, registration.id, registration.token_nonce)


def speaker_token(secret: str, link: EventSpeaker) -> str:
    """One speaker's door to one event, for as long as they speak there (taken off and put back, they get a new one).

    Not made from their feed's nonce, which is only issued when a feed is first asked for: a door link
    mailed before that would stop working then.
    """
    return derive(secret, SPEAKER_PURPOSE, link.id, f"{link.event_id}:{link.speaker_id}")


def find_registration(session: Session, registration_id: int, token: str, *, secret: str) -> Registration | None:
    """The registration behind a door link, or None for a wrong one."""
    if not looks_like_token(token):
        return None
    registration = session.get(Registration, registration_id)
    if registration is None or not hmac.compare_digest(registrant_token(secret, registration), token):
        return None
    return registration


def find_speaker_link(session: Session, link_id: int, token: str, *, secret: str) -> EventSpeaker | None:
    """The speaker's link to an event behind a door link, or None for a wrong one."""
    if not looks_like_token(token):
        return None
    link = session.get(EventSpeaker, link_id)
    if link is None or not hmac.compare_digest(speaker_token(secret, link), token):
        return None
    return link


# --- attendance ---------------------------------------------------------------------------------

def record_pass(session: Session, person: Registration | EventSpeaker, *, now: datetime) -> bool:
    """Note that this registrant or speaker came through an open door; True when a row was written.

    One UPDATE: door_first_at is kept once set (COALESCE, evaluated on the row as it is under the
    write lock, so two passes at once never both become the first), door_last_at moves to now unless
    it moved less than LAST_SEEN_STEP ago.
    """
    model = type(person)
    result = session.execute(
        update(model).where(model.id == person.id,
                            (model.door_last_at.is_(None)) | (model.door_last_at <= now - LAST_SEEN_STEP))
        .values(door_first_at=func.coalesce(model.door_first_at, now), door_last_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        session.expire(person, ["door_first_at", "door_last_at"])
    return bool(result.rowcount)


def attendee_filter(event_id: int):
    """Registrations that came through the door (a partial index holds them: ix_registrations_came)."""
    return (Registration.event_id == event_id, Registration.door_first_at.is_not(None))


def attendance(session: Session, event: Event) -> tuple[int, int]:
    """(registrants, speakers) who came through their door to this event at least once."""
    registrants = session.scalar(select(func.count()).select_from(Registration).where(*attendee_filter(event.id)))
    speakers = session.scalar(select(func.count()).select_from(EventSpeaker).where(
        EventSpeaker.event_id == event.id, EventSpeaker.door_first_at.is_not(None)))
    return registrants or 0, speakers or 0
