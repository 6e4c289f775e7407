"""Seats: who holds one, who waits, and who is promoted when one frees up. The event row is locked.

The event row counts its seats (`Event.seats_taken`) and hands out waitlist numbers
(`Event.waitlist_last`); every change here happens under the event's lock and keeps them in step.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import signals
from ..models import Event, Registration


def has_free_seat(event: Event) -> bool:
    return event.capacity is None or event.seats_taken < event.capacity


def seats_left(event: Event) -> int | None:
    """Free seats as shown to visitors; None when the event has no capacity limit."""
    return None if event.capacity is None else max(0, event.capacity - event.seats_taken)


def seat_or_waitlist(session: Session, event: Event, registration: Registration, *, now: datetime,
                     hold_hours: float) -> str:
    """Give a seat, or a place at the end of the waitlist, to someone who holds neither, and announce it.

    Returns the new state.
    """
    if has_free_seat(event):
        take_seat(event, registration, now=now, hold_hours=hold_hours)
    else:
        event.waitlist_last += 1
        registration.waitlist_seq = event.waitlist_last
        registration.state = "waitlisted"
        registration.hold_expires_at = None
        registration.updated_at = now
    session.flush()
    announce(session, registration, now=now, promoted=False)
    return registration.state


def take_seat(event: Event, registration: Registration, *, now: datetime, hold_hours: float) -> None:
    """Seat someone who holds none (waitlisted, new, cancelled or expired): confirmed, or held until they confirm.

    A hold never lasts past the event's start.
    """
    event.seats_taken += 1
    registration.waitlist_seq = None
    if registration.email_verified_at is None:
        registration.state = "pending"
        registration.hold_expires_at = min(now + timedelta(hours=hold_hours), event.starts_at)
    else:
        registration.state = "confirmed"
        registration.confirmed_at = now
        registration.hold_expires_at = None
    registration.updated_at = now


def announce(session: Session, registration: Registration, *, now: datetime, promoted: bool) -> None:
    """Tell the receivers (mail, jobs) what the registration's new state is."""
    if registration.state == "waitlisted":
        signals.registration_waitlisted.send(registration, session=session, now=now)
    elif registration.state == "pending":
        signals.registration_pending.send(registration, session=session, now=now, promoted=promoted)
    elif promoted:
        signals.registration_promoted.send(registration, session=session, now=now)
    else:
        signals.registration_confirmed.send(registration, session=session, now=now)


def fill_free_seats(session: Session, event: Event, *, now: datetime, hold_hours: float = 24.0) -> list[Registration]:
    """Promote waitlisted people, head first, into every free seat; returns them. The event must be locked."""
    if event.status != "published" or event.starts_at <= now:
        return []
    promoted = []
    while has_free_seat(event):
        head = session.scalar(
            select(Registration).where(Registration.event_id == event.id, Registration.state == "waitlisted")
            .order_by(Registration.waitlist_seq, Registration.id).limit(1)
        )
        if head is None:
            break
        take_seat(event, head, now=now, hold_hours=hold_hours)
        session.flush()
        announce(session, head, now=now, promoted=True)
        promoted.append(head)
    return promoted
