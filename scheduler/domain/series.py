"""Series: occurrences of a recurrence rule (recurrence.py) as events planned for a rolling window, skipped
dates, edits of one occurrence or of all following ones, and the places of whole-series subscribers in what
is planned (the subscriptions themselves: series_signups.py).

Each occurrence is an ordinary Event row (series_id, recurrence_id), so capacity, signups, waitlist,
reminders and speaker jobs work per occurrence as they do for any event. Only the occurrences that
start within HORIZON are made; `plan_occurrences` (on publishing, then hourly by the scheduler, or by
`flask series plan`) makes the next ones as time goes on, so the job table stays small.

"This and all following" splits the series (RFC 5545's own way, and the one every calendar client
reads: RANGE=THISANDFUTURE is widely ignored): the old rule ends with UNTIL before the occurrence,
a new series starts there with the change, and the events already made from it move to the new one.
Whole-series subscriptions belong to the first series of the chain and follow every part.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import signals
from ..errors import Conflict, InvalidInput, InvalidTransition, NotFound, SlugTaken
from ..models import (
    ACTIVE_STATES,
    SERIES_FREQUENCIES,
    Event,
    Registration,
    Series,
    SeriesSkip,
    SeriesSubscription,
    Speaker,
)
from ..models.events import NEXT_VERSION
from ..text import one_line, slugify, strip_controls
from ..tokens import feed_token, manage_token, new_nonce, token_hash
from . import events as event_rules
from .queries import lock_event
from .recurrence import MAX_OCCURRENCES, byday_days, local_start, occurrence_starts, rule_starts, zone_of
from .seats import seat_or_waitlist
from .signups import check_open

#: Occurrences starting within this of now exist as events.
HORIZON = timedelta(days=183)
#: Fields of the template an edit of "this and all following" may change, as on each of those events.
TEMPLATE_FIELDS = ("title", "summary", "description", "kind", "venue", "join_url", "capacity", "reminder_offsets")
RULE_FIELDS = ("freq", "interval", "byday", "bymonthday", "first_start", "duration_minutes", "until", "count",
               "timezone")
CREATE_FIELDS = TEMPLATE_FIELDS + RULE_FIELDS + ("slug", "double_opt_in", "tags", "speakers")


# --- the series' fields ----------------------------------------------------------------------


def validate(fields: dict, *, now: datetime) -> dict[str, list[str]]:
    """Check a series' rule and template; {field: [messages]}, empty when valid."""
    errors: dict[str, list[str]] = {}

    def bad(field, message):
        errors.setdefault(field, []).append(message)

    event_rules.check_heading(fields, bad, slug_max=100,
                              slug_message="Use lower-case letters, digits and single hyphens (at most 100).")
    if fields.get("freq") not in SERIES_FREQUENCIES:
        bad("freq", "Choose weekly or monthly.")
    interval = fields.get("interval")
    if not isinstance(interval, int) or not 1 <= interval <= 52:
        bad("interval", "Repeat every 1 to 52 weeks or months.")
    try:
        days = byday_days(fields.get("byday") or "")
    except ValueError:
        days = []
        bad("byday", "Unknown day: use MO, TU, WE, TH, FR, SA, SU, with a week number for monthly (3WE).")
    monthday = fields.get("bymonthday")
    if fields.get("freq") == "weekly" and any(getattr(day, "n", None) for day in days):
        bad("byday", "A weekly series repeats on weekdays without a number (WE, not 3WE).")
    if fields.get("freq") == "monthly":
        if monthday is None and not days:
            bad("byday", "Give the n-th weekday (3WE for the third Wednesday) or a day of the month.")
    elif monthday is not None:
        bad("bymonthday", "A weekly series repeats on weekdays, not on a day of the month.")
    if monthday is not None and not (1 <= monthday <= 31 or -31 <= monthday <= -1):
        bad("bymonthday", "A day of the month is 1 to 31 (or -1 for the last).")
    first = fields.get("first_start")
    if first is None:
        bad("first_start", "The first occurrence's start is required.")
    elif first <= now:
        bad("first_start", "The first occurrence must be in the future.")
    duration = fields.get("duration_minutes")
    if not isinstance(duration, int) or not 1 <= duration <= 24 * 60:
        bad("duration_minutes", "An occurrence lasts 1 minute to 24 hours.")
    count, until = fields.get("count"), fields.get("until")
    if count is not None and until is not None:
        bad("count", "End the series after a number of occurrences or on a date, not both.")
    if count is not None and not 1 <= count <= MAX_OCCURRENCES:
        bad("count", "Between 1 and 1000 occurrences.")  # MAX_OCCURRENCES, written out for the catalogs
    if until is not None and first is not None and until < first:
        bad("until", "The series cannot end before its first occurrence.")
    capacity = fields.get("capacity")
    if capacity is not None and capacity < 0:
        bad("capacity", "Capacity cannot be negative; leave it empty for unlimited.")
    event_rules.check_join_url(fields, bad)
    if not errors:
        probe = Series(**{k: fields[k] for k in RULE_FIELDS})
        probe.skips = []
        starts = rule_starts(probe, before=first + timedelta(days=3660))
        if not starts:
            bad("byday", "This rule gives no occurrence.")
        elif starts[0] != first:
            bad("first_start", "The first occurrence's date must follow the rule (pick a date the rule gives).")
    return errors


