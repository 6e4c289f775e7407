"""Calendar files: one event's .ics, the public and per-tag feeds, personal and speaker feeds.

Every feed is answered in two steps: a cheap signature query (counts, ids, update times) says
whether the data changed; unchanged data is served from cached bytes (or 304) without loading
or rendering anything. The bytes are a function of the data, so the ETag is stable between polls.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime as http_date
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import SimpleNamespace
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, current_app, flash, redirect, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import calendars, clock
from ..domain import signups as signup_rules
from ..domain import speaker_feeds
from ..extensions import db
from ..languages import speaking
from ..mail.compose import sender
from ..models import ACTIVE_STATES, Event, EventSpeaker, Registration, Speaker, Tag
from ..models.events import event_tags
from ..services import unit_of_work
from ..text import one_line
from ..timefmt import current_locale
from ..tokens import feed_token, looks_like_token
from ..urls import door_url, event_url, external_url, speaker_door_url, webcal_url
from . import freshness, series_feeds
from .compression import accepts_gzip, encoded_etag, gzip_bytes
from .locale import request_language

bp = Blueprint("feeds", __name__)

#: Past events stay in feeds this long (cancelled ones too, so subscribers see STATUS:CANCELLED).
KEEP_PAST = timedelta(days=30)
PUBLIC = ("published", "cancelled")
CONTENT_TYPE = "text/calendar; charset=utf-8"


class FeedCache:
    """A small LRU of built feeds: key (feed, data signature) -> Built."""

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


class FeedState:
    """Per app (so tests and apps never share bytes): built feeds, and the VEVENTs they are made of."""

    def __init__(self):
        self.cache = FeedCache()
        #: (event id, Event.version, variant, URL prefix) -> (VEVENT bytes, zone span).
        self.vevents: dict = {}


def state() -> FeedState:
    found = current_app.extensions.get("townhall_feeds")
    if found is None:  # not setdefault: that would build a FeedState (a lock, a cache) on every request
        found = current_app.extensions.setdefault("townhall_feeds", FeedState())
    return found


def _fresh(key, compute):
    """The feed's data signature, re-checked at most every FEED_CHECK_SECONDS per process.

    Other processes' writes show within that time; polls in between cost no query at all.
    """
    return freshness.fresh(("feed", *key), compute, seconds=float(current_app.config["FEED_CHECK_SECONDS"]))


def _organizer() -> tuple[str, str]:
    config = current_app.config
    return _sender(config["MAIL_FROM"], config["ORGANIZER_NAME"])


@lru_cache(maxsize=8)
def _sender(mail_from: str, organizer_name: str) -> tuple[str, str]:
    return sender({"MAIL_FROM": mail_from, "ORGANIZER_NAME": organizer_name})


def _event_url_prefix() -> str:
    """Event pages' URLs are this plus the slug (slugs are [a-z0-9-], safe to append): fast for whole feeds."""
    return external_url("public.event", slug="x")[:-1]


class Built:
    """A feed's bytes, their ETag, and their gzip encoding (made on first demand, then kept)."""

    __slots__ = ("body", "etag", "gzipped")

    def __init__(self, body: bytes):
        self.body = body
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self.gzipped: bytes | None = None

    def encoded(self, encoding: str | None) -> bytes:
        if encoding is None:
            return self.body
        if self.gzipped is None:  # two requests at once may both compress: the same bytes either way
            self.gzipped = gzip_bytes(self.body)
        return self.gzipped


def _serve(key, last_modified: datetime | None, build, *, filename: str | None = None) -> Response:
    """Answer from cache or build; 304 when the client's copy (in the encoding it accepts) is current."""
    cache = state().cache
    # The texts a feed adds (speakers' roles, "Join online") are in the request's language.
    full_key = (current_app.config["BASE_URL"], *_organizer(), request_language()) + key
    built = cache.get(full_key)
    if built is None:
        built = Built(build())
        # The same bytes as an earlier version (a signup moved only a seat count): keep that one's gzip.
        built = cache.get(("bytes", built.etag)) or built
        cache.put(full_key, built)
        cache.put(("bytes", built.etag), built)
    encoding = "gzip" if accepts_gzip() else None
    etag = encoded_etag(built.etag, encoding)
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding, Accept-Language, Cookie"}
    if _not_modified(etag, last_modified):
        # What a cache needs to update its copy (RFC 9110 15.4.5); the rest is the stored 200's.
        return Response(status=304, headers=headers)
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified.replace(microsecond=0), usegmt=True)
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if encoding:
        headers["Content-Encoding"] = encoding
    return Response(built.encoded(encoding), status=200, headers=headers, content_type=CONTENT_TYPE)


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


