"""Signal receivers: each registration change queues its email in the same transaction.

Imported by create_app so the receivers connect. Dedupe keys name one logical message each,
so a repeated signal (a retried request, a double click) never queues a second copy.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .. import signals
from ..domain.queries import waitlist_position
from ..extensions import db
from ..languages import speaking
from ..models import Registration, utcnow
from ..timefmt import format_datetime, format_range
from ..urls import door_url, registration_url
from . import outbox
from .calendar_notices import invite
from .compose import render

#: A repeated signup re-sends the manage link at most once per this many seconds.
REPEAT_WINDOW = 600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _stamp(moment: datetime | None) -> int:
    """A moment in whole microseconds: two changes within one second are two messages."""
    return (moment - EPOCH) // MICROSECOND if moment else 0


def confirm_url(registration: Registration) -> str:
    return registration_url("signup.confirm", registration)


def _queue(session, registration, *, kind: str, key: str, now: datetime, method: str | None = None,
           **context) -> bool:
    """Queue one message about this registration; it is composed at delivery by `compose` below."""
    if method:
        # The invitation's SEQUENCE is fixed now: composed later, after a cancellation, it would
        # otherwise carry the CANCEL's number and a calendar could put the event back. The time and
        # place are kept too: an update queued before this is sent says what they signed up for.
        event = registration.event
        context.update(sequence=max(registration.ics_sequence, event.sequence), starts_at=event.starts_at.isoformat(),
                       ends_at=event.ends_at.isoformat(), venue=event.venue or "")
    return outbox.queue_deferred(
        session, kind=kind, to_addr=registration.email, to_name=registration.name, dedupe_key=f"{kind}:{key}",
        now=now, event_id=registration.event_id, registration_id=registration.id, ics_method=method,
        context=context)


@outbox.renders("signup_received", "confirmed", "promoted", "waitlisted", "cancelled", "manage_link")
def compose(row) -> None:
    """Render a queued signup message from its registration as it is now and the facts queued with it,
    in the registrant's language as it is now."""
    registration = db.session.get(Registration, row.registration_id) if row.registration_id else None
    if registration is None:
        raise LookupError("the registration no longer exists")
    with speaking(registration.language):
        _compose(row, registration)


def _compose(row, registration: Registration) -> None:
    event = registration.event
    context = dict(row.context or {})
    method = row.ics_method
    sequence = context.pop("sequence", max(registration.ics_sequence, event.sequence))
    for told in ("starts_at", "ends_at", "venue"):  # for calendar_notices; the message shows the event as it is
        context.pop(told, None)
    manage_url = registration_url("signup.manage", registration)
    if context.pop("confirm", False):
        context["confirm_url"] = confirm_url(registration)
    if context.get("hold_until"):
        context["hold_until"] = format_datetime(datetime.fromisoformat(context["hold_until"]), registration.timezone)
    context.setdefault("state", registration.state)
    if row.kind in ("waitlisted", "manage_link"):  # the place in the queue when the mail leaves, not when queued
        context["position"] = waitlist_position(db.session, registration)
    # Their own door (web/door.py), never the raw join URL: it opens shortly before the start.
    door = door_url(registration) if event.join_url else ""
    row.subject, row.body_text, row.body_html = render(
        row.kind, event=event, registration=registration, manage_url=manage_url, door_url=door,
        when=format_range(event.starts_at, event.ends_at, registration.timezone), **context)
    row.ics = invite(event, method=method, email=registration.email, name=registration.name, url=manage_url,
                     sequence=sequence, now=utcnow(), join_url=door) if method else None


@signals.registration_pending.connect
def on_pending(registration: Registration, *, session, now: datetime, promoted: bool = False, **_):
    """A seat is held until the address is confirmed: send the confirm link."""
    _queue(session, registration, kind="promoted" if promoted else "signup_received",
           key=f"{registration.id}:hold:{_stamp(registration.hold_expires_at)}", now=now,
           confirm=True, needs_confirmation=True, hold_until=registration.hold_expires_at.isoformat())


@signals.registration_confirmed.connect
def on_confirmed(registration: Registration, *, session, now: datetime, **_):
    if registration.subscription_id is not None:
        return  # a whole-series signup gets one invitation for the series (mail/series.py), not one per occurrence
    _queue(session, registration, kind="confirmed", key=f"{registration.id}:{_stamp(registration.confirmed_at)}",
           now=now, method="REQUEST")


@signals.registration_promoted.connect
def on_promoted(registration: Registration, *, session, now: datetime, **_):
    _queue(session, registration, kind="promoted", key=f"{registration.id}:{_stamp(registration.confirmed_at)}",
           now=now, method="REQUEST", needs_confirmation=False)


@signals.registration_waitlisted.connect
def on_waitlisted(registration: Registration, *, session, now: datetime, **_):
    unverified = registration.email_verified_at is None
    _queue(session, registration, kind="waitlisted", key=f"{registration.id}:{registration.waitlist_seq}:{_stamp(registration.updated_at)}",
           now=now, confirm=unverified)


@signals.registration_cancelled.connect
def on_cancelled(registration: Registration, *, session, now: datetime, by_organiser: bool = False, **_):
    _queue(session, registration, kind="cancelled", key=f"{registration.id}:{_stamp(registration.cancelled_at)}",
           now=now, method="CANCEL", by_organiser=by_organiser)


@signals.registration_repeated.connect
def on_repeated(registration: Registration, *, session, now: datetime, **_):
    """The same address signed up again: send the manage link (at most once per window)."""
    unverified = registration.email_verified_at is None and registration.state in ("pending", "waitlisted")
    # The waitlist position is counted when the mail is composed (see compose), not in the request:
    # a known address's request must take no longer than a new one's.
    _queue(session, registration, kind="manage_link",
           key=f"{registration.id}:{int(now.timestamp()) // REPEAT_WINDOW}", now=now,
           confirm=unverified, state=registration.state)
