"""Signup rules: a seat or a waitlist place under the event's lock, holds, confirmation, cancellation.

Every change locks the event row first (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the
transaction began with BEGIN IMMEDIATE), so the seat counter on the event row and the
registrations stay in step however many people sign up at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, lazyload

from .. import signals
from ..errors import (
    Conflict,
    EventCancelled,
    EventFull,
    EventNotOpen,
    InvalidInput,
    InvalidTransition,
    NotFound,
    SignupClosed,
)
from ..languages import DEFAULT as DEFAULT_LANGUAGE
from ..languages import LANGUAGES
from ..languages import known as known_language
from ..models import ACTIVE_STATES, Event, Registration
from ..text import one_line, strip_controls
from ..tokens import feed_token, manage_token, new_nonce, token_hash
from .queries import lock_event
from .seats import announce, fill_free_seats, has_free_seat, seat_or_waitlist, take_seat


@dataclass
class SignupResult:
    registration: Registration
    #: "confirmed", "pending", "waitlisted", or "repeat" when the address was already registered.
    outcome: str
    #: The manage token, for the page shown right after signup.
    token: str
    event: Event


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


def sign_up(session: Session, event: Event | str, *, name: str, email: str, question: str = "",
            timezone: str = "", now: datetime, secret: str, hold_hours: float = 24.0,
            language: str = DEFAULT_LANGUAGE) -> SignupResult:
    """Register someone: a seat (confirmed, or pending their confirmation), or a waitlist place.

    The same address again gets no second seat: outcome "repeat", and the manage link is re-sent.
    `event` is the event or its slug. Raises NotFound for an unknown slug, and the reason (a
    Conflict) when signup is not open. The caller commits.

    What needs no lock comes first (a refusal, a new address's row and its tokens), so the event's
    lock, which every other signup to the event waits for, is held only to decide the seat and write it.
    """
    if isinstance(event, str):
        event = session.scalar(select(Event).where(Event.slug == event)
                               .options(lazyload(Event.tags), lazyload(Event.speakers)))
        if event is None:
            raise NotFound("No such event.")
    check_open(event, now=now)
    email_key = email.strip().lower()
    person = dict(name=one_line(name)[:200], email=email.strip()[:320], question=strip_controls(question or "")[:5000],
                  timezone=timezone or event.timezone, language=known_language(language), consent_at=now, cancelled_at=None, reminders_opt_out=False,
                  email_verified_at=None if event.double_opt_in else now)
    registration = _insert_new(session, event, email_key, person, now=now, secret=secret)
    with session.no_autoflush:  # the tokens are written with the seat, not in a statement of their own
        event = lock_event(session, event.id)
    check_open(event, now=now)  # again: it may have changed before the lock
    if registration is None:  # the address was known: as it is now that nobody else can change it
        # Its event is the one just locked: joining it again would reload its tags and speakers too.
        registration = session.scalar(select(Registration).where(
            Registration.event_id == event.id, Registration.email_key == email_key
        ).options(lazyload(Registration.event)).execution_options(populate_existing=True))
        if registration.state in ACTIVE_STATES:
            signals.registration_repeated.send(registration, session=session, now=now)
            return SignupResult(registration, "repeat", manage_token(secret, registration), event)
        for key, value in person.items():  # coming back after a cancellation or a lapsed hold
            setattr(registration, key, value)
    outcome = seat_or_waitlist(session, event, registration, now=now, hold_hours=hold_hours)
    return SignupResult(registration, outcome, manage_token(secret, registration), event)


#: INSERT ... ON CONFLICT DO NOTHING, which both databases have: the unique (event, address) index
#: decides between two signups of one address at once, and the second writes nothing.
_INSERT_OR_SKIP = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def _insert_new(session: Session, event: Event, email_key: str, person: dict, *, now: datetime,
                secret: str) -> Registration | None:
    """Write a new address's row, in no state that counts yet; None when the address is known to the event."""
    insert = _INSERT_OR_SKIP[session.get_bind().dialect.name]
    registration = session.scalar(
        insert(Registration).values(event_id=event.id, email_key=email_key, state="pending", token_nonce=new_nonce(),
                                    feed_nonce=new_nonce(), created_at=now, updated_at=now, ics_sequence=0, **person)
        .on_conflict_do_nothing(index_elements=["event_id", "email_key"]).returning(Registration))
    if registration is not None:  # the tokens derive from the id, known once the row is written
        registration.token_hash = token_hash(manage_token(secret, registration))
        registration.feed_token_hash = token_hash(feed_token(secret, registration))
    return registration


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
        seat_or_waitlist(session, event, registration, now=now, hold_hours=hold_hours)
    elif registration.state == "waitlisted" and first:
        session.flush()
        signals.registration_verified.send(registration, session=session, now=now)
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
    if held_seat:
        event.seats_taken -= 1
    registration.state = "cancelled"
    registration.cancelled_at = now
    registration.updated_at = now
    registration.hold_expires_at = None
    registration.waitlist_seq = None
    registration.ics_sequence = max(registration.ics_sequence, event.sequence) + 1
    session.flush()
    signals.registration_cancelled.send(registration, session=session, now=now, by_organiser=by_organiser)
    return fill_free_seats(session, event, now=now, hold_hours=hold_hours) if held_seat else []


def promote(session: Session, registration: Registration, *, now: datetime, hold_hours: float = 24.0) -> None:
    """The organiser moves this person off the waitlist, ahead of others, into a free seat."""
    event = lock_event(session, registration.event_id)
    session.refresh(registration)
    if registration.state != "waitlisted":
        raise InvalidTransition("Only someone on the waitlist can be promoted.")
    if not has_free_seat(event):
        raise EventFull("No seat is free: raise the capacity first, then promote.")
    take_seat(event, registration, now=now, hold_hours=hold_hours)
    session.flush()
    announce(session, registration, now=now, promoted=True)


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
            event.seats_taken -= 1
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


def set_language(session: Session, registration: Registration, *, language: str, now: datetime) -> None:
    """The language of every later mail to this registrant."""
    if language not in LANGUAGES:
        raise InvalidInput("Choose one of the languages offered.", field="language")
    registration.language = language
    registration.updated_at = now
    session.flush()


def update_question(session: Session, registration: Registration, *, question: str, now: datetime) -> None:
    if registration.state not in ACTIVE_STATES:
        raise Conflict("This registration is no longer active.")
    previous = registration.question or ""
    registration.question = strip_controls(question or "")[:5000]
    registration.updated_at = now
    session.flush()
    if registration.question != previous:
        signals.registration_question_changed.send(registration, session=session, now=now, previous=previous)


def revoke_feed(session: Session, registration: Registration, *, secret: str) -> str:
    """Issue a new personal feed token; the old feed URL stops working. Returns the new token."""
    registration.feed_nonce = new_nonce()
    token = feed_token(secret, registration)
    registration.feed_token_hash = token_hash(token)
    session.flush()
    return token


def find_by_token(session: Session, token: str, *, column=Registration.token_hash) -> Registration | None:
    return session.scalar(select(Registration).where(column == token_hash(token))) if token else None