#: VEVENTs kept per app at most; past that they are dropped together (the next builds write them again).
MAX_VEVENTS = 50_000
#: Up to this many changed events are loaded by id; more, and the feed's own query loads them all.
LOAD_BY_ID = 500


def _calendar(name: str | None, *conditions, joins=(), variant=lambda event_id: (),
              entry=lambda event, url: calendars.Entry(event, url), series: series_feeds.Follow | None = None
              ) -> bytes:
    """The calendar of the events matching `conditions`, soonest first; a feed when it has a name.

    Each event's VEVENT is kept under its id, its Event.version (which moves with every change a
    VEVENT shows: the event, its tags, its speakers' names) and `variant` (what else its `entry`
    depends on). A build after a change reads two integers per event and loads and writes only the
    events whose version moved. The occurrences of a series the feed follows (`series`) are written as the
    series' one master VEVENT and its overrides instead (web/series_feeds.py).
    """
    session = db.session
    prefix = _event_url_prefix()
    shared = (prefix, current_locale())
    query = select(Event.id, Event.version, Event.series_id)
    for join in joins:
        query = query.join(*join)
    rows = session.execute(query.where(*conditions).order_by(Event.starts_at, Event.id)).all()
    series_vevents, series_spans = [], []
    if series is not None:
        rows, series_vevents, series_spans = series_feeds.take(session, rows, series, entry=entry, prefix=prefix,
                                                               load=load_events)
    keys = [(event_id, version, variant(event_id), shared) for event_id, version, _ in rows]
    memo = state().vevents
    if len(memo) > MAX_VEVENTS:
        memo.clear()
    missing = [key[0] for key in keys if key not in memo]
    built = {}
    if missing:
        by_id = len(missing) <= LOAD_BY_ID
        for event in load_events(session, *((Event.id.in_(missing),) if by_id else conditions),
                                 joins=() if by_id else joins):
            key = (event.id, event.version, variant(event.id), shared)
            if key not in memo:
                vevent = calendars.vevent(entry(event, prefix + event.slug))
                memo[key] = (vevent, calendars.zone_span(event))
            # Changed again since the first query: newer than its key, which is never stale.
            built[event.id] = memo[key]
    parts = [part for part in (memo.get(key) or built.get(key[0]) for key in keys) if part is not None]
    return calendars.assemble([vevent for vevent, _ in parts] + series_vevents,
                              [span for _, span in parts] + series_spans, name=name,
                              refresh=calendars.REFRESH if name else None)


def _public_window(now: datetime):
    return Event.status.in_(PUBLIC), Event.ends_at >= now - KEEP_PAST


def _aware(value) -> datetime | None:
    if isinstance(value, str):  # SQLite returns max() of a datetime column as text
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _signature(session: Session, *conditions, joins=()):
    """One cheap query whose answer changes whenever the feed's bytes would: which events, and their versions.

    Every change a VEVENT shows raises its event's version (a speaker's new name those of the events they
    speak at), so sum(version) moves with any of them, whatever the clocks of the machines that wrote them.
    """
    query = select(func.count(Event.id), func.max(Event.updated_at), func.sum(Event.id), func.sum(Event.version))
    for join in joins:
        query = query.join(*join)
    row = tuple(session.execute(query.where(*conditions)).one())
    return row, _aware(row[1])


@dataclass(slots=True)
class FeedEvent(calendars.Columns):
    """An event's VEVENT columns as a plain row: building ORM objects would take most of a long feed's time."""

    version: int
    #: The start a series' rule gave this occurrence (web/series_feeds.py); None for a single event.
    recurrence_id: datetime | None


