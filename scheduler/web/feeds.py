"""Calendar files: one event's .ics, the public and per-tag feeds, personal and speaker feeds.

Every feed is answered in two steps: a cheap signature query (counts, ids, update times) says
whether the data changed; unchanged data is served from cached bytes (or 304) without loading
or rendering anything. The bytes are a function of the data, so the ETag is stable between polls.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime as http_date
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, current_app, flash, redirect, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import calendars
from ..domain import signups as signup_rules
from ..extensions import db
from ..mail.compose import sender
from ..models import Event, EventSpeaker, Registration, Speaker, Tag, utcnow
from ..models.events import event_tags
from ..text import one_line
from ..tokens import feed_token, looks_like_token, token_hash
from ..urls import external_url

bp = Blueprint("feeds", __name__)

#: Past events stay in feeds this long (cancelled ones too, so subscribers see STATUS:CANCELLED).
KEEP_PAST = timedelta(days=30)
PUBLIC = ("published", "cancelled")
CONTENT_TYPE = "text/calendar; charset=utf-8"


class FeedCache:
    """A small LRU of built feeds: key (feed, data signature) -> (bytes, etag)."""

    def __init__(self, size: int = 256):
        self.size = size
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


cache = FeedCache()


def _organizer() -> tuple[str, str]:
    return sender(current_app.config)


def event_url(event: Event) -> str:
    return external_url("public.event", slug=event.slug)


def _event_urls():
    """A fast event-page URL maker for whole feeds (slugs are [a-z0-9-], safe to append)."""
    prefix = external_url("public.event", slug="x")[:-1]
    return lambda event: prefix + event.slug


def _serve(key, last_modified: datetime | None, build, *, filename: str | None = None) -> Response:
    """Answer from cache or build; 304 when the client's copy is current."""
    full_key = (current_app.config["BASE_URL"], current_app.config["MAIL_FROM"]) + key
    hit = cache.get(full_key)
    if hit is None:
        body = build()
        hit = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        cache.put(full_key, hit)
    body, etag = hit
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified.replace(microsecond=0), usegmt=True)
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if _not_modified(etag, last_modified):
        return Response(status=304, headers=headers)
    return Response(body, status=200, headers=headers, content_type=CONTENT_TYPE)


def _not_modified(etag: str, last_modified: datetime | None) -> bool:
    # If-None-Match wins over If-Modified-Since when both are sent (RFC 9110 13.2.2).
    match = request.headers.get("If-None-Match")
    if match is not None:
        return match.strip() == "*" or etag in [tag.strip().removeprefix("W/") for tag in match.split(",")]
    since = request.headers.get("If-Modified-Since")
    if since and last_modified is not None:
        try:
            return last_modified.replace(microsecond=0) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False


def _entries(events, **overrides) -> list[calendars.Entry]:
    url = _event_urls()
    return [calendars.Entry(event, url(event), **overrides) for event in events]


def _build(entries: list[calendars.Entry], name: str | None) -> bytes:
    organizer_name, organizer_email = _organizer()
    if name is None:
        return calendars.calendar_bytes(entries, organizer_email=organizer_email, organizer_name=organizer_name)
    return calendars.feed(entries, name=name, organizer_email=organizer_email, organizer_name=organizer_name)


def _public_window(now: datetime):
    return Event.status.in_(PUBLIC), Event.ends_at >= now - KEEP_PAST


def _signature(session: Session, *conditions, joins=()):
    """count, max(updated_at), sum(id), sum(sequence) of the events a feed shows: changes when they do."""
    query = select(func.count(Event.id), func.max(Event.updated_at), func.sum(Event.id), func.sum(Event.sequence))
    for join in joins:
        query = query.join(*join)
    count, latest, ids, sequences = session.execute(query.where(*conditions)).one()
    if isinstance(latest, str):  # SQLite returns max() of a datetime column as text
        latest = datetime.fromisoformat(latest)
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    return (count, latest, ids, sequences), latest


