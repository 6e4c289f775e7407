"""Whole-series signups' mail: confirm the address, one invitation for the series (a REQUEST with its RRULE),
an update when the series' rule changes, a CANCEL when they leave; and the series' UID and RECURRENCE-ID for
the invitations each occurrence sends on its own (notify.py, calendar_notices.py).

Imported by create_app so the receivers connect.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import calendar_series, calendars, signals
from ..domain import series as series_rules
from ..domain import series_signups
from ..domain.recurrence import rrule_text
from ..languages import speaking
from ..models import ACTIVE_STATES, Registration, Series, SeriesSubscription
from ..timefmt import format_range, format_time
from ..urls import external_url
from . import outbox
from .compose import sender


def manage_url(subscription: SeriesSubscription) -> str:
    token = series_signups.subscription_token(current_app.config["SECRET_KEY"], subscription)
    return external_url("series.manage", token=token)


def recurrence(session: Session, event, email: str) -> dict:
    """uid and recurrence_id for calendars.invitation: an occurrence held through a whole-series signup is
    one RECURRENCE-ID of the series' invitation; any other event is an invitation of its own (empty)."""
    if getattr(event, "series_id", None) is None:
        return {}
    held = session.scalar(
        select(SeriesSubscription.id).join(Registration, Registration.subscription_id == SeriesSubscription.id)
        .where(Registration.event_id == event.id, Registration.email_key == email.strip().lower(),
               SeriesSubscription.state == "active"))
    if held is None:
        return {}
    series = session.get(Series, event.series_id)
    return {"uid": calendars.uid_for(series, external_url("series.page", slug=series.slug), kind="series"),
            "recurrence_id": event.recurrence_id}


def told_by_series(session: Session, event) -> set[int]:
    """Registrations held through a whole-series signup of a cancelled series: the series' one CANCEL tells
    them, not a message per occurrence."""
    if getattr(event, "series_id", None) is None:
        return set()
    series = session.get(Series, event.series_id)
    if series is None or series.status != "cancelled":
        return set()
    return set(session.scalars(select(Registration.id).where(Registration.event_id == event.id,
                                                             Registration.subscription_id.is_not(None))))


def series_invitation(session: Session, series: Series, subscription: SeriesSubscription, *, method: str,
                      now: datetime) -> str | None:
    """One part of the chain as this person holds it: the master with RRULE, EXDATEs for the dates they
    hold no place at, overrides for the occurrences moved, changed, cancelled or dropped. None when they
    hold no place in this part."""
    url = manage_url(subscription)
    places = {r.event_id: r for r in session.scalars(select(Registration).where(
        Registration.subscription_id == subscription.id))}
    events = series_rules.occurrences(session, series.id)
    mine = [e for e in events if e.id in places]
    if not mine:
        return None
    first = min(e.recurrence_id for e in mine)
    exdates = [s.recurrence_id for s in series.skips] + [e.recurrence_id for e in events if e.id not in places]
    sequence = series.sequence + subscription.ics_sequence
    cancel = method == "CANCEL"
    template = calendar_series.template(series, starts_at=first, tags=[], speakers=[])
    master = calendars.Entry(template, url, sequence=sequence, status="CANCELLED" if cancel else None)
    shown = [] if cancel else [calendar_series.Occurrence(e, _entry(e, places[e.id], url)) for e in mine]
    organizer_name, organizer_email = sender(current_app.config)
    partstat = "DECLINED" if cancel else "ACCEPTED"
    bodies = calendar_series.vevents(
        series, master, shown, first=first, exdates=exdates, stamp=now,
        organizer=calendars.organizer_line(organizer_email, organizer_name),
        attendee=calendars.attendee_line(subscription.email, subscription.name, partstat=partstat))
    last = calendar_series.last_start(series) or series.planned_until
    spans = [calendar_series.zone_span(series, first, last)]
    return calendars.assemble(bodies, spans, method=method).decode("utf-8")