FEED_COLUMNS = [getattr(Event, f.name) for f in fields(FeedEvent) if f.name not in ("tags", "speakers")]


def load_events(session: Session, *conditions, joins=()) -> list[FeedEvent]:
    """Events matching `conditions`, soonest first, with their tags and speakers: three queries."""
    query = select(*FEED_COLUMNS)
    ids = select(Event.id)
    for join in joins:
        query, ids = query.join(*join), ids.join(*join)
    ids = ids.where(*conditions)
    found = {row[0]: FeedEvent(*row) for row in session.execute(
        query.where(*conditions).order_by(Event.starts_at, Event.id))}
    if found:
        tags = session.execute(
            select(event_tags.c.event_id, Tag.name).join(Tag, Tag.id == event_tags.c.tag_id)
            .where(event_tags.c.event_id.in_(ids)).order_by(Tag.slug))
        for event_id, name in tags:
            found[event_id].tags.append(calendars.Named(name))
        speakers = session.execute(
            select(EventSpeaker.event_id, EventSpeaker.role, Speaker.name).join(Speaker)
            .where(EventSpeaker.event_id.in_(ids)).order_by(EventSpeaker.position, EventSpeaker.id))
        for event_id, role, name in speakers:
            found[event_id].speakers.append(calendars.Appearance(role, calendars.Named(name)))
    return list(found.values())


def _public_feed(key, name: Callable[[], str], *conditions, joins=(), series: series_feeds.Follow = series_feeds.ALL
                 ) -> Response:
    """`name()` is called only when the feed is built: a poll answered from memory translates nothing."""
    def where():  # built only when a query runs: a poll answered from memory builds no SQL
        return (*_public_window(clock.now()), *conditions)

    signature, latest = _fresh(key, lambda: _signature(db.session, *where(), joins=joins))
    return _serve(key + signature, latest, lambda: _calendar(name(), *where(), joins=joins, series=series))


@bp.get("/calendar.ics")
def public_feed():
    return _public_feed(("all",), lambda: _("%(organizer)s events", organizer=_organizer()[0]))


@bp.get("/calendar/<tag>.ics")
def tag_feed(tag: str):
    found = db.session.scalar(select(Tag).where(Tag.slug == tag))
    if found is None:
        abort(404)
    return _public_feed(("tag", found.id), lambda: f"{_organizer()[0]}: {one_line(found.name)}",
                        event_tags.c.tag_id == found.id, joins=((event_tags, event_tags.c.event_id == Event.id),),
                        series=series_feeds.tag_follow(found.slug))


@bp.get("/series/<slug>.ics")
def series_feed(slug: str):
    """One series (every part of it after "this and all following" edits): its rules and their overrides."""
    ids = series_feeds.public_family(db.session, slug)
    if not ids:
        abort(404)
    return _public_feed(("series", *ids), lambda: series_feeds.family_name(db.session, ids[0], _organizer()[0]),
                        Event.series_id.in_(ids))


