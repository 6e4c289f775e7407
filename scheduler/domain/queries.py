"""Reads and locks that several rule modules share: the event's lock, counts, listings, waitlist rank."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, lazyload

from ..errors import NotFound
from ..models import Event, Registration, SchedulerHeartbeat

#: A claim whose scheduler has not beaten its heartbeat for this long is taken over by another.
CLAIM_TIMEOUT = timedelta(seconds=10)


def lock_event(session: Session, event_id: int) -> Event:
    """Lock the event row for the rest of the transaction (on SQLite BEGIN IMMEDIATE did it).

    FOR NO KEY UPDATE on PostgreSQL: it excludes every other lock_event, yet not the key-share lock
    that inserting a registration takes on its event (FOR UPDATE would, and two signups that had
    each written their row would then wait for each other).
    """
    # Tags and speakers load only if used: a signup needs neither.
    event = session.scalar(
        select(Event).where(Event.id == event_id).with_for_update(key_share=True)
        .options(lazyload(Event.tags), lazyload(Event.speakers))
        .execution_options(populate_existing=True)
    )
    if event is None:
        raise NotFound("No such event.")
    return event


def lock_events(session: Session, event_ids: list[int]) -> None:
    """lock_event for several events at once, in id order (two lockers of the same events never wait
    for each other in a circle)."""
    if event_ids:
        session.execute(select(Event.id).where(Event.id.in_(event_ids)).order_by(Event.id)
                        .with_for_update(key_share=True))


def counts(session: Session, event_ids: list[int]) -> dict[int, dict[str, int]]:
    """Registrations per state for each event: {event_id: {"confirmed": n, ...}}."""
    result: dict[int, dict[str, int]] = {i: {} for i in event_ids}
    if not event_ids:
        return result
    rows = session.execute(
        select(Registration.event_id, Registration.state, func.count())
        .where(Registration.event_id.in_(event_ids))
        .group_by(Registration.event_id, Registration.state)
    )
    for event_id, state, n in rows:
        result[event_id][state] = n
    return result


def upcoming(session: Session, *, now: datetime, limit: int = 50, offset: int = 0) -> list[Event]:
    """Published and cancelled events that have not ended, soonest first."""
    return list(session.scalars(
        select(Event).where(Event.status.in_(("published", "cancelled")), Event.ends_at >= now)
        .order_by(Event.starts_at, Event.id).limit(limit).offset(offset)
    ))


def past(session: Session, *, now: datetime, limit: int = 50, offset: int = 0) -> list[Event]:
    """Published events that have ended, latest first."""
    return list(session.scalars(
        select(Event).where(Event.status == "published", Event.ends_at < now)
        .order_by(Event.starts_at.desc(), Event.id.desc()).limit(limit).offset(offset)
    ))


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


def claim_lapsed(claimed_by, claimed_at, *, now: datetime, lease: timedelta, timeout: timedelta = CLAIM_TIMEOUT):
    """SQL condition: a claim another process may take over.

    A scheduler keeps a heartbeat row and renews every claim it holds by beating, however slow its
    work: its claims lapse `timeout` after its last beat (it died or hangs). A claimer without a
    heartbeat row (a one-off command) keeps its claim until `lease` after it made it.
    """
    beats = select(SchedulerHeartbeat.id).where(SchedulerHeartbeat.id == claimed_by)
    return or_(exists(beats.where(SchedulerHeartbeat.beat_at < now - timeout)),
               and_(~exists(beats), claimed_at < now - lease))