def _clean(fields: dict) -> dict:
    cleaned = dict(fields)
    for name in ("title", "summary", "venue", "join_url", "slug", "timezone", "byday"):
        if cleaned.get(name) is not None:
            cleaned[name] = one_line(cleaned[name])
    if cleaned.get("byday"):
        cleaned["byday"] = cleaned["byday"].upper().replace(" ", "")
    if cleaned.get("description") is not None:
        cleaned["description"] = strip_controls(cleaned["description"])
    return cleaned


# --- creating, publishing, planning -----------------------------------------------------------


def create_series(session: Session, *, now: datetime, **fields) -> Series:
    """A draft series; InvalidInput with per-field messages when anything is off."""
    unknown = set(fields) - set(CREATE_FIELDS)
    if unknown:
        raise InvalidInput("Unknown fields: " + ", ".join(sorted(unknown)) + ".")
    fields = _clean(fields)
    fields.setdefault("kind", "live discussion")
    fields.setdefault("timezone", "UTC")
    fields.setdefault("interval", 1)
    fields.setdefault("byday", "")
    fields.setdefault("duration_minutes", 60)
    for name in ("bymonthday", "until", "count"):
        fields.setdefault(name, None)
    if not fields.get("slug"):
        fields["slug"] = _unique_slug(session, fields.get("title") or "")
    errors = validate(fields, now=now)
    if errors:
        raise InvalidInput("Some fields need attention.", fields=errors)
    if session.scalar(select(Series.id).where(Series.slug == fields["slug"])) is not None:
        raise SlugTaken("That address is already used by another series.", field="slug")
    speakers = [[int(speaker_id), role] for speaker_id, role in fields.pop("speakers", None) or []]
    for speaker_id, _role in speakers:
        if session.get(Speaker, speaker_id) is None:
            raise InvalidInput("No speaker with id %(id)s.", field="speakers", params={"id": speaker_id})
    tags = [one_line(name)[:120] for name in fields.pop("tags", None) or [] if one_line(name)]
    series = Series(**fields, tags=tags, speakers=speakers, status="draft", created_at=now, updated_at=now)
    series.skips = []
    session.add(series)
    session.flush()
    return series


def _unique_slug(session: Session, title: str) -> str:
    base = slugify(title)[:90] or "series"
    slug, n = base, 2
    while session.scalar(select(Series.id).where(Series.slug == slug)) is not None:
        slug, n = f"{base}-{n}", n + 1
    return slug


def publish_series(session: Session, series: Series, *, now: datetime, secret: str,
                   horizon: timedelta = HORIZON) -> list[Event]:
    """Make the series public and plan its occurrences within the horizon; twice is harmless."""
    if series.status == "cancelled":
        raise InvalidTransition("A cancelled series cannot be published again.")
    if series.status != "published":
        series.status = "published"
        series.updated_at = now
        session.flush()
    return plan_occurrences(session, series, now=now, secret=secret, horizon=horizon)


