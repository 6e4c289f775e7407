"""Whole-series signups: one subscription (one address, one manage link) holds a place in every occurrence
of a series, those planned later too (series.enrol, called as the window rolls on), until it is left.

The subscription belongs to the first series of a chain split by "this and all following" and follows every part.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import signals
from ..errors import Conflict, InvalidInput, InvalidTransition
from ..languages import DEFAULT as DEFAULT_LANGUAGE
from ..languages import known as known_language
from ..models import ACTIVE_STATES, Event, Registration, Series, SeriesSubscription
from ..text import one_line
from ..tokens import derive, new_nonce, token_hash
from . import events as event_rules
from .series import enrol, family_events


def subscription_token(secret: str, subscription: SeriesSubscription) -> str:
    """The one manage link's token for all of a whole-series signup's places."""
    return derive(secret, "series", subscription.id, subscription.token_nonce)


def _subscription_of(session: Session, family_id: int, email_key: str) -> SeriesSubscription | None:
    return session.scalar(select(SeriesSubscription).where(
        SeriesSubscription.series_id == family_id, SeriesSubscription.email_key == email_key))


def subscribe(session: Session, series: Series, *, name: str, email: str, timezone: str = "", now: datetime,
              secret: str, hold_hours: float = 24.0, language: str = DEFAULT_LANGUAGE) -> tuple[SeriesSubscription, str]:
    """Sign someone up for the whole series: (subscription, outcome), outcome "pending" (confirm the address
    first), "active" (a place in each future occurrence) or "repeat" (already signed up; the link is re-sent)."""
    if series.status != "published":
        raise Conflict("This series is not open for signup.")
    name, email = one_line(name)[:200], (email or "").strip()[:320]
    if not name:
        raise InvalidInput("Please give your name.", field="name")
    if "@" not in email:
        raise InvalidInput("Please give a valid email address.", field="email")
    family_id = series.family_id
    key = email.lower()
    subscription = _subscription_of(session, family_id, key)
    created = False
    if subscription is None:
        try:
            # The same address twice at once: the unique (series, address) index lets one row in, and the
            # other request finds it and answers as for a repeat.
            with session.begin_nested():
                subscription = SeriesSubscription(series_id=family_id, email_key=key, token_nonce=new_nonce(),
                                                  created_at=now, ics_sequence=0, reminders_opt_out=False,
                                                  name=name, email=email, state="pending", updated_at=now)
                session.add(subscription)
            created = True
        except IntegrityError:
            subscription = _subscription_of(session, family_id, key)
    if not created and subscription.state in ("pending", "active"):
        signals.series_subscription_repeated.send(subscription, session=session, now=now)
        return subscription, "repeat"
    # New, or coming back after leaving (the same row, pending or active again).
    subscription.name, subscription.email = name, email
    subscription.timezone = timezone if event_rules.is_valid_timezone(timezone) else series.timezone
    subscription.language = known_language(language)
    subscription.state, subscription.updated_at = "pending", now  # cancelled_at: see confirm_subscription
    session.flush()
    subscription.token_hash = token_hash(subscription_token(secret, subscription))
    if series.double_opt_in:
        session.flush()
        signals.series_subscription_pending.send(subscription, session=session, now=now)
        return subscription, "pending"
    confirm_subscription(session, subscription, now=now, secret=secret, hold_hours=hold_hours)
    return subscription, "active"


def confirm_subscription(session: Session, subscription: SeriesSubscription, *, now: datetime, secret: str,
                         hold_hours: float = 24.0) -> None:
    """The address is confirmed: a place in every future occurrence, and one invitation for the series."""
    if subscription.state == "cancelled":
        raise InvalidTransition("This signup was cancelled. Sign up again to attend.")
    if subscription.state == "active":
        return
    # Coming back after leaving: the places given up then are taken again (not those dropped one by one).
    left_at, subscription.cancelled_at = subscription.cancelled_at, None
    subscription.state, subscription.confirmed_at, subscription.updated_at = "active", now, now
    session.flush()
    enrol(session, subscription, now=now, events=family_events(session, subscription.series_id, after=now),
          secret=secret, hold_hours=hold_hours, rejoin=left_at)
    signals.series_subscription_confirmed.send(subscription, session=session, now=now)


def subscription_places(session: Session, subscription: SeriesSubscription) -> list[Registration]:
    """The subscriber's places, soonest first (dropped ones included)."""
    return list(session.scalars(select(Registration).join(Event, Event.id == Registration.event_id)
                                .where(Registration.subscription_id == subscription.id)
                                .order_by(Event.starts_at, Event.id)))


def cancel_subscription(session: Session, subscription: SeriesSubscription, *, now: datetime) -> int:
    """Leave the whole series: every future place is given up. Returns how many. Twice is harmless."""
    from .signups import cancel_registration

    if subscription.state == "cancelled":
        return 0
    subscription.state, subscription.cancelled_at, subscription.updated_at = "cancelled", now, now
    subscription.ics_sequence += 1
    session.flush()
    dropped = 0
    for registration in subscription_places(session, subscription):
        if registration.state in ACTIVE_STATES and registration.event.starts_at > now:
            cancel_registration(session, registration, now=now)
            dropped += 1
    signals.series_subscription_cancelled.send(subscription, session=session, now=now)
    return dropped


def set_subscription_reminders(session: Session, subscription: SeriesSubscription, *, opt_out: bool,
                               now: datetime) -> None:
    """Reminders on or off for every place of the whole-series signup (and the places it gets later)."""
    subscription.reminders_opt_out, subscription.updated_at = opt_out, now
    for registration in subscription_places(session, subscription):
        if registration.reminders_opt_out != opt_out:
            registration.reminders_opt_out, registration.updated_at = opt_out, now
    session.flush()


def find_subscription(session: Session, token: str) -> SeriesSubscription | None:
    return session.scalar(select(SeriesSubscription).where(SeriesSubscription.token_hash == token_hash(token))
                          ) if token else None