def _speaker_signature(session: Session, event_ids_query) -> tuple:
    """Speaker names appear in DESCRIPTION: their edits must change the feed too."""
    return session.execute(
        select(func.count(Speaker.id), func.max(Speaker.updated_at))
        .join(EventSpeaker, EventSpeaker.speaker_id == Speaker.id)
        .where(EventSpeaker.event_id.in_(event_ids_query))
    ).one()


def _public_feed(key, name: str, *conditions, joins=()) -> Response:
    session = db.session
    now = utcnow()
    conditions = (*_public_window(now), *conditions)
    signature, latest = _signature(session, *conditions, joins=joins)
    ids = select(Event.id)
    for join in joins:
        ids = ids.join(*join)
    speakers = _speaker_signature(session, ids.where(*conditions))

    def build() -> bytes:
        query = select(Event)
        for join in joins:
            query = query.join(*join)
        found = session.scalars(query.where(*conditions).order_by(Event.starts_at, Event.id)).all()
        return _build(_entries(found), name)

    return _serve(key + (signature, tuple(speakers)), latest, build)


@bp.get("/calendar.ics")
def public_feed():
    return _public_feed(("all",), f"{_organizer()[0]} events")


@bp.get("/calendar/<tag>.ics")
def tag_feed(tag: str):
    found = db.session.scalar(select(Tag).where(Tag.slug == tag))
    if found is None:
        abort(404)
    return _public_feed(("tag", found.id), f"{_organizer()[0]}: {one_line(found.name)}",
                        event_tags.c.tag_id == found.id, joins=((event_tags, event_tags.c.event_id == Event.id),))


@bp.get("/events/<slug>.ics")
def download(slug: str):
    event = db.session.scalar(select(Event).where(Event.slug == slug))
    if event is None or event.status == "draft":
        abort(404)
    speakers = _speaker_signature(db.session, select(Event.id).where(Event.id == event.id))
    key = ("event", event.id, event.updated_at, event.sequence, event.status, event.slug, tuple(speakers))
    return _serve(key, event.updated_at, lambda: _build(_entries([event]), None), filename=f"{event.slug}.ics")


# --- personal and speaker feeds ---------------------------------------------------------------


def _registration_for_feed(token: str) -> Registration:
    registration = None
    if looks_like_token(token):
        registration = signup_rules.find_by_token(db.session, token, column=Registration.feed_token_hash)
    if registration is None:
        abort(404)
    return registration


@bp.get("/feeds/<token>.ics")
def personal_feed(token: str):
    """All of one person's active registrations (same address), join links for confirmed seats."""
    registration = _registration_for_feed(token)
    now = utcnow()
    conditions = (Registration.email_key == registration.email_key, Registration.state.in_(signup_rules.ACTIVE),
                  *_public_window(now))
    rows = db.session.execute(
        select(Registration.id, Registration.state, Registration.updated_at, Registration.ics_sequence,
               Event.id, Event.updated_at, Event.sequence)
        .join(Event, Event.id == Registration.event_id).where(*conditions).order_by(Registration.id)
    ).all()
    speakers = _speaker_signature(db.session, select(Registration.event_id).join(Event).where(*conditions))
    latest = max([r[2] for r in rows] + [r[5] for r in rows], default=None)

    def build() -> bytes:
        found = db.session.scalars(
            select(Registration).join(Event, Event.id == Registration.event_id).where(*conditions)
            .order_by(Event.starts_at, Event.id)
        ).all()
        return _build([_personal_entry(r) for r in found], f"{_organizer()[0]}: my events")

    return _serve(("person", registration.id, tuple(map(tuple, rows)), tuple(speakers)), latest, build)


def _personal_entry(registration: Registration) -> calendars.Entry:
    event = registration.event
    sequence = max(registration.ics_sequence, event.sequence)
    if registration.state == "confirmed":
        join = event.join_url if event.status != "cancelled" else ""
        return calendars.Entry(event, event_url(event), join_url=join, sequence=sequence, link=join)
    return calendars.Entry(event, event_url(event), sequence=sequence,
                           status="CANCELLED" if event.status == "cancelled" else "TENTATIVE")


