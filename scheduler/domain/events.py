"""Events: create, edit, publish, move, cancel — and what each change sets in motion."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import signals
from ..errors import InvalidInput, InvalidTransition, SlugTaken
from ..languages import known as known_language
from ..models import BOARD_MODES, EVENT_KINDS, SPEAKER_ROLES, Event, EventSpeaker, Speaker, Tag
from ..text import one_line, slugify, strip_controls
from . import door, reminders
from .queries import lock_event
from .seats import fill_free_seats

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
#: A change to any of these reaches people's calendars: SEQUENCE goes up and they are told.
CALENDAR_FIELDS = ("starts_at", "ends_at", "venue", "join_url")
#: A change to any of these re-plans the event's jobs.
PLAN_FIELDS = ("starts_at", "ends_at", "reminder_offsets", "briefing_enabled", "briefing_offset",
               "nudge_enabled", "nudge_offset", "thanks_enabled", "thanks_offset")
EDITABLE = ("slug", "title", "summary", "description", "kind", "starts_at", "ends_at", "timezone", "venue",
            "join_url", "capacity", "signup_opens_at", "signup_closes_at", "reminder_offsets", "double_opt_in",
            "briefing_enabled", "briefing_offset", "nudge_enabled", "nudge_offset", "thanks_enabled",
            "thanks_offset", "board_mode", "board_public", "door_offset")
MAX_DURATION = timedelta(days=31)


def is_valid_timezone(name: str) -> bool:
    if not name or name not in _zones():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_ZONES: set[str] | None = None


def _zones() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones()
    return _ZONES


def check_heading(fields: dict, bad, *, slug_max: int = 120,
                  slug_message: str = "Use lower-case letters, digits and single hyphens.") -> None:
    """Title, slug, kind and zone, checked alike for an event and a series; `bad(field, message)` per fault."""
    if not one_line(fields.get("title") or ""):
        bad("title", "A title is required.")
    slug = fields.get("slug") or ""
    if not SLUG_RE.match(slug) or len(slug) > slug_max:
        bad("slug", slug_message)
    if fields.get("kind") not in EVENT_KINDS:
        # Written whole, for the catalogs (tests/test_translations.py checks it names every kind).
        bad("kind", "Choose one of: talk, panel, live discussion, workshop, meetup.")
    if not is_valid_timezone(fields.get("timezone") or ""):
        bad("timezone", "Unknown timezone: use an IANA name such as Europe/Berlin.")


def check_join_url(fields: dict, bad) -> None:
    """The join link, for an event and a series alike."""
    join_url = fields.get("join_url") or ""
    if join_url and not re.match(r"^https?://[^\s]+$", join_url):
        bad("join_url", "The join link must be an http(s) URL.")


def validate(fields: dict) -> dict[str, list[str]]:
    """Check a complete set of event fields; return {field: [messages]} (empty when valid)."""
    errors: dict[str, list[str]] = {}

    def bad(field, message):
        errors.setdefault(field, []).append(message)

    check_heading(fields, bad)
    starts, ends = fields.get("starts_at"), fields.get("ends_at")
    if starts is None:
        bad("starts_at", "A start time is required.")
    if ends is None:
        bad("ends_at", "An end time is required.")
    if starts and ends:
        if ends <= starts:
            bad("ends_at", "The end must be after the start.")
        elif ends - starts > MAX_DURATION:
            bad("ends_at", "An event can last at most 31 days.")
    capacity = fields.get("capacity")
    if capacity is not None and capacity < 0:
        bad("capacity", "Capacity cannot be negative; leave it empty for unlimited.")
    opens, closes = fields.get("signup_opens_at"), fields.get("signup_closes_at")
    if opens and closes and closes <= opens:
        bad("signup_closes_at", "Signup must close after it opens.")
    if closes and ends and closes > ends:
        bad("signup_closes_at", "Signup cannot close after the event ends.")
    check_join_url(fields, bad)
    if fields.get("board_mode", "open") not in BOARD_MODES:
        bad("board_mode", "Choose one of: open, moderated.")  # whole, as the kinds' message
    for name in ("briefing_offset", "nudge_offset", "thanks_offset"):
        value = fields.get(name)
        if value is not None and not 0 <= value <= 60 * 86400:
            bad(name, "Between 0 and 60 days.")
    if "door_offset" in fields and (message := door.check_offset(fields["door_offset"])):
        bad("door_offset", message)
    return errors


def _clean(fields: dict) -> dict:
    cleaned = dict(fields)
    for name in ("title", "summary", "venue", "join_url", "slug", "timezone"):
        if name in cleaned and cleaned[name] is not None:
            cleaned[name] = one_line(cleaned[name])
    if cleaned.get("description") is not None:
        cleaned["description"] = strip_controls(cleaned["description"])
    return cleaned


def _check_slug_free(session: Session, slug: str, event_id: int | None) -> None:
    query = select(Event.id).where(Event.slug == slug)
    if event_id is not None:
        query = query.where(Event.id != event_id)
    if session.scalar(query) is not None:
        raise SlugTaken(field="slug")


def unique_slug(session: Session, title: str) -> str:
    base = slugify(title)
    slug, n = base, 2
    while session.scalar(select(Event.id).where(Event.slug == slug)) is not None:
        slug, n = f"{base}-{n}", n + 1
    return slug


def create_event(session: Session, *, now: datetime, tags: list[str] | None = None, **fields) -> Event:
    """Create a draft event; raise InvalidInput with per-field messages when anything is off."""
    fields = _clean(fields)
    fields.setdefault("kind", "talk")
    fields.setdefault("timezone", "UTC")
    if not fields.get("slug"):
        fields["slug"] = unique_slug(session, fields.get("title") or "")
    errors = validate(fields)
    if errors:
        raise InvalidInput("Some fields need attention.", fields=errors)
    _check_slug_free(session, fields["slug"], None)
    event = Event(**{k: v for k, v in fields.items() if k in EDITABLE}, created_at=now, updated_at=now)
    if tags is not None:
        event.tags = _tags(session, tags)
    session.add(event)
    session.flush()
    return event


def update_event(session: Session, event: Event, *, now: datetime, tags: list[str] | None = None,
                 hold_hours: float = 24.0, **fields) -> set[str]:
    """Apply edits; bump SEQUENCE and tell people when the time, place or link changed.

    Returns the names of the fields that really changed.
    """
    lock_event(session, event.id)
    if event.status == "cancelled":
        raise InvalidTransition("A cancelled event cannot be edited.")
    fields = _clean({k: v for k, v in fields.items() if k in EDITABLE})
    merged = {name: getattr(event, name) for name in EDITABLE} | fields
    errors = validate(merged)
    if errors:
        raise InvalidInput("Some fields need attention.", fields=errors)
    if merged["slug"] != event.slug:
        _check_slug_free(session, merged["slug"], event.id)
    previous = {name: getattr(event, name) for name in EDITABLE}
    changed = {name for name, value in fields.items() if previous[name] != value}
    if tags is not None:
        new_tags = _tags(session, tags)
        if [t.slug for t in new_tags] != [t.slug for t in event.tags]:
            event.tags = new_tags
            changed.add("tags")
    if not changed:
        return changed
    for name in changed - {"tags"}:
        setattr(event, name, fields[name])
    event.updated_at = now
    if event.status == "published" and changed & set(CALENDAR_FIELDS):
        event.sequence += 1
    session.flush()
    if event.status == "published":
        if changed & set(PLAN_FIELDS):
            reminders.plan_event_jobs(session, event, now=now)
        if "capacity" in changed:
            fill_free_seats(session, event, now=now, hold_hours=hold_hours)
        signals.event_changed.send(event, session=session, now=now, changed=changed, previous=previous)
    return changed


def publish_event(session: Session, event: Event, *, now: datetime) -> None:
    """Make a draft public and plan its jobs; publishing twice is harmless."""
    lock_event(session, event.id)
    if event.status == "published":
        return
    if event.status == "cancelled":
        raise InvalidTransition("A cancelled event cannot be published again.")
    event.status = "published"
    event.published_at = now
    event.updated_at = now
    session.flush()
    reminders.plan_event_jobs(session, event, now=now)
    signals.event_published.send(event, session=session, now=now)


def cancel_event(session: Session, event: Event, *, now: datetime, reason: str = "") -> None:
    """Cancel: everyone is told (METHOD:CANCEL) and pending jobs are removed. Twice is harmless."""
    lock_event(session, event.id)
    if event.status == "cancelled":
        return
    was_published = event.status == "published"
    event.status = "cancelled"
    event.cancelled_at = now
    event.updated_at = now
    event.sequence += 1
    session.flush()
    reminders.cancel_event_jobs(session, event, now=now, reason="event cancelled")
    if was_published:
        signals.event_cancelled.send(event, session=session, now=now, reason=one_line(reason))


def _tags(session: Session, names: list[str]) -> list[Tag]:
    tags = []
    for name in names:
        name = one_line(name)[:120]
        slug = slugify(name)
        if not name or any(t.slug == slug for t in tags):
            continue
        tag = session.scalar(select(Tag).where(Tag.slug == slug))
        if tag is None:
            tag = Tag(slug=slug, name=name)
            session.add(tag)
        tags.append(tag)
    return tags


def add_speaker(session: Session, event: Event, speaker: Speaker, *, role: str, now: datetime) -> EventSpeaker:
    """Link a speaker to an event with a role; linking again just changes the role."""
    if role not in SPEAKER_ROLES:
        raise InvalidInput("Choose one of: %(choices)s.", field="role", params={"choices": ", ".join(SPEAKER_ROLES)})
    for link in event.speakers:
        if link.speaker_id == speaker.id:
            link.role = role
            break
    else:
        link = EventSpeaker(speaker=speaker, role=role, position=len(event.speakers))
        event.speakers.append(link)
    event.updated_at = now
    session.flush()
    return link


def remove_speaker(session: Session, event: Event, speaker_id: int, *, now: datetime) -> None:
    event.speakers = [link for link in event.speakers if link.speaker_id != speaker_id]
    event.updated_at = now
    session.flush()


def create_speaker(session: Session, *, now: datetime, **fields) -> Speaker:
    name = one_line(fields.get("name") or "")
    if not name:
        raise InvalidInput("A name is required.", field="name")
    speaker = Speaker(
        name=name[:200],
        email=one_line(fields.get("email") or "")[:320],
        affiliation=one_line(fields.get("affiliation") or "")[:200],
        bio=strip_controls(fields.get("bio") or ""),
        photo_url=one_line(fields.get("photo_url") or "")[:500],
        language=known_language(fields.get("language")),
        created_at=now,
        updated_at=now,
    )
    session.add(speaker)
    session.flush()
    return speaker
