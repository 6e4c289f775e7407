"""Signup rules: capacity that holds under concurrency, the waitlist, holds, confirmation, cancellation.

The event row counts its seats (`Event.seats_taken`) and hands out waitlist numbers
(`Event.waitlist_last`). A new address takes a seat or a number with one conditional UPDATE of
that row, which is atomic on its own: the row stays locked only for the rest of that short
transaction. Every other change locks the event row first (SELECT ... FOR UPDATE on PostgreSQL;
on SQLite the transaction began with BEGIN IMMEDIATE) and keeps the counter in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from types import SimpleNamespace

from sqlalchemy import Integer, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from .. import signals
from ..database import connection_of, orm_session
from ..errors import (
    Conflict,
    EventCancelled,
    EventFull,
    EventNotOpen,
    InvalidTransition,
    NotFound,
    SignupClosed,
)
from ..models import ACTIVE_STATES, Event, Registration
from ..prepared import Prepared, prepared
from ..text import one_line, strip_controls
from ..tokens import feed_token, manage_token, new_nonce, token_hash
from .events import lock_event


@dataclass
class SignupResult:
    registration_id: int
    #: "confirmed", "pending", "waitlisted", or "repeat" when the address was already registered.
    outcome: str
    #: The manage token, for the page shown right after signup.
    token: str
    session: Session | Connection = field(repr=False)
    #: The event (at least id, slug, title, double_opt_in), for the page shown after signup.
    event: object = field(default=None, repr=False)

    @cached_property
    def registration(self) -> Registration:
        """Loaded on first use: the fast path writes the row without building the object.

        After a signup on a Core connection it is loaded (while the connection is open) detached,
        to read: change it through this module.
        """
        with orm_session(self.session) as orm:
            return orm.get(Registration, self.registration_id)

    @classmethod
    def of(cls, session: Session, registration: Registration, outcome: str, token: str) -> SignupResult:
        result = cls(registration.id, outcome, token, session, registration.event)
        result.__dict__["registration"] = registration
        return result


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


def has_free_seat(event: Event) -> bool:
    return event.capacity is None or event.seats_taken < event.capacity


def seats_left(event) -> int | None:
    """Free seats as shown to visitors; None when the event has no capacity limit."""
    return None if event.capacity is None else max(0, event.capacity - event.seats_taken)


def sign_up(session: Session | Connection, event: Event | str, *, name: str, email: str, question: str = "",
            timezone: str = "", now: datetime, secret: str, hold_hours: float = 24.0) -> SignupResult:
    """Register someone: a seat (confirmed, or pending their confirmation), or a waitlist place.

    The same address again gets no second seat: outcome "repeat", and the manage link is re-sent.
    `event` is the event or its slug: by slug, a new address is signed up without reading the event first.
    `session` may be a Core connection: a new address then costs no ORM session at all (the web
    form's case); the other cases open one inside the connection's transaction. The caller commits.
    Raises NotFound for an unknown slug, and the reason (a Conflict) when signup is not open.
    """
    person = dict(email_key=email.strip().lower(), name=one_line(name)[:200], email=email.strip()[:320],
                  question=strip_controls(question or "")[:5000], timezone=timezone)
    key = {"by_slug": event} if isinstance(event, str) else {"by_id": event.id}
    result = _sign_up_new(session, key, person, now=now, secret=secret, hold_hours=hold_hours)
    if result is None:
        with orm_session(session) as orm:  # on a connection, the result's registration and event end detached
            event_id = orm.scalar(select(Event.id).where(Event.slug == event)) if "by_slug" in key else event.id
            if event_id is None:
                raise NotFound("No such event.")
            result = _sign_up_locked(orm, event_id, person, now=now, secret=secret, hold_hours=hold_hours)
    return result


_events = Event.__table__
_registrations = Registration.__table__


def _open(key: str):
    """The event named by :by_id or :by_slug while it takes signups at :now."""
    column = _events.c.id if key == "by_id" else _events.c.slug
    return and_(
        column == bindparam(key), _events.c.status == "published", _events.c.starts_at > bindparam("now"),
        or_(_events.c.signup_opens_at.is_(None), _events.c.signup_opens_at <= bindparam("now")),
        or_(_events.c.signup_closes_at.is_(None), _events.c.signup_closes_at > bindparam("now")),
    )


class _NextRegistrationId(ColumnElement):
    """The id the next new registration will get, so that its tokens (derived from the id) go into its INSERT."""

    type = Integer()
    inherit_cache = True


@compiles(_NextRegistrationId)
def _next_id_sqlite(_element, _compiler, **_kw) -> str:
    # What SQLite gives a new row itself; the transaction began with BEGIN IMMEDIATE, so no other writer
    # inserts before this one.
    return "(SELECT coalesce(max(registrations.id), 0) + 1 FROM registrations)"


@compiles(_NextRegistrationId, "postgresql")
def _next_id_postgresql(_element, _compiler, **_kw) -> str:
    return "nextval(pg_get_serial_sequence('registrations', 'id'))"


#: What the signup, its page and its mail receivers need of the event, read by the UPDATE that counts it,
#: and the new registration's id.
_RETURNED = [*(_events.c[name] for name in ("id", "slug", "title", "status", "timezone", "starts_at", "ends_at",
                                            "venue", "reminder_offsets", "double_opt_in", "waitlist_last",
                                            "sequence")),
             _NextRegistrationId().label("next_registration_id")]
#: Take a seat if one is free, else a waitlist number; no row back means signup is not open.
_TAKE_SEAT = {key: Prepared(update(_events).where(_open(key), or_(_events.c.capacity.is_(None),
                                                                  _events.c.seats_taken < _events.c.capacity))
                       .values(seats_taken=_events.c.seats_taken + 1).returning(*_RETURNED))
              for key in ("by_id", "by_slug")}
#: The full test is repeated: on PostgreSQL a seat may have been freed since _TAKE_SEAT found none,
#: and then the locked path seats this person instead of waitlisting them beside a free seat.
_TAKE_NUMBER = {key: Prepared(update(_events).where(_open(key), _events.c.capacity.is_not(None),
                                                    _events.c.seats_taken >= _events.c.capacity)
                         .values(waitlist_last=_events.c.waitlist_last + 1).returning(*_RETURNED))
                for key in ("by_id", "by_slug")}
_GIVE_BACK = Prepared(update(_events).where(_events.c.id == bindparam("by_id"))
                      .values(seats_taken=_events.c.seats_taken - 1))


def _insert_new(dialect: str):
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (insert(_registrations).on_conflict_do_nothing(index_elements=["event_id", "email_key"])
            .returning(_registrations.c.id))


_INSERT_NEW = {dialect: _insert_new(dialect) for dialect in ("postgresql", "sqlite")}


def _sign_up_new(session: Session | Connection, key: dict, person: dict, *, now: datetime, secret: str,
                 hold_hours: float) -> SignupResult | None:
    """An address new to this event, while signup is open: three statements, and no ORM objects.

    Returns None when the address is known or signup is not open, having changed nothing but
    perhaps used up a waitlist number (positions are ranks, so a gap is harmless): the locked path
    then handles it and says why.
    """
    connection = connection_of(session)
    [name] = key
    params = {**key, "now": now}
    taken = _TAKE_SEAT[name].first(connection, params)
    event = taken or _TAKE_NUMBER[name].first(connection, params)
    if event is None:
        return None
    verified = None if event.double_opt_in else now
    state = "confirmed" if taken and verified else "pending" if taken else "waitlisted"
    values = dict(
        id=event.next_registration_id, event_id=event.id, **{**person, "timezone": person["timezone"] or event.timezone},
        state=state, waitlist_seq=None if taken else event.waitlist_last, token_nonce=new_nonce(),
        feed_nonce=new_nonce(), email_verified_at=verified, confirmed_at=now if state == "confirmed" else None,
        hold_expires_at=now + timedelta(hours=hold_hours) if state == "pending" else None,
        reminders_opt_out=False, ics_sequence=0, consent_at=now, created_at=now, updated_at=now)
    # What the signal receivers read of a registration, without loading one; the tokens are derived from it.
    registration = SimpleNamespace(event=event, cancelled_at=None, **values)
    token = manage_token(secret, registration)
    values.update(token_hash=token_hash(token), feed_token_hash=token_hash(feed_token(secret, registration)))
    dialect = connection.dialect.name
    if prepared(_INSERT_NEW[dialect], tuple(values)).scalar(connection, values) is None:
        # The address is known after all (it signed up a moment ago): undo the count.
        if taken:
            _GIVE_BACK.run(connection, {"by_id": event.id})
        return None
    _announce(session, registration, now=now, promoted=False)
    return SignupResult(registration.id, state, token, session, event)


def _sign_up_locked(session: Session, event_id: int, person: dict, *, now: datetime, secret: str,
                    hold_hours: float) -> SignupResult:
    """Any signup, under the event's lock: a repeat, someone coming back, or a refusal with its reason."""
    event = lock_event(session, event_id)
    check_open(event, now=now)
    existing = session.scalar(
        select(Registration).where(Registration.event_id == event.id, Registration.email_key == person["email_key"])
    )
    if existing is not None and existing.state in ACTIVE_STATES:
        signals.registration_repeated.send(existing, session=session, now=now)
        return SignupResult.of(session, existing, "repeat", manage_token(secret, existing))
    registration = existing or Registration(event_id=event.id, email_key=person["email_key"],
                                            token_nonce=new_nonce(), created_at=now)
    for name in ("name", "email", "question"):
        setattr(registration, name, person[name])
    registration.timezone = person["timezone"] or event.timezone
    registration.consent_at = now
    registration.updated_at = now
    registration.cancelled_at = None
    registration.reminders_opt_out = False
    registration.email_verified_at = None if event.double_opt_in else now
    outcome = _seat_or_waitlist(session, event, registration, now=now, hold_hours=hold_hours,
                                secret=secret if existing is None else None)
    return SignupResult.of(session, registration, outcome, manage_token(secret, registration))


def _seat_or_waitlist(session: Session, event: Event, registration: Registration, *, now: datetime,
                      hold_hours: float, secret: str | None = None) -> str:
    """Seat or waitlist someone who holds no seat yet: a new row (pass `secret`), or a cancelled/expired one.

    The decision is made before the row is written, so its one INSERT/UPDATE already carries it.
    """
    if has_free_seat(event):  # this person is not counted: new, cancelled or expired
        _take_seat(event, registration, now=now, hold_hours=hold_hours)
    else:
        registration.waitlist_seq = _next_waitlist_seq(event)
        registration.state = "waitlisted"
        registration.hold_expires_at = None
    if secret is not None:
        session.add(registration)
        session.flush()  # the id is part of the tokens
        registration.token_hash = token_hash(manage_token(secret, registration))
        registration.feed_nonce = new_nonce()
        registration.feed_token_hash = token_hash(feed_token(secret, registration))
    session.flush()
    _announce(session, registration, now=now, promoted=False)
    return registration.state


def _take_seat(event: Event, registration: Registration, *, now: datetime, hold_hours: float) -> None:
    """Give a seat to someone who holds none (waitlisted, new, cancelled or expired); the event is locked."""
    event.seats_taken += 1
    registration.waitlist_seq = None
    if registration.email_verified_at is None:
        registration.state = "pending"
        registration.hold_expires_at = now + timedelta(hours=hold_hours)
    else:
        registration.state = "confirmed"
        registration.confirmed_at = now
        registration.hold_expires_at = None
    registration.updated_at = now


def _announce(session: Session | Connection, registration: Registration, *, now: datetime, promoted: bool) -> None:
    if registration.state == "waitlisted":
        signals.registration_waitlisted.send(registration, session=session, now=now,
                                             position=waitlist_position(session, registration))
    elif registration.state == "pending":
        signals.registration_pending.send(registration, session=session, now=now, promoted=promoted)
    elif promoted:
        signals.registration_promoted.send(registration, session=session, now=now)
    else:
        signals.registration_confirmed.send(registration, session=session, now=now)


def _next_waitlist_seq(event: Event) -> int:
    event.waitlist_last += 1
    return event.waitlist_last


def waitlist_position(session: Session | Connection, registration: Registration) -> int | None:
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


def fill_free_seats(session: Session, event: Event, *, now: datetime, hold_hours: float = 24.0) -> list[Registration]:
    """Promote waitlisted people, head first, into every free seat. The event must be locked."""
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
        _take_seat(event, head, now=now, hold_hours=hold_hours)
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
    if not has_free_seat(event):
        raise EventFull("No seat is free: raise the capacity first, then promote.")
    _take_seat(event, registration, now=now, hold_hours=hold_hours)
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


def update_question(session: Session, registration: Registration, *, question: str, now: datetime) -> None:
    if registration.state not in ACTIVE_STATES:
        raise Conflict("This registration is no longer active.")
    registration.question = strip_controls(question or "")[:5000]
    registration.updated_at = now
    session.flush()


def revoke_feed(session: Session, registration: Registration, *, secret: str) -> str:
    """Issue a new personal feed token; the old feed URL stops working. Returns the new token."""
    registration.feed_nonce = new_nonce()
    token = feed_token(secret, registration)
    registration.feed_token_hash = token_hash(token)
    session.flush()
    return token


def find_by_token(session: Session, token: str, *, column=Registration.token_hash) -> Registration | None:
    return session.scalar(select(Registration).where(column == token_hash(token))) if token else None