def plan_occurrences(session: Session, series: Series, *, now: datetime, secret: str,
                     horizon: timedelta = HORIZON) -> list[Event]:
    """Make the events of the occurrences that start before now + horizon and are not made yet; returns them.

    Whole-series signups get a place in each new one. Occurrences already past are not made.
    """
    if series.status != "published":
        return []
    # Two schedulers rolling the window at once: the second waits here, then finds the events made.
    session.execute(select(Series.id).where(Series.id == series.id).with_for_update())
    before = now + horizon
    made = set(session.scalars(select(Event.recurrence_id).where(Event.series_id == series.id)))
    created = []
    for start in occurrence_starts(series, before=before):
        if start in made or start <= now:
            continue
        created.append(_make_occurrence(session, series, start, now=now))
    series.planned_until = max(series.planned_until or before, before)
    session.flush()
    if created:
        for subscription in _subscriptions(session, series.family_id, states=("active",)):
            enrol(session, subscription, now=now, events=created, secret=secret)
    return created


def plan_all(session: Session, *, now: datetime, secret: str, horizon: timedelta = HORIZON) -> int:
    """Roll every published series' window on (the daily job); returns how many events were made."""
    made = 0
    for series in session.scalars(select(Series).where(Series.status == "published").order_by(Series.id)):
        made += len(plan_occurrences(session, series, now=now, secret=secret, horizon=horizon))
    return made


def _make_occurrence(session: Session, series: Series, start: datetime, *, now: datetime) -> Event:
    local_date = start.astimezone(zone_of(series)).date().isoformat()
    slug = f"{series.slug}-{local_date}"
    if session.scalar(select(Event.id).where(Event.slug == slug)) is not None:
        slug = event_rules.unique_slug(session, slug)
    event = event_rules.create_event(
        session, now=now, tags=list(series.tags or []), slug=slug, title=series.title, summary=series.summary,
        description=series.description, kind=series.kind, timezone=series.timezone, venue=series.venue,
        join_url=series.join_url, capacity=series.capacity, reminder_offsets=list(series.reminder_offsets or []),
        double_opt_in=series.double_opt_in, starts_at=start,
        ends_at=start + timedelta(minutes=series.duration_minutes))
    event.series_id, event.recurrence_id = series.id, start
    for speaker_id, role in series.speakers or []:
        speaker = session.get(Speaker, speaker_id)
        if speaker is not None:
            event_rules.add_speaker(session, event, speaker, role=role, now=now)
    session.flush()
    event_rules.publish_event(session, event, now=now)
    return event


def occurrences(session: Session, series_id: int) -> list[Event]:
    """The series' events, soonest first (cancelled ones included)."""
    return list(session.scalars(select(Event).where(Event.series_id == series_id)
                                .order_by(Event.recurrence_id, Event.id)))


def family(session: Session, family_id: int) -> list[Series]:
    """The first series of a chain and the parts split from it, in order."""
    return list(session.scalars(select(Series).where((Series.id == family_id) | (Series.root_id == family_id))
                                .order_by(Series.first_start, Series.id)))


def family_events(session: Session, family_id: int, *, after: datetime | None = None) -> list[Event]:
    """Every event of every part of the chain (starting after `after`), soonest first."""
    ids = [series.id for series in family(session, family_id)]
    query = select(Event).where(Event.series_id.in_(ids))
    if after is not None:
        query = query.where(Event.starts_at > after)
    return list(session.scalars(query.order_by(Event.starts_at, Event.id)))


def _touch(session: Session, series: Series, *, now: datetime) -> None:
    """The series' master VEVENT changed: a higher SEQUENCE, and every feed holding it is rebuilt."""
    series.sequence += 1
    series.updated_at = now
    session.flush()
    session.execute(update(Event).where(Event.series_id == series.id).values(version=NEXT_VERSION)
                    .execution_options(synchronize_session=False))
    if series.status != "draft":
        signals.series_changed.send(series, session=session, now=now)


# --- one occurrence: skip, cancel, edit --------------------------------------------------------


def skip_occurrence(session: Session, event: Event, *, now: datetime) -> SeriesSkip:
    """Leave this occurrence out of the series (EXDATE). Only while nobody holds a place in it:
    otherwise it is cancelled, so that they are told."""
    series = _series_of(session, event)
    lock_event(session, event.id)
    held = session.scalar(select(Registration.id).where(Registration.event_id == event.id,
                                                        Registration.state.in_(ACTIVE_STATES)).limit(1))
    if held is not None:
        raise Conflict("People are registered for this occurrence: cancel it instead, so that they are told.")
    skip = SeriesSkip(series_id=series.id, recurrence_id=event.recurrence_id, created_at=now)
    session.add(skip)
    session.delete(event)
    session.flush()
    session.refresh(series, ["skips"])
    _touch(session, series, now=now)
    return skip