def _entry(event, registration: Registration, url: str) -> calendars.Entry:
    sequence = max(registration.ics_sequence, event.sequence)
    if event.status == "cancelled" or registration.state not in ACTIVE_STATES:
        return calendars.Entry(event, url, sequence=sequence, status="CANCELLED")
    return calendars.Entry(event, url, sequence=sequence,
                           status="TENTATIVE" if registration.state == "waitlisted" else None)


def _context(session: Session, subscription: SeriesSubscription, series: Series, *, now: datetime) -> dict:
    zone = subscription.timezone or series.timezone
    coming = [e for e in series_rules.family_events(session, subscription.series_id, after=now)
              if e.status == "published"][:5]
    rule = rrule_text(series)
    start = series.first_start
    return dict(subscription=subscription, series=series, manage_url=manage_url(subscription),
                rule_text=_("Repeats %(rule)s, at %(time)s", rule=rule, time=format_time(start, zone)),
                upcoming=[format_range(e.starts_at, e.ends_at, zone) for e in coming])


def _send(session: Session, subscription: SeriesSubscription, series: Series, *, kind: str, key: str,
          now: datetime, method: str | None = None, **extra) -> None:
    with speaking(subscription.language):
        ics = series_invitation(session, series, subscription, method=method, now=now) if method else None
        if method and ics is None:
            return
        outbox.queue(session, kind=kind, to_addr=subscription.email, to_name=subscription.name,
                     dedupe_key=f"{kind}:{subscription.id}:{series.id}:{key}", now=now, ics=ics,
                     ics_method=method if ics else None, **_context(session, subscription, series, now=now), **extra)


def _confirm_url(subscription: SeriesSubscription) -> str:
    token = series_signups.subscription_token(current_app.config["SECRET_KEY"], subscription)
    return external_url("series.confirm", token=token)


@signals.series_subscription_pending.connect
def on_pending(subscription: SeriesSubscription, *, session: Session, now: datetime, **_):
    _send(session, subscription, subscription.series, kind="series_confirm", key=str(subscription.updated_at),
          now=now, confirm_url=_confirm_url(subscription))


@signals.series_subscription_confirmed.connect
def on_confirmed(subscription: SeriesSubscription, *, session: Session, now: datetime, **_):
    for series in series_rules.family(session, subscription.series_id):
        _send(session, subscription, series, kind="series_subscribed", now=now, method="REQUEST",
              key=f"{series.sequence + subscription.ics_sequence}:{subscription.confirmed_at}")


@signals.series_subscription_repeated.connect
def on_repeated(subscription: SeriesSubscription, *, session: Session, now: datetime, **_):
    """Signed up again: the manage link again, at most once per ten minutes."""
    confirm = _confirm_url(subscription) if subscription.state == "pending" else ""
    _send(session, subscription, subscription.series, kind="series_manage_link", key=str(int(now.timestamp()) // 600),
          now=now, confirm_url=confirm)


@signals.series_subscription_cancelled.connect
def on_cancelled(subscription: SeriesSubscription, *, session: Session, now: datetime, **_):
    for series in series_rules.family(session, subscription.series_id):
        _send(session, subscription, series, kind="series_left", now=now, method="CANCEL",
              key=str(series.sequence + subscription.ics_sequence))


@signals.series_changed.connect
def on_series_changed(series: Series, *, session: Session, now: datetime, **_):
    """The rule, a skipped date or the template changed: every whole-series registrant gets the new invitation."""
    subscriptions = session.scalars(select(SeriesSubscription).where(
        SeriesSubscription.series_id == series.family_id, SeriesSubscription.state == "active"))
    cancelled = series.status == "cancelled"
    for subscription in subscriptions:
        _send(session, subscription, series, kind="series_cancelled" if cancelled else "series_updated", now=now,
              method="CANCEL" if cancelled else "REQUEST", key=str(series.sequence + subscription.ics_sequence))
