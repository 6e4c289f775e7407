"""Signup rules: capacity that holds under concurrency, the waitlist, holds, confirmation, cancellation.

Every write starts by locking the event row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the
transaction began with BEGIN IMMEDIATE), so counting seats and taking one cannot interleave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import signals
from ..errors import Conflict, EventCancelled, EventFull, EventNotOpen, InvalidTransition, SignupClosed
from ..models import ACTIVE_STATES, Event, Registration
from ..text import one_line, strip_controls
from ..tokens import derive, new_nonce, token_hash
from .events import lock_event, seats_taken


@dataclass
class SignupResult:
    registration: Registration
    #: "confirmed", "pending", "waitlisted", or "repeat" when the address was already registered.
    outcome: str
    #: The manage token, for the page shown right after signup.
    token: str


def check_open(event: Event, *, now: datetime) -> None:
    """Raise the reason signup is not possible now, if any."""
    if event.status == "cancelled":
        raise EventCancelled("This event has been cancelled; signup is closed.")
    if event.status != "published":
        raise EventNotOpen("This event is not open for signup.")
    if event.starts_at <= now:
        raise SignupClosed("This event has already started; signup is closed.")
    if event.signup_opens_at and now < event.signup_opens_at:
        raise SignupClosed("Signup has not opened yet.")
    if event.signup_closes_at and now >= event.signup_closes_at:
        raise SignupClosed("Signup for this event has closed.")


def has_free_seat(session: Session, event: Event) -> bool:
    return event.capacity is None or seats_taken(session, event) < event.capacity


def sign_up(session: Session, event: Event, *, name: str, email: str, question: str = "", timezone: str = "",
            now: datetime, secret: str, hold_hours: float = 24.0) -> SignupResult:
    """Register someone: a seat (confirmed, or pending their confirmation), or a waitlist place.

    The same address again gets no second seat: outcome "repeat", and the manage link is re-sent.
    """
    event = lock_event(session, event.id)
    check_open(event, now=now)
    email_key = email.strip().lower()
    existing = session.scalar(
        select(Registration).where(Registration.event_id == event.id, Registration.email_key == email_key)
    )
    if existing is not None and existing.state in ACTIVE_STATES:
        signals.registration_repeated.send(existing, session=session, now=now)
        return SignupResult(existing, "repeat", _manage(secret, existing))
    registration = existing or Registration(event_id=event.id, email_key=email_key, token_nonce=new_nonce(),
                                            created_at=now)
    registration.name = one_line(name)[:200]
    registration.email = email.strip()[:320]
    registration.question = strip_controls(question or "")[:5000]
    registration.timezone = timezone or event.timezone
    registration.consent_at = now
    registration.updated_at = now
    registration.cancelled_at = None
    registration.reminders_opt_out = False
    registration.email_verified_at = None if event.double_opt_in else now
    outcome = _seat_or_waitlist(session, event, registration, now=now, hold_hours=hold_hours,
                                secret=secret if existing is None else None)
    return SignupResult(registration, outcome, _manage(secret, registration))


def _manage(secret: str, registration: Registration) -> str:
    return derive(secret, "manage", registration.id, registration.token_nonce)


def _seat_or_waitlist(session: Session, event: Event, registration: Registration, *, now: datetime,
                      hold_hours: float, secret: str | None = None) -> str:
    """Seat or waitlist someone who holds no seat yet: a new row (pass `secret`), or a cancelled/expired one.

    The decision is made before the row is written, so its one INSERT/UPDATE already carries it.
    """
    if has_free_seat(session, event):  # this person is not counted: new, cancelled or expired
        _take_seat(registration, now=now, hold_hours=hold_hours)
    else:
        registration.waitlist_seq = _next_waitlist_seq(session, event)
        registration.state = "waitlisted"
        registration.hold_expires_at = None
    if secret is not None:
        session.add(registration)
        session.flush()  # the id is part of the tokens
        registration.token_hash = token_hash(_manage(secret, registration))
        registration.feed_nonce = new_nonce()
        registration.feed_token_hash = token_hash(derive(secret, "feed", registration.id, registration.feed_nonce))
    session.flush()
    _announce(session, registration, now=now, promoted=False)
    return registration.state


def _take_seat(registration: Registration, *, now: datetime, hold_hours: float) -> None:
    registration.waitlist_seq = None
    if registration.email_verified_at is None:
        registration.state = "pending"
        registration.hold_expires_at = now + timedelta(hours=hold_hours)
    else:
        registration.state = "confirmed"
        registration.confirmed_at = now
        registration.hold_expires_at = None
    registration.updated_at = now


def _announce(session: Session, registration: Registration, *, now: datetime, promoted: bool) -> None:
    if registration.state == "waitlisted":
        signals.registration_waitlisted.send(registration, session=session, now=now,
                                             position=waitlist_position(session, registration))
    elif registration.state == "pending":
        signals.registration_pending.send(registration, session=session, now=now, promoted=promoted)
    elif promoted:
        signals.registration_promoted.send(registration, session=session, now=now)
    else:
        signals.registration_confirmed.send(registration, session=session, now=now)


def _next_waitlist_seq(session: Session, event: Event) -> int:
    current = session.scalar(select(func.max(Registration.waitlist_seq)).where(Registration.event_id == event.id))
    return (current or 0) + 1


def waitlist_position(session: Session, registration: Registration) -> int | None:
    """1 for the head of the waitlist; None when not waitlisted."""
    if registration.state != "waitlisted" or registration.waitlist_seq is None:
        return None
    ahead = session.scalar(
        select(func.count()).select_from(Registration).where(
            Registration.event_id == registration.event_id, Registration.state == "waitlisted",
            Registration.waitlist_seq < registration.waitlist_seq)
    )
    return (ahead or 0) + 1


def confirm_email(session: Session, registration: Registration, *, now: datetime,
                  hold_hours: float = 24.0) -> str:
    """The confirmation link was clicked: a pending hold becomes a confirmed seat. Repeats are harmless.

    A hold that lapsed meanwhile gets a seat if one is free, else a place at the end of the waitlist.
    """
    event = lock_event(session, registration.event_id)
    session.refresh(registration)
    if registration.state in ("cancelled",):
        raise InvalidTransition("This registration was cancelled. Sign up again to attend.")
    first = registration.email_verified_at is None
    registration.email_verified_at = registration.email_verified_at or now
    if registration.state == "pending":
        registration.state = "confirmed"
        registration.confirmed_at = now
        registration.hold_expires_at = None
        registration.updated_at = now
        session.flush()
        signals.registration_confirmed.send(registration, session=session, now=now)
    elif registration.state == "expired":
        check_open(event, now=now)
        _seat_or_waitlist(session, event, registration, now=now, hold_hours=hold_hours)
    elif registration.state == "waitlisted" and first:
        session.flush()
    return registration.state


def cancel_registration(session: Session, registration: Registration, *, now: datetime,
                        by_organiser: bool = False, hold_hours: float = 24.0) -> list[Registration]:
    """Cancel one registration; a freed seat goes to the head of the waitlist at once.

    Returns the registrations promoted as a result. Cancelling twice is harmless.
    """
    event = lock_event(session, registration.event_id)
    session.refresh(registration)
    if registration.state not in ACTIVE_STATES:
        return []
    held_seat = registration.state in ("confirmed", "pending")
    registration.state = "cancelled"
    registration.cancelled_at = now
    registration.updated_at = now
    registration.hold_expires_at = None
    registration.waitlist_seq = None
    registration.ics_sequence = max(registration.ics_sequence, event.sequence) + 1
    session.flush()
    signals.registration_cancelled.send(registration, session=session, now=now, by_organiser=by_organiser)
    return fill_free_seats(session, event, now=now, hold_hours=hold_hours) if held_seat else []


def fill_free_seats(session: Session, event: Event, *, now: datetime, hold_hours: float = 24.0) -> list[Registration]:
    """Promote waitlisted people, head first, into every free seat. The event must be locked."""
    if event.status != "published" or event.starts_at <= now:
        return []
    promoted = []
    while has_free_seat(session, event):
        head = session.scalar(
            select(Registration).where(Registration.event_id == event.id, Registration.state == "waitlisted")
            .order_by(Registration.waitlist_seq, Registration.id).limit(1)
        )
        if head is None:
            break
        _take_seat(head, now=now, hold_hours=hold_hours)
        session.flush()
        _announce(session, head, now=now, promoted=True)
        promoted.append(head)
    return promoted


def promote(session: Session, registration: Registration, *, now: datetime, hold_hours: float = 24.0) -> None:
    """The organiser moves this person off the waitlist, ahead of others, into a free seat."""
    event = lock_event(session, registration.event_id)
    session.refresh(registration)
    if registration.state != "waitlisted":
        raise InvalidTransition("Only someone on the waitlist can be promoted.")
    if not has_free_seat(session, event):
        raise EventFull("No seat is free: raise the capacity first, then promote.")
    _take_seat(registration, now=now, hold_hours=hold_hours)
    session.flush()
    _announce(session, registration, now=now, promoted=True)


def expire_holds(session: Session, *, now: datetime, hold_hours: float = 24.0) -> int:
    """Release pending holds past their expiry and pass the seats on; returns how many expired."""
    expired = 0
    event_ids = session.scalars(
        select(Registration.event_id).where(Registration.state == "pending", Registration.hold_expires_at < now)
        .distinct()
    ).all()
    for event_id in event_ids:
        event = lock_event(session, event_id)
        lapsed = session.scalars(
            select(Registration).where(Registration.event_id == event_id, Registration.state == "pending",
                                       Registration.hold_expires_at < now)
        ).all()
        for registration in lapsed:
            registration.state = "expired"
            registration.updated_at = now
            registration.hold_expires_at = None
            expired += 1
        session.flush()
        fill_free_seats(session, event, now=now, hold_hours=hold_hours)
    return expired


def set_reminders(session: Session, registration: Registration, *, opt_out: bool, now: datetime) -> None:
    registration.reminders_opt_out = opt_out
    registration.updated_at = now
    session.flush()


def update_question(session: Session, registration: Registration, *, question: str, now: datetime) -> None:
    if registration.state not in ACTIVE_STATES:
        raise Conflict("This registration is no longer active.")
    registration.question = strip_controls(question or "")[:5000]
    registration.updated_at = now
    session.flush()


def revoke_feed(session: Session, registration: Registration, *, secret: str) -> str:
    """Issue a new personal feed token; the old feed URL stops working. Returns the new token."""
    registration.feed_nonce = new_nonce()
    token = derive(secret, "feed", registration.id, registration.feed_nonce)
    registration.feed_token_hash = token_hash(token)
    session.flush()
    return token


def find_by_token(session: Session, token: str, *, column=Registration.token_hash) -> Registration | None:
    return session.scalar(select(Registration).where(column == token_hash(token))) if token else None