def skip_date(session: Session, series: Series, recurrence_id: datetime, *, now: datetime) -> SeriesSkip:
    """Leave out an occurrence of the rule that may not be made yet."""
    existing = session.scalar(select(Event).where(Event.series_id == series.id,
                                                  Event.recurrence_id == recurrence_id))
    if existing is not None:
        return skip_occurrence(session, existing, now=now)
    if recurrence_id not in rule_starts(series, before=recurrence_id + timedelta(seconds=1)):
        raise InvalidInput("The rule gives no occurrence at that time.", field="recurrence_id")
    skip = next((s for s in series.skips if s.recurrence_id == recurrence_id), None)
    if skip is None:
        skip = SeriesSkip(series_id=series.id, recurrence_id=recurrence_id, created_at=now)
        series.skips.append(skip)
        _touch(session, series, now=now)
    return skip


def cancel_occurrence(session: Session, event: Event, *, now: datetime, reason: str = "") -> None:
    """Cancel one occurrence: it stays in calendars as cancelled, and everyone registered is told."""
    _series_of(session, event)
    event_rules.cancel_event(session, event, now=now, reason=reason)


def edit_occurrence(session: Session, event: Event, *, now: datetime, **fields) -> set[str]:
    """Change this occurrence only (a move, another venue, another title): the series is untouched."""
    _series_of(session, event)
    return event_rules.update_event(session, event, now=now, **fields)


def edit_following(session: Session, event: Event, *, now: datetime, start_time: time | None = None,
                   duration_minutes: int | None = None, **template) -> Series:
    """Change this occurrence and every later one: the template fields, and the wall-clock start time or
    the duration. Returns the series they now belong to (a new one, split at this occurrence, unless it
    is the series' first)."""
    series = _series_of(session, event)
    unknown = set(template) - set(TEMPLATE_FIELDS)
    if unknown:
        raise InvalidInput("Only these fields change for all following occurrences: "
                           + ", ".join(TEMPLATE_FIELDS) + ".")
    template = _clean(template)
    zone = zone_of(series)
    old_local = local_start(series)
    new_time = start_time or old_local.time()
    duration = duration_minutes if duration_minutes is not None else series.duration_minutes
    if not isinstance(duration, int) or not 1 <= duration <= 24 * 60:
        raise InvalidInput("An occurrence lasts 1 minute to 24 hours.", field="duration_minutes")
    template = {name: value for name, value in template.items() if getattr(series, name) != value}
    if not template and new_time == old_local.time() and duration == series.duration_minutes:
        return series  # nothing changes: no split
    split_at = event.recurrence_id
    following = [e for e in occurrences(session, series.id) if e.recurrence_id >= split_at]
    target = series
    if split_at != series.first_start:
        target = _split(session, series, split_at, now=now)
    old_first = target.first_start
    new_first_local = datetime.combine(target.first_start.astimezone(zone).date(), new_time)
    target.first_start = new_first_local.replace(tzinfo=zone).astimezone(old_first.tzinfo)
    if target.first_start <= now:
        raise InvalidInput("That start time has already passed for this occurrence.", field="start_time")
    target.duration_minutes = duration
    for name, value in template.items():
        setattr(target, name, value)
    merged = {name: getattr(target, name) for name in CREATE_FIELDS if hasattr(target, name)}
    errors = {k: v for k, v in validate(merged, now=now).items() if k != "first_start"}
    if errors:
        raise InvalidInput("Some fields need attention.", fields=errors)
    shift = target.first_start - old_first
    for skip in target.skips:
        skip.recurrence_id += shift
    for occurrence in following:
        # A moved occurrence keeps its own difference from the rule; the rest follow the new time.
        moved = occurrence.starts_at - occurrence.recurrence_id
        length = (occurrence.ends_at - occurrence.starts_at if moved
                  else timedelta(minutes=duration))
        occurrence.series_id = target.id
        occurrence.recurrence_id = _local_shift(occurrence.recurrence_id, new_time, zone)
        if occurrence.status == "cancelled":
            continue
        starts = occurrence.recurrence_id + moved
        changes = dict(template, starts_at=starts, ends_at=starts + length)
        event_rules.update_event(session, occurrence, now=now, **changes)
    _touch(session, target, now=now)
    if target is not series:
        _touch(session, series, now=now)  # its rule ends now: after the events moved to the new part
    return target