@bp.get("/events/<slug>.ics")
def download(slug: str):
    conditions = (Event.slug == slug, Event.status.in_(PUBLIC))
    signature, latest = _fresh(("event", slug), lambda: _signature(db.session, *conditions))
    if not signature[0]:
        abort(404)
    return _serve(("event", slug) + signature, latest, lambda: _calendar(None, *conditions), filename=f"{slug}.ics")


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
    """All of one person's registrations (same address): join links and alarms for confirmed seats; a
    cancelled or lapsed one stays as STATUS:CANCELLED while its event is in the window, so that
    subscribers' calendars drop it rather than keep it."""
    registration = _registration_for_feed(token)
    conditions = (Registration.email_key == registration.email_key, *_public_window(clock.now()))
    joins = ((Registration, Registration.event_id == Event.id),)
    places = [Place(*row) for row in db.session.execute(
        select(Registration.event_id, Registration.state, Registration.ics_sequence, Registration.updated_at,
               Registration.reminders_opt_out, Event.reminder_offsets, Registration.id, Registration.token_nonce)
        .join(Event, Event.id == Registration.event_id).where(*conditions).order_by(Registration.event_id))]
    signature, latest = _signature(db.session, *conditions, joins=joins)
    # Last-Modified comes from the rows the ETag's key is made of: a cancellation moves both.
    latest = max(filter(None, [latest, *(_aware(p.updated_at) for p in places)]), default=None)
    by_event = {p.event_id: p for p in places}

    def entry(event: FeedEvent, url: str) -> calendars.Entry:
        place = by_event[event.id]
        door = door_url(place.person) if join_link(place.state, event) else ""
        return _personal_entry(event, url, place.state, max(place.ics_sequence, event.sequence), place.alarms,
                               door=door)

    def build() -> bytes:
        # What an entry shows besides its event (which Event.version covers): the place and its alarms.
        return _calendar(_("%(organizer)s: my events", organizer=_organizer()[0]), *conditions, joins=joins,
                         variant=lambda event_id: by_event[event_id].variant, entry=entry,
                         series=series_feeds.personal_follow(db.session, registration.email_key))

    key = ("person", registration.id, tuple(p.variant + (_aware(p.updated_at),) for p in places)) + signature
    with speaking(registration.language):  # their feed speaks the language of their mail
        return _serve(key, latest, build)


class Place:
    """One registration in its person's feed: what its entry shows besides the event itself."""

    __slots__ = ("event_id", "state", "ics_sequence", "updated_at", "alarms", "variant", "person")

    def __init__(self, event_id: int, state: str, ics_sequence: int, updated_at, opt_out: bool, offsets,
                 registration_id: int, token_nonce: str):
        self.event_id, self.state, self.ics_sequence, self.updated_at = event_id, state, ics_sequence, updated_at
        #: What their door link (urls.door_url) is made of.
        self.person = SimpleNamespace(id=registration_id, token_nonce=token_nonce)
        #: The event's reminder offsets (not in Event.version) as alarms, when this person gets reminders.
        self.alarms = tuple(offsets or ()) if state == "confirmed" and not opt_out else ()
        self.variant = ("person", state, ics_sequence, self.alarms)


def join_link(state: str, event) -> str:
    """The event's join URL where a registrant's own entries lead to it (through their door: see
    _personal_entry): for a confirmed seat at an event that is still on; "" for a held seat, a waitlist
    place or a cancellation."""
    return (event.join_url or "") if state == "confirmed" and event.status != "cancelled" else ""


def _personal_entry(event: FeedEvent, url: str, state: str, sequence: int, alarms: tuple[int, ...] = (),
                    door: str = "") -> calendars.Entry:
    if state == "confirmed":
        # Their own door link as URL, LOCATION (without a venue) and in DESCRIPTION; never the join URL itself.
        join = door if join_link(state, event) else ""
        # Alarms as the reminder mails go: for a confirmed seat of someone who kept them, at an event still on.
        return calendars.Entry(event, url, join_url=join, sequence=sequence, link=join,
                               alarms=alarms if event.status != "cancelled" else ())
    if state in ACTIVE_STATES:
        # A held seat or a waitlist place: in the calendar as tentative, without the private link.
        return calendars.Entry(event, url, sequence=sequence,
                               status="CANCELLED" if event.status == "cancelled" else "TENTATIVE")
    # Cancelled (its SEQUENCE was raised then, as in the CANCEL they were sent), or a hold that lapsed.
    return calendars.Entry(event, url, sequence=sequence + (state == "expired"), status="CANCELLED")


