"""Event changes reach people's calendars: an updated invitation (REQUEST) or a cancellation (CANCEL).

Imported by create_app so the receivers connect. Updates wait UPDATE_BATCH_SECONDS in the
outbox; another edit meanwhile rewrites the still-queued row in place, so several edits in a
short time become one update per person, carrying the newest SEQUENCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from icalendar import Calendar
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .. import signals
from ..calendars import invitation
from ..domain import speaker_feeds
from ..domain.events import CALENDAR_FIELDS
from ..extensions import db
from ..languages import speaking
from ..models import ACTIVE_STATES, Event, OutboxMessage, Registration
from ..timefmt import format_range
from ..tokens import feed_token
from ..urls import door_url, event_url, external_url, registration_url, speaker_door_url, webcal_url
from . import outbox
from . import series as series_mail
from .compose import render, sender

UPDATE, CANCEL = "event_updated", "event_cancelled"


@dataclass(frozen=True)
class Recipient:
    """Someone whose calendar holds the event: a confirmed registrant or a speaker."""

    key: str  # "r<registration id>" or "s<speaker id>": part of the dedupe key
    email: str
    name: str
    timezone: str
    sequence: int
    registration_id: int | None = None
    manage_url: str | None = None
    #: Only confirmed registrants and speakers have the event in their calendar (and the join link).
    invited: bool = True
    #: Their private calendar feed (webcal://), which follows every change on its own.
    feed_url: str | None = None
    #: Their own door (web/door.py), the only join link they are sent: confirmed registrants and speakers.
    door_url: str | None = None
    #: The language their mail is written in.
    language: str = "en"


def recipients(session: Session, event: Event, *, states=("confirmed",)) -> list[Recipient]:
    """Registrations in `states` (confirmed: the ones holding an invitation) and speakers with an email."""
    secret = current_app.config["SECRET_KEY"]
    found = []
    registrations = session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state.in_(states))
        .order_by(Registration.id)
    )
    for registration in registrations:
        found.append(Recipient(
            key=f"r{registration.id}", email=registration.email, name=registration.name,
            timezone=registration.timezone or event.timezone,
            sequence=max(registration.ics_sequence, event.sequence), registration_id=registration.id,
            manage_url=registration_url("signup.manage", registration),
            invited=registration.state == "confirmed", feed_url=_webcal("feeds.personal_feed",
                                                                     feed_token(secret, registration)),
            door_url=door_url(registration) if registration.state == "confirmed" and event.join_url else None,
            language=registration.language,
        ))
    for link in event.speakers:
        speaker = link.speaker
        if speaker.email:
            found.append(Recipient(key=f"s{speaker.id}", email=speaker.email, name=speaker.name,
                                   timezone=event.timezone, sequence=event.sequence, language=speaker.language,
                                   feed_url=_webcal("feeds.speaker_feed",
                                                    speaker_feeds.feed_token(session, speaker, secret=secret)),
                                   door_url=speaker_door_url(link) if event.join_url else None))
    return found


def _webcal(endpoint: str, token: str | None) -> str | None:
    return webcal_url(external_url(endpoint, token=token)) if token else None


def invite(event: Event, *, method: str, email: str, name: str, sequence: int, url: str, now: datetime,
           join_url: str = "") -> str:
    """The invitation (REQUEST or CANCEL) emailed to one person, from the configured organiser; `join_url` is
    their own door link."""
    organizer_name, organizer_email = sender(current_app.config)
    return invitation(event, method=method, attendee_email=email, attendee_name=name, sequence=sequence,
                      organizer_email=organizer_email, organizer_name=organizer_name, url=url, stamp=now,
                      join_url=join_url, **series_mail.recurrence(db.session, event, email))


def _invite(event: Event, recipient: Recipient, *, method: str, now: datetime) -> str:
    # URL as in their first REQUEST (notify.compose): a registrant's manage page, where they change or
    # cancel their place; a speaker's, who has none, the event page.
    return invite(event, method=method, email=recipient.email, name=recipient.name, sequence=recipient.sequence,
                  url=recipient.manage_url or event_url(event), now=now, join_url=recipient.door_url or "")


def _prefix(kind: str, event: Event, recipient: Recipient) -> str:
    return f"{kind}:{event.id}:{recipient.key}:"


@signals.event_changed.connect
def on_event_changed(event: Event, *, session: Session, now: datetime, changed: set, previous: dict, **_):
    """Time, place or join link of a published event changed: an updated invitation for everyone invited,
    a note for everyone holding a seat or waiting for one."""
    if not changed & set(CALENDAR_FIELDS):
        return
    delay = timedelta(seconds=float(current_app.config["UPDATE_BATCH_SECONDS"]))
    for recipient in recipients(session, event, states=ACTIVE_STATES):
        with speaking(recipient.language):
            _queue_update(session, event, recipient, now=now, send_at=now + delay, changed=changed,
                          previous=previous)


def _queue_update(session: Session, event: Event, recipient: Recipient, *, now: datetime, send_at: datetime,
                  changed: set, previous: dict) -> None:
    prefix = _prefix(UPDATE, event, recipient)
    waiting = session.scalar(
        select(OutboxMessage).where(OutboxMessage.event_id == event.id, OutboxMessage.kind == UPDATE,
                                    OutboxMessage.state == "queued", OutboxMessage.dedupe_key.like(prefix + "%"))
        .order_by(OutboxMessage.id.desc()).limit(1)
    )
    if waiting is not None:
        # What their calendar holds is what they were last sent, not what the previous edit left.
        previous = _last_sent(session, event, recipient, besides=waiting.id) or previous
    context = _update_context(event, recipient, previous)
    # Held seats and waitlist places have no invitation to update: they are told by email only.
    ics = _invite(event, recipient, method="REQUEST", now=now) if recipient.invited else None
    key = f"{prefix}{recipient.sequence}"
    if waiting is not None:
        subject, text, html = render(UPDATE, **context)
        rewritten = session.execute(
            update(OutboxMessage).where(OutboxMessage.id == waiting.id, OutboxMessage.state == "queued")
            .values(dedupe_key=key, subject=subject, body_text=text, body_html=html, ics=ics,
                    next_attempt_at=send_at)
            .execution_options(synchronize_session=False)
        ).rowcount
        if rewritten:
            return
    # Nothing waiting (or a deliverer claimed it just now): a new row.
    if outbox.queue(session, kind=UPDATE, to_addr=recipient.email, to_name=recipient.name, dedupe_key=key, now=now,
                    event_id=event.id, registration_id=recipient.registration_id, ics=ics,
                    ics_method="REQUEST" if ics else None, **context):
        session.execute(
            update(OutboxMessage).where(OutboxMessage.dedupe_key == key).values(next_attempt_at=send_at)
            .execution_options(synchronize_session=False)
        )


def _update_context(event: Event, recipient: Recipient, previous: dict) -> dict:
    zone = recipient.timezone
    old_start, old_end = previous.get("starts_at") or event.starts_at, previous.get("ends_at") or event.ends_at
    time_changed = (old_start, old_end) != (event.starts_at, event.ends_at)
    old_venue = previous.get("venue", event.venue) or ""
    old_join = previous.get("join_url", event.join_url) or ""
    return dict(
        event=event, recipient=recipient, manage_url=recipient.manage_url,
        event_url=event_url(event),
        when=format_range(event.starts_at, event.ends_at, zone),
        was_when=format_range(old_start, old_end, zone) if time_changed else None,
        venue_changed=old_venue != (event.venue or ""), old_venue=old_venue,
        join_changed=old_join != (event.join_url or ""),
    )


def _last_sent(session: Session, event: Event, recipient: Recipient, *, besides: int) -> dict | None:
    """Start, end and place of the last invitation this person was sent (or is about to be), if any."""
    query = select(OutboxMessage.ics, OutboxMessage.body_text, OutboxMessage.context).where(
        OutboxMessage.event_id == event.id, OutboxMessage.state != "failed",
        OutboxMessage.ics_method == "REQUEST", OutboxMessage.id != besides)
    if recipient.registration_id is not None:
        query = query.where(OutboxMessage.registration_id == recipient.registration_id)
    else:
        query = query.where(OutboxMessage.to_addr == recipient.email, OutboxMessage.registration_id.is_(None))
    last = session.execute(query.order_by(OutboxMessage.id.desc()).limit(1)).first()
    if last is None:
        return None
    ics, body, told = last
    if body is None and ics is None:
        # A signup's invitation still to be composed: what they were told when they signed up.
        if not told or "starts_at" not in told:
            return None
        return {"starts_at": datetime.fromisoformat(told["starts_at"]),
                "ends_at": datetime.fromisoformat(told["ends_at"]), "venue": told.get("venue", ""),
                "join_url": event.join_url}
    if not ics:
        return None
    vevent = Calendar.from_ical(ics).events[0]
    location = str(vevent.get("LOCATION", ""))
    # LOCATION falls back to the join link when there is no venue (see calendars._location).
    return {"starts_at": vevent.start, "ends_at": vevent.end,
            "venue": "" if location.startswith(("http://", "https://")) else location,
            "join_url": event.join_url}


@signals.event_cancelled.connect
def on_event_cancelled(event: Event, *, session: Session, now: datetime, reason: str = "", **_):
    """Everyone is told at once; invited people get METHOD:CANCEL with the bumped SEQUENCE."""
    # A batched update still waiting is moot: the cancellation replaces it.
    session.execute(
        delete(OutboxMessage).where(OutboxMessage.event_id == event.id, OutboxMessage.kind == UPDATE,
                                    OutboxMessage.state == "queued")
        .execution_options(synchronize_session=False)
    )
    told = series_mail.told_by_series(session, event)
    for recipient in recipients(session, event, states=ACTIVE_STATES):
        if recipient.registration_id in told:
            continue
        with speaking(recipient.language):
            ics = _invite(event, recipient, method="CANCEL", now=now) if recipient.invited else None
            outbox.queue(
                session, kind=CANCEL, to_addr=recipient.email, to_name=recipient.name,
                dedupe_key=f"{_prefix(CANCEL, event, recipient)}{recipient.sequence}", now=now, event_id=event.id,
                registration_id=recipient.registration_id, ics=ics, ics_method="CANCEL" if ics else None,
                event=event, recipient=recipient, reason=reason, manage_url=recipient.manage_url,
                event_url=event_url(event),
                when=format_range(event.starts_at, event.ends_at, recipient.timezone),
            )


@signals.registration_cancelled.connect
def on_registration_cancelled(registration: Registration, *, session: Session, **_):
    """Their own CANCEL goes out with the signup mail; a batched update for them must not follow it."""
    session.execute(
        delete(OutboxMessage).where(OutboxMessage.registration_id == registration.id, OutboxMessage.kind == UPDATE,
                                    OutboxMessage.state == "queued")
        .execution_options(synchronize_session=False)
    )
