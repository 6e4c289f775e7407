"""The organiser's reads of registrants that stay small at any size: the dashboard's events with their
counts, one page of an event's list (searched, filtered by state), the waitlist ranks of the rows on it,
the export read in batches, and the signups chart counted into a bounded number of bins by the database."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, case, cast, func, or_, select
from sqlalchemy.orm import Session, lazyload

from ..models import ACTIVE_STATES, Event, Registration
from ..models.registrations import REGISTRATION_STATES

PAGE_SIZE = 50
#: Rows read from the database cursor at a time while exporting.
EXPORT_BATCH = 1000
#: The signups chart's resolution: at most this many steps per line, whatever the number of signups.
CHART_BINS = 200


#: Signups the chart leaves out (cancelled, expired).
LEFT_OUT_STATES = tuple(state for state in REGISTRATION_STATES if state not in ACTIVE_STATES)
#: The counts the dashboard shows for each event.
DASHBOARD_STATES = ("confirmed", "pending", "waitlisted")


def upcoming_with_counts(session: Session, *, now: datetime, limit: int, offset: int = 0
                         ) -> list[tuple[Event, dict[str, int]]]:
    """Events that have not ended, soonest first, each with its registrations per state in
    DASHBOARD_STATES: one statement, which counts through the (event_id, state) index for these events only."""
    def counted(state: str):
        return (select(func.count()).select_from(Registration)
                .where(Registration.event_id == Event.id, Registration.state == state)
                .correlate(Event).scalar_subquery())

    rows = session.execute(
        select(Event, *(counted(state) for state in DASHBOARD_STATES))
        .where(Event.ends_at >= now).options(lazyload(Event.tags), lazyload(Event.speakers))
        .order_by(Event.starts_at, Event.id).limit(limit).offset(offset)
    )
    return [(event, dict(zip(DASHBOARD_STATES, numbers, strict=True))) for event, *numbers in rows]


def listing_order() -> tuple:
    """States in REGISTRATION_STATES order; the waitlist in line order; everyone else by signup time."""
    state_rank = case({s: i for i, s in enumerate(REGISTRATION_STATES)}, value=Registration.state)
    return state_rank, Registration.waitlist_seq, Registration.created_at, Registration.id


def _where(event_id: int, state: str | None, search: str) -> list[ColumnElement[bool]]:
    where = [Registration.event_id == event_id]
    if state:
        where.append(Registration.state == state)
    if search:
        # Part of a name in any case; part of an address against its lower-cased key.
        where.append(or_(Registration.name.icontains(search, autoescape=True),
                         Registration.email_key.contains(search.lower(), autoescape=True)))
    return where


def matching(session: Session, event_id: int, *, state: str | None = None, search: str = "") -> int:
    """How many of the event's registrations are in `state` (any if None) and match `search`."""
    return session.scalar(select(func.count()).select_from(Registration)
                          .where(*_where(event_id, state, search))) or 0


def page(session: Session, event_id: int, *, state: str | None = None, search: str = "", number: int = 1,
         size: int = PAGE_SIZE) -> list[Registration]:
    """Page `number` (from 1) of the list, `size` rows, in listing order."""
    # The ids are sorted first and the page's rows read after: a sort of narrow rows stays in memory
    # however far into a long list the page is.
    ids = list(session.scalars(select(Registration.id).where(*_where(event_id, state, search))
                               .order_by(*listing_order()).limit(size).offset((number - 1) * size)))
    rows = session.scalars(select(Registration).where(Registration.id.in_(ids))
                           .options(lazyload(Registration.event)))  # the page has its event already
    place = {registration_id: n for n, registration_id in enumerate(ids)}
    return sorted(rows, key=lambda r: place[r.id])


def waitlist_ranks(session: Session, event_id: int, ids: Sequence[int]) -> dict[int, int]:
    """Each of these waitlisted registrations' place in line (1 = next to get a seat)."""
    if not ids:
        return {}
    line = (select(Registration.id, func.row_number().over(order_by=listing_order()[1:]).label("rank"))
            .where(Registration.event_id == event_id, Registration.state == "waitlisted").subquery())
    return dict(session.execute(select(line.c.id, line.c.rank).where(line.c.id.in_(list(ids)))).tuples().all())


@dataclass(frozen=True)
class ExportRow:
    name: str
    email: str
    state: str
    #: Place in the waitlist (1 = next), or None when not waitlisted.
    waitlist_position: int | None
    question: str
    timezone: str
    reminders_opt_out: bool
    created_at: datetime
    confirmed_at: datetime | None
    cancelled_at: datetime | None