@bp.get("/speakers/feeds/<token>.ics")
def speaker_feed(token: str):
    """The events one speaker appears in, with the join link."""
    speaker = speaker_feeds.find_by_token(db.session, token)
    if speaker is None:
        abort(404)
    joins = ((EventSpeaker, EventSpeaker.event_id == Event.id),)
    conditions = (EventSpeaker.speaker_id == speaker.id, *_public_window(clock.now()))
    signature, latest = _fresh(("speaker", speaker.id), lambda: _signature(db.session, *conditions, joins=joins))

    def build() -> bytes:
        # Each entry leads through the speaker's own door to that event, never to the join URL itself.
        links = {link.event_id: link for link in db.session.scalars(
            select(EventSpeaker).where(EventSpeaker.speaker_id == speaker.id))}

        def entry(e, url: str) -> calendars.Entry:
            # A series' master (not a FeedEvent: its id is the series') has no door of its own.
            door = (speaker_door_url(links[e.id]) if isinstance(e, FeedEvent) and e.join_url
                    and e.status != "cancelled" and e.id in links else "")
            return calendars.Entry(e, url, join_url=door)

        return _calendar(_("%(organizer)s: %(name)s speaking", organizer=_organizer()[0], name=one_line(speaker.name)),
                         *conditions, joins=joins,
                         variant=lambda event_id: ("speaker",), entry=entry,
                         series=series_feeds.speaker_follow(speaker.id))

    with speaking(speaker.language):  # their feed speaks the language of their mail
        return _serve(("speaker", speaker.id) + signature, latest, build)


def speaker_feed_url(session: Session, speaker: Speaker) -> str:
    """The speaker's feed address, issuing a token on first use (the caller commits)."""
    token = speaker_feeds.feed_token(session, speaker, secret=current_app.config["SECRET_KEY"])
    return external_url("feeds.speaker_feed", token=token)


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
    with unit_of_work() as uow:
        signup_rules.revoke_feed(uow.session, registration, secret=current_app.config["SECRET_KEY"])
    flash(_("Your calendar feed has a new address; the old one no longer works. Subscribe again with the new "
            "link."), "success")
    if "signup.manage" in current_app.view_functions:
        return redirect(url_for("signup.manage", token=token), code=303)
    return redirect(url_for("public.index"), code=303)


# --- links for templates ------------------------------------------------------------------------


def registrant_join_url(registration: Registration) -> str:
    """The registrant's own door link for the manage page and its calendar links, by the personal feed's
    rule (join_link): for a confirmed seat at an event that is still on and has a join URL; else ""."""
    return door_url(registration) if join_link(registration.state, registration.event) else ""


def _link_text(event, join_url: str) -> tuple[str, str]:
    """(details, location) as the feeds write them: the join link after the summary, and as the
    location when there is no venue. Public links pass no join_url, so they never carry it."""
    parts = (one_line(event.summary or ""), _("Join online: %(url)s", url=join_url) if join_url else "",
             event_url(event))
    return "\n\n".join(p for p in parts if p), one_line(event.venue or "") or join_url


def google_calendar_url(event: Event, *, join_url: str = "") -> str:
    """An "add to Google Calendar" link; join_url only on a confirmed registrant's private page."""
    fmt = "%Y%m%dT%H%M%SZ"
    dates = f"{event.starts_at.astimezone(UTC).strftime(fmt)}/{event.ends_at.astimezone(UTC).strftime(fmt)}"
    details, location = _link_text(event, join_url)
    return "https://calendar.google.com/calendar/render?" + urlencode({
        "action": "TEMPLATE", "text": one_line(event.title), "dates": dates, "ctz": event.timezone,
        "details": details, "location": location,
    })


def outlook_calendar_url(event: Event, *, join_url: str = "") -> str:
    """An "add to Outlook.com" link; join_url only on a confirmed registrant's private page."""
    details, location = _link_text(event, join_url)
    return "https://outlook.live.com/calendar/0/action/compose?" + urlencode({
        "rru": "addevent", "subject": one_line(event.title), "startdt": event.starts_at.isoformat(),
        "enddt": event.ends_at.isoformat(), "body": details, "location": location,
        "path": "/calendar/action/compose",
    })


def subscribe_url(endpoint: str, **values) -> str:
    return webcal_url(external_url(endpoint, **values))


@bp.record_once
def _calendar_links(state) -> None:
    """Template globals (set once, not per render as a context processor would)."""
    state.app.jinja_env.globals.update(
        google_calendar_url=google_calendar_url, outlook_calendar_url=outlook_calendar_url, webcal_url=webcal_url,
        personal_feed_url=personal_feed_url, subscribe_url=subscribe_url, registrant_join_url=registrant_join_url)

