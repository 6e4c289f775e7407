"""The series part of the API: create a series from a rule, publish and cancel it, skip a date, change every
occurrence from one on, sign someone up for all of it. One occurrence is an event: the events' operations
change or cancel it alone. Recorded here and routed by api.py with the other operations."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Literal

from flask import current_app, jsonify
from pydantic import BaseModel, Field
from sqlalchemy import select

from .. import clock
from ..domain import recurrence, series_signups
from ..domain import series as series_rules
from ..errors import NotFound
from ..extensions import db
from ..models import Series
from ..services import unit_of_work
from ..timefmt import current_locale
from ..urls import event_url, external_url
from . import api_schemas as s
from .api_input import find_event, parse_body
from .api_registry import operation

FIRST_DAY = r"^(197[1-9]|19[89][0-9]|[2-8][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
Day = Annotated[date, Field(json_schema_extra={"pattern": FIRST_DAY, "format": "date"})]
Clock = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="Wall-clock time, HH:MM")]
ByDay = Annotated[str, Field(pattern=r"^(-1|[1-4])?(MO|TU|WE|TH|FR|SA|SU)$")]
Frequency = Literal["weekly", "monthly"]


class SeriesCreate(s.Strict):
    """A series: a rule in a zone, and what each occurrence is (a draft until published).

    The first occurrence is the first the rule gives on or after `starts_on` at `start_time` that is still to
    come. A weekly rule repeats on `byday`'s weekdays (their numbers are left out), or on the weekday of
    `starts_on`; a monthly one on `byday`'s n-th weekdays (3WE: the third Wednesday, -1FR: the last Friday),
    on `bymonthday`, or on the day of the month of `starts_on`. With both `count` and `until`, whichever
    comes first ends it."""

    title: Annotated[s.Line, Field(min_length=1, max_length=200)]
    slug: str | None = Field(None, max_length=100, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
                             description="Made from the title when absent.")
    summary: str = Field("", max_length=500)
    description: str = Field("", max_length=50_000, description="Markdown")
    kind: s.Kind = "live discussion"
    timezone: s.Zone = "UTC"
    venue: str = Field("", max_length=300)
    join_url: s.Url = Field("", description="Private: shown only to confirmed registrants and speakers.")
    capacity: int | None = Field(None, ge=0, le=1_000_000, description="Per occurrence; null: unlimited")
    reminder_offsets: list[s.Offset] = Field(default_factory=lambda: [86400, 3600], max_length=10)
    double_opt_in: bool = True
    tags: list[Annotated[str, Field(max_length=120)]] = Field(default_factory=list, max_length=20)
    freq: Frequency
    interval: int = Field(1, ge=1, le=52, description="Every this many weeks or months")
    byday: list[ByDay] = Field(default_factory=list, max_length=7)
    bymonthday: int | None = Field(None, ge=1, le=31)
    starts_on: Day
    start_time: Clock
    duration_minutes: int = Field(60, ge=1, le=24 * 60)
    count: int | None = Field(None, ge=1, le=recurrence.MAX_OCCURRENCES)
    until: Day | None = Field(None, description="The last day an occurrence may fall on, in the series' zone")


class FollowingUpdate(s.Strict):
    """This occurrence and every later one of its series: the fields sent change (a new wall-clock time
    moves them all, keeping each one's own move); the series is split here unless this is its first."""

    start_time: Clock | None = None
    duration_minutes: int | None = Field(None, ge=1, le=24 * 60)
    title: Annotated[s.Line, Field(min_length=1, max_length=200)] = None
    summary: str = Field(None, max_length=500)
    description: str = Field(None, max_length=50_000)
    venue: str = Field(None, max_length=300)
    join_url: s.Url = None
    capacity: int | None = Field(None, ge=0, le=1_000_000)


class SkipRequest(s.Strict):
    starts_at: s.Moment = Field(description="The start the rule gives the occurrence to leave out")


class SubscriptionCreate(s.Strict):
    """Sign someone up for the whole series: a place in each upcoming occurrence, one manage link."""

    name: Annotated[s.Line, Field(min_length=1, max_length=200)]
    email: Annotated[s.Email, Field(min_length=3)]
    timezone: s.Zone | None = None


class OccurrenceOut(BaseModel):
    slug: str
    url: str
    starts_at: datetime
    ends_at: datetime
    recurrence_id: datetime = Field(description="The start the rule gave it (its RECURRENCE-ID)")
    status: str


class SeriesOut(BaseModel):
    slug: str
    url: str
    title: str
    summary: str
    status: Literal["draft", "published", "cancelled"]
    timezone: str
    rrule: str = Field(description="RFC 5545 RRULE, DTSTART being first_start in the series' zone")
    first_start: datetime
    duration_minutes: int
    skipped: list[datetime]
    parts: list[str] = Field(description="Slugs of the series' parts after 'this and all following' edits")
    occurrences: list[OccurrenceOut] = Field(description="Planned occurrences still to come (of every part)")


class SeriesList(BaseModel):
    series: list[SeriesOut]


class SubscriptionOut(BaseModel):
    outcome: Literal["pending", "active", "repeat"]
    state: Literal["pending", "active", "cancelled"]
    places: int = Field(description="Occurrences they hold a place in (or wait for)")


def _out(series: Series) -> SeriesOut:
    now = clock.now()
    parts = series_rules.family(db.session, series.family_id)
    coming = series_rules.family_events(db.session, series.family_id, after=now)
    return SeriesOut(
        slug=series.slug, url=external_url("series.page", slug=series.slug), title=series.title,
        summary=series.summary, status=series.status, timezone=series.timezone,
        rrule=recurrence.rrule_text(series), first_start=series.first_start,
        duration_minutes=series.duration_minutes, skipped=[skip.recurrence_id for skip in series.skips],
        parts=[part.slug for part in parts],
        occurrences=[OccurrenceOut(slug=e.slug, url=event_url(e), starts_at=e.starts_at, ends_at=e.ends_at,
                                   recurrence_id=e.recurrence_id, status=e.status)
                     for e in coming if e.status != "draft"])


def _find(slug: str, *, public: bool = False) -> Series:
    query = select(Series).where(Series.slug == slug)
    if public:
        query = query.where(Series.status != "draft")
    series = db.session.scalar(query)
    if series is None:
        raise NotFound("No such series.")
    return series


def _json(series: Series, status: int = 200):
    response = jsonify(_out(series).model_dump(mode="json"))
    response.status_code = status
    return response


@operation("GET", "/series", summary="Published series", ok={200: SeriesList}, tag="series")
def series_list():
    rows = db.session.scalars(select(Series).where(Series.status == "published").order_by(Series.first_start,
                                                                                          Series.id).limit(200))
    return jsonify(SeriesList(series=[_out(row) for row in rows]).model_dump(mode="json"))


@operation("GET", "/series/<slug>", summary="One public series, with its occurrences to come", ok={200: SeriesOut},
           errors=(404,), tag="series")
def series_detail(slug: str):
    return _json(_find(slug, public=True))


@operation("POST", "/series", summary="Create a draft series from a recurrence rule", ok={201: SeriesOut},
           scope="write", body=SeriesCreate, tag="series")
def series_create():
    data = parse_body(SeriesCreate)
    with unit_of_work() as uow:
        hour, minute = (int(part) for part in data.start_time.split(":"))
        rule = recurrence.rule_fields(
            timezone=data.timezone, freq=data.freq, interval=data.interval, byday=",".join(data.byday),
            bymonthday=data.bymonthday, day=data.starts_on, start_time=time(hour, minute), count=data.count,
            until=data.until, now=uow.now)
        series = series_rules.create_series(
            uow.session, now=uow.now, title=data.title, slug=data.slug, summary=data.summary,
            description=data.description, kind=data.kind, venue=data.venue, join_url=data.join_url,
            capacity=data.capacity, reminder_offsets=sorted(set(data.reminder_offsets), reverse=True),
            double_opt_in=data.double_opt_in, tags=data.tags, duration_minutes=data.duration_minutes, **rule)
        slug = series.slug
    response = _json(_find(slug), 201)
    response.headers["Location"] = external_url("api.series_detail", slug=slug)
    return response


@operation("POST", "/series/<slug>/publish", summary="Publish a series: its occurrences for the next months are "
           "made, each with its reminders and speaker jobs", ok={200: SeriesOut}, scope="write", errors=(404,),
           tag="series")
def series_publish(slug: str):
    with unit_of_work() as uow:
        series_rules.publish_series(uow.session, _find(slug), now=uow.now, secret=current_app.config["SECRET_KEY"])
    return _json(_find(slug))


@operation("POST", "/series/<slug>/cancel", summary="Cancel a series and every occurrence to come (everyone is told)",
           ok={200: SeriesOut}, scope="write", body=s.CancelRequest, body_required=False, errors=(404,),
           tag="series")
def series_cancel(slug: str):
    data = parse_body(s.CancelRequest, required=False)
    with unit_of_work() as uow:
        series_rules.cancel_series(uow.session, _find(slug), now=uow.now, reason=data.reason)
    return _json(_find(slug))


@operation("POST", "/series/<slug>/skips", summary="Leave one date out of the series (EXDATE); an occurrence "
           "someone holds a place in is cancelled instead (409)", ok={200: SeriesOut}, scope="write",
           body=SkipRequest, errors=(404,), tag="series")
def series_skip(slug: str):
    data = parse_body(SkipRequest)
    with unit_of_work() as uow:
        series = _find(slug)
        if data.starts_at not in recurrence.rule_starts(series, before=data.starts_at + timedelta(seconds=1)):
            raise NotFound("No occurrence of the series starts then.")
        series_rules.skip_date(uow.session, series, data.starts_at, now=uow.now)
    return _json(_find(slug))


@operation("POST", "/events/<slug>/following", summary="Change this occurrence and every later one of its series",
           ok={200: SeriesOut}, scope="write", body=FollowingUpdate, errors=(404,), tag="series")
def series_following(slug: str):
    data = parse_body(FollowingUpdate)
    sent = data.model_dump(exclude_unset=True)
    clock_text = sent.pop("start_time", None)
    with unit_of_work() as uow:
        event = find_event(slug)
        start = time(*(int(part) for part in clock_text.split(":"))) if clock_text else None
        target = series_rules.edit_following(uow.session, event, now=uow.now, start_time=start, **sent)
        target_slug = target.slug
    return _json(_find(target_slug))


@operation("POST", "/series/<slug>/subscriptions", summary="Sign someone up for the whole series (a place in each "
           "occurrence to come, one manage link)", ok={201: SubscriptionOut, 200: SubscriptionOut},
           scope="write", body=SubscriptionCreate, errors=(404,), tag="series")
def series_subscribe(slug: str):
    data = parse_body(SubscriptionCreate)
    with unit_of_work() as uow:
        subscription, outcome = series_signups.subscribe(
            uow.session, _find(slug), name=data.name, email=data.email, timezone=data.timezone or "",
            now=uow.now, secret=current_app.config["SECRET_KEY"],
            hold_hours=float(current_app.config["HOLD_EXPIRY_HOURS"]), language=current_locale())  # Accept-Language
        places = len([p for p in series_signups.subscription_places(uow.session, subscription)
                      if p.state in ("pending", "confirmed", "waitlisted")])
        body = SubscriptionOut(outcome=outcome, state=subscription.state, places=places)
    return jsonify(body.model_dump(mode="json")), (200 if outcome == "repeat" else 201)