def export_batches(session: Session, event_id: int, *, state: str | None = None,
                   batch: int = EXPORT_BATCH) -> Iterator[list[ExportRow]]:
    """The event's registrations in listing order, `batch` at a time, read through a server-side cursor
    (PostgreSQL) or SQLite's stepping one: memory holds one batch, not the export."""
    result = session.execute(
        select(Registration.name, Registration.email, Registration.state, Registration.question,
               Registration.timezone, Registration.reminders_opt_out, Registration.created_at,
               Registration.confirmed_at, Registration.cancelled_at)
        .where(*_where(event_id, state, "")).order_by(*listing_order())
        .execution_options(yield_per=batch)
    )
    waiting = 0  # the waitlist comes in line order, so its rank is a running count
    for rows in result.partitions():
        out = []
        for name, email, row_state, question, zone, opt_out, created, confirmed, cancelled in rows:
            position = None
            if row_state == "waitlisted":
                waiting += 1
                position = waiting
            out.append(ExportRow(name, email, row_state, position, question, zone, opt_out, created, confirmed,
                                 cancelled))
        yield out


# --- the signups chart -------------------------------------------------------------------------

#: One bin of signups: the first and last signup time in it, and how many.
Bin = tuple[datetime, datetime, int]


@dataclass(frozen=True)
class SignupBins:
    """An event's signups counted into at most CHART_BINS bins of equal width, per line of the chart."""

    #: Everyone still registered (confirmed, pending, waitlisted), by signup time.
    registered: list[Bin]
    #: The confirmed among them, by when they got their seat.
    confirmed: list[Bin]
    #: Cancelled and expired signups, which the chart leaves out.
    left_out: int


def _epoch(session: Session, moment) -> ColumnElement[int]:
    """Whole seconds since 1970 of a stored UTC time (SQLite keeps it as text, PostgreSQL as timestamptz).

    SQLite's unixepoch() (3.38 on) and PostgreSQL's date_part() (a double; EXTRACT gives a numeric) take
    half the time of strftime('%s') and EXTRACT over an event's 100,000 signups.
    """
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        if dialect.server_version_info >= (3, 38):
            return func.unixepoch(moment, type_=BigInteger)  # an integer: `//` is then SQL's integer /
        return cast(func.strftime("%s", moment), BigInteger)
    return cast(func.floor(func.date_part("epoch", moment)), BigInteger)


def signup_bins(session: Session, event_id: int, *, start: datetime, end: datetime,
                bins: int = CHART_BINS) -> SignupBins:
    """Count the event's signups into at most `bins` equal spans covering start..end (widened to the data).

    Signups fall between the event's creation and now, so start..end is counted at once, without first
    reading every signup for its span; one outside it (data brought in from elsewhere) shows in the bins'
    first and last moments, and the two lines are counted again over the widened span.
    """
    active = Registration.state.in_(ACTIVE_STATES)
    seated = func.coalesce(Registration.confirmed_at, Registration.created_at)
    origin = math.floor(start.timestamp())
    # A second per bin at least: an event entered after it ended has no span of its own (end before start).
    last = max(math.ceil(end.timestamp()), origin + bins)

    def counted(moment, condition, width: int) -> list[Bin]:
        signups = (select(((_epoch(session, moment) - origin) // width).label("bin"), moment.label("moment"))
                   .where(Registration.event_id == event_id, condition).subquery())
        rows = session.execute(select(func.min(signups.c.moment), func.max(signups.c.moment), func.count())
                               .group_by(signups.c.bin).order_by(signups.c.bin))
        return [(first, latest, n) for first, latest, n in rows]

    while True:
        width = (last - origin) // bins + 1  # whole seconds, so that (last - origin) // width < bins
        registered = counted(Registration.created_at, active, width)
        confirmed = counted(seated, Registration.state == "confirmed", width) if registered else []
        moments = [moment for line in (registered, confirmed) for first, latest, _ in line for moment in (first, latest)]
        earliest = math.floor(min(moments).timestamp()) if moments else origin
        latest = math.ceil(max(moments).timestamp()) if moments else last
        if origin <= earliest and latest <= last:
            break
        origin, last = min(origin, earliest), max(last, latest)
    left_out = session.scalar(select(func.count()).select_from(Registration).where(  # named: ranges of the index
        Registration.event_id == event_id, Registration.state.in_(LEFT_OUT_STATES)))
    return SignupBins(registered, confirmed, left_out or 0)