@bp.get("/speakers/feeds/<token>.ics")
def speaker_feed(token: str):
    """The events one speaker appears in, with the join link."""
    speaker = None
    if looks_like_token(token):
        speaker = db.session.scalar(select(Speaker).where(Speaker.feed_token_hash == token_hash(token)))
    if speaker is None:
        abort(404)
    joins = ((EventSpeaker, EventSpeaker.event_id == Event.id),)
    conditions = (EventSpeaker.speaker_id == speaker.id, *_public_window(utcnow()))
    signature, latest = _signature(db.session, *conditions, joins=joins)
    speakers = _speaker_signature(db.session, select(Event.id).join(*joins[0]).where(*conditions))

    def build() -> bytes:
        found = db.session.scalars(
            select(Event).join(*joins[0]).where(*conditions).order_by(Event.starts_at, Event.id)
        ).all()
        entries = [calendars.Entry(e, event_url(e), join_url=e.join_url if e.status != "cancelled" else "")
                   for e in found]
        return _build(entries, f"{_organizer()[0]}: {one_line(speaker.name)} speaking")

    return _serve(("speaker", speaker.id, signature, tuple(speakers)), latest, build)


def speaker_feed_url(session: Session, speaker: Speaker) -> str:
    """The speaker's feed address, issuing a token on first use (the caller commits)."""
    from ..tokens import derive, new_nonce

    secret = current_app.config["SECRET_KEY"]
    if not speaker.feed_nonce:
        speaker.feed_nonce = new_nonce()
        speaker.feed_token_hash = token_hash(derive(secret, "speaker-feed", speaker.id, speaker.feed_nonce))
        session.flush()
    return external_url("feeds.speaker_feed", token=feed_token(secret, speaker, "speaker-feed"))


def personal_feed_url(registration: Registration) -> str | None:
    token = feed_token(current_app.config["SECRET_KEY"], registration)
    return external_url("feeds.personal_feed", token=token) if token else None


@bp.post("/r/<token>/feed/revoke")
def revoke_personal_feed(token: str):
    """From the manage page: a new personal feed address; the old one stops working at once."""
    registration = None
    if looks_like_token(token):
        registration = signup_rules.find_by_token(db.session, token)
    if registration is None:
        abort(404)
    signup_rules.revoke_feed(db.session, registration, secret=current_app.config["SECRET_KEY"])
    db.session.commit()
    flash("Your calendar feed has a new address; the old one no longer works. Subscribe again with the new link.")
    if "signup.manage" in current_app.view_functions:
        return redirect(url_for("signup.manage", token=token), code=303)
    return redirect(url_for("public.index"), code=303)


# --- links for templates ------------------------------------------------------------------------


def google_calendar_url(event: Event) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    dates = f"{event.starts_at.astimezone(UTC).strftime(fmt)}/{event.ends_at.astimezone(UTC).strftime(fmt)}"
    details = "\n\n".join(p for p in (one_line(event.summary or ""), event_url(event)) if p)
    return "https://calendar.google.com/calendar/render?" + urlencode({
        "action": "TEMPLATE", "text": one_line(event.title), "dates": dates, "ctz": event.timezone,
        "details": details, "location": one_line(event.venue or ""),
    })


def outlook_calendar_url(event: Event) -> str:
    details = "\n\n".join(p for p in (one_line(event.summary or ""), event_url(event)) if p)
    return "https://outlook.live.com/calendar/0/action/compose?" + urlencode({
        "rru": "addevent", "subject": one_line(event.title), "startdt": event.starts_at.isoformat(),
        "enddt": event.ends_at.isoformat(), "body": details, "location": one_line(event.venue or ""),
        "path": "/calendar/action/compose",
    })


@bp.app_context_processor
def calendar_links():
    from ..urls import webcal_url

    return {"google_calendar_url": google_calendar_url, "outlook_calendar_url": outlook_calendar_url,
            "webcal_url": webcal_url, "personal_feed_url": personal_feed_url}

