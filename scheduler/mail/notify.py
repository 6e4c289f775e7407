"""Signal receivers: each registration change queues its email in the same transaction.

Imported by create_app so the receivers connect. Dedupe keys name one logical message each,
so a repeated signal (a retried request, a double click) never queues a second copy.
"""

from __future__ import annotations

from datetime import datetime

from .. import signals
from ..domain.signups import waitlist_position
from ..models import Registration
from ..timefmt import format_datetime, format_range
from ..urls import registration_url
from . import outbox
from .calendar_notices import invite

#: A repeated signup re-sends the manage link at most once per this many seconds.
REPEAT_WINDOW = 600


def _stamp(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def confirm_url(registration: Registration) -> str:
    return registration_url("signup.confirm", registration)


def _queue(session, registration: Registration, *, kind: str, key: str, now: datetime, method: str | None = None,
           **context) -> bool:
    """Queue one message about this registration, with the context every signup template uses."""
    event = registration.event
    manage_url = registration_url("signup.manage", registration)
    ics = invite(event, method=method, email=registration.email, name=registration.name, url=manage_url,
                 sequence=max(registration.ics_sequence, event.sequence), now=now) if method else None
    return outbox.queue(
        session, kind=kind, to_addr=registration.email, to_name=registration.name, dedupe_key=f"{kind}:{key}",
        now=now, event_id=event.id, registration_id=registration.id, ics=ics, ics_method=method,
        event=event, registration=registration, when=format_range(event.starts_at, event.ends_at,
                                                                  registration.timezone),
        manage_url=manage_url, **context,
    )


@signals.registration_pending.connect
def on_pending(registration: Registration, *, session, now: datetime, promoted: bool = False, **_):
    """A seat is held until the address is confirmed: send the confirm link."""
    _queue(session, registration, kind="promoted" if promoted else "signup_received",
           key=f"{registration.id}:hold:{_stamp(registration.hold_expires_at)}", now=now,
           confirm_url=confirm_url(registration), needs_confirmation=True,
           hold_until=format_datetime(registration.hold_expires_at, registration.timezone))


@signals.registration_confirmed.connect
def on_confirmed(registration: Registration, *, session, now: datetime, **_):
    _queue(session, registration, kind="confirmed", key=f"{registration.id}:{_stamp(registration.confirmed_at)}",
           now=now, method="REQUEST")


@signals.registration_promoted.connect
def on_promoted(registration: Registration, *, session, now: datetime, **_):
    _queue(session, registration, kind="promoted", key=f"{registration.id}:{_stamp(registration.confirmed_at)}",
           now=now, method="REQUEST", needs_confirmation=False)


@signals.registration_waitlisted.connect
def on_waitlisted(registration: Registration, *, session, now: datetime, position: int | None = None, **_):
    unverified = registration.email_verified_at is None
    _queue(session, registration, kind="waitlisted", key=f"{registration.id}:{registration.waitlist_seq}:{_stamp(registration.updated_at)}",
           now=now, position=position, confirm_url=confirm_url(registration) if unverified else None)


@signals.registration_cancelled.connect
def on_cancelled(registration: Registration, *, session, now: datetime, by_organiser: bool = False, **_):
    _queue(session, registration, kind="cancelled", key=f"{registration.id}:{_stamp(registration.cancelled_at)}",
           now=now, method="CANCEL", by_organiser=by_organiser)


@signals.registration_repeated.connect
def on_repeated(registration: Registration, *, session, now: datetime, **_):
    """The same address signed up again: send the manage link (at most once per window)."""
    unverified = registration.email_verified_at is None and registration.state in ("pending", "waitlisted")
    _queue(session, registration, kind="manage_link",
           key=f"{registration.id}:{int(now.timestamp()) // REPEAT_WINDOW}", now=now,
           position=waitlist_position(session, registration),
           confirm_url=confirm_url(registration) if unverified else None)