def _local_shift(moment: datetime, new_time: time, zone: ZoneInfo) -> datetime:
    local = datetime.combine(moment.astimezone(zone).date(), new_time)
    return local.replace(tzinfo=zone).astimezone(moment.tzinfo)


def _split(session: Session, series: Series, split_at: datetime, *, now: datetime) -> Series:
    """End `series` just before `split_at` and continue its rule from there as a new series."""
    earlier = [s for s in rule_starts(series, before=split_at)]
    copy = {name: getattr(series, name) for name in CREATE_FIELDS if name not in ("slug",)}
    copy.update(first_start=split_at, count=None if series.count is None else series.count - len(earlier))
    new = Series(**copy, slug=_unique_slug(session, f"{series.slug}-from-{split_at:%Y-%m-%d}"),
                 status=series.status, root_id=series.family_id, planned_until=series.planned_until,
                 sequence=0, created_at=now, updated_at=now)
    new.skips = [SeriesSkip(recurrence_id=s.recurrence_id, created_at=s.created_at)
                 for s in series.skips if s.recurrence_id >= split_at]
    series.skips = [s for s in series.skips if s.recurrence_id < split_at]
    series.count = None
    series.until = split_at - timedelta(seconds=1)
    session.add(new)
    session.flush()
    return new


def _series_of(session: Session, event: Event) -> Series:
    if event.series_id is None:
        raise NotFound("This event is not part of a series.")
    series = session.get(Series, event.series_id)
    if series is None:
        raise NotFound("No such series.")
    return series


def cancel_series(session: Session, series: Series, *, now: datetime, reason: str = "") -> None:
    """Cancel the series and every occurrence still to come; whole-series signups end. Twice is harmless."""
    if series.status == "cancelled":
        return
    series.status = "cancelled"
    _touch(session, series, now=now)
    for event in occurrences(session, series.id):
        if event.starts_at > now and event.status != "cancelled":
            event_rules.cancel_event(session, event, now=now, reason=reason)


# --- subscribers' places in what is planned ------------------------------------------------


def _subscriptions(session: Session, family_id: int, *, states) -> list[SeriesSubscription]:
    return list(session.scalars(select(SeriesSubscription).where(
        SeriesSubscription.series_id == family_id, SeriesSubscription.state.in_(states))
        .order_by(SeriesSubscription.id)))


def enrol(session: Session, subscription: SeriesSubscription, *, now: datetime, events: list[Event],
          secret: str, hold_hours: float = 24.0, rejoin: datetime | None = None) -> list[Registration]:
    """A place for the subscriber in each of these occurrences that is open and where they have none yet.

    An occurrence they dropped, or one they signed up for on its own, is left as it is: that one keeps its
    own manage link and its own invitation, and the series' invitation leaves its date out. Places given up
    when they left the whole series at `rejoin` are taken again.
    """
    placed = []
    for event in events:
        try:
            check_open(event, now=now)
        except Conflict:
            continue
        registration = session.scalar(select(Registration).where(Registration.event_id == event.id,
                                                                 Registration.email_key == subscription.email_key))
        if registration is not None:
            if (rejoin is not None and registration.subscription_id == subscription.id
                    and registration.state == "cancelled" and registration.cancelled_at == rejoin):
                locked = lock_event(session, event.id)
                registration.cancelled_at, registration.email_verified_at = None, subscription.confirmed_at
                registration.name, registration.timezone = subscription.name, subscription.timezone
                seat_or_waitlist(session, locked, registration, now=now, hold_hours=hold_hours)
                placed.append(registration)
            continue
        registration = Registration(
            event_id=event.id, subscription_id=subscription.id, name=subscription.name, email=subscription.email,
            email_key=subscription.email_key, timezone=subscription.timezone, language=subscription.language,
            state="pending",
            token_nonce=new_nonce(), feed_nonce=new_nonce(), consent_at=subscription.confirmed_at or now,
            email_verified_at=subscription.confirmed_at or now, reminders_opt_out=subscription.reminders_opt_out,
            ics_sequence=0, created_at=now, updated_at=now)
        session.add(registration)
        session.flush()
        registration.token_hash = token_hash(manage_token(secret, registration))
        registration.feed_token_hash = token_hash(feed_token(secret, registration))
        locked = lock_event(session, event.id)
        seat_or_waitlist(session, locked, registration, now=now, hold_hours=hold_hours)
        placed.append(registration)
    return placed
