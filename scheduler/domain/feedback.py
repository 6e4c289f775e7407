"""Feedback after the event: one rating (1 to 5) and an optional comment per registrant, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput
from ..models import Feedback, Registration
from ..text import strip_controls

RATINGS = (1, 2, 3, 4, 5)
MAX_COMMENT = 2000


def closed_reason(registration: Registration, *, now: datetime) -> str | None:
    """Why this registrant cannot give feedback now, or None when they can."""
    event = registration.event
    if event.status == "cancelled":
        return "This event was cancelled, so there is nothing to rate."
    if event.status != "published" or now < event.ends_at:
        return "Feedback opens when the event is over."
    if registration.door_first_at is None and registration.state != "confirmed":
        return "Only people who had a place at this event can give feedback."
    return None


def existing(session: Session, registration: Registration) -> Feedback | None:
    return session.scalar(select(Feedback).where(Feedback.registration_id == registration.id))


def give_feedback(session: Session, registration: Registration, *, rating: int, comment: str = "",
                  now: datetime) -> Feedback:
    """Record the registrant's answer; a second one is refused and changes nothing."""
    comment = strip_controls(comment or "").strip()
    if rating not in RATINGS:
        raise InvalidInput("Choose a rating from 1 to 5.", field="rating")
    if len(comment) > MAX_COMMENT:
        raise InvalidInput("Keep the comment to %(num)s characters.", field="comment", params={"num": format(MAX_COMMENT, ",")})
    reason = closed_reason(registration, now=now)
    if reason:
        raise Conflict(reason)
    # Two submissions at the same moment queue here; the unique registration_id is the last word.
    session.scalar(select(Registration.id).where(Registration.id == registration.id).with_for_update())
    if existing(session, registration) is not None:
        raise Conflict("You have already given your feedback for this event. Thank you!")
    answer = Feedback(event_id=registration.event_id, registration_id=registration.id, rating=rating,
                      comment=comment, created_at=now)
    session.add(answer)
    session.flush()
    return answer


def figures(session: Session, event_id: int) -> tuple[int, float | None]:
    """(how many answered, their average rating or None)."""
    count, average = session.execute(
        select(func.count(Feedback.id), func.avg(Feedback.rating)).where(Feedback.event_id == event_id)).one()
    return count, (float(average) if average is not None else None)


def comments(session: Session, event_id: int, *, limit: int = 100) -> list[Feedback]:
    """The latest answers with a comment, newest first."""
    return list(session.scalars(
        select(Feedback).where(Feedback.event_id == event_id, Feedback.comment != "")
        .order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit)))
