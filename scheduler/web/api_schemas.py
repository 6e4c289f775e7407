"""API payloads: each pydantic model both validates a request and describes it in the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ..models import EVENT_KINDS, MAX_ID, REGISTRATION_STATES, SPEAKER_ROLES
from ..text import one_line

MAX_OFFSET = 60 * 86400
EARLIEST, LATEST = datetime(1971, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
_URL = re.compile(r"^https?://\S+$")

Kind = Literal[EVENT_KINDS]
Role = Literal[SPEAKER_ROLES]
State = Literal[REGISTRATION_STATES]
assert set(State.__args__) == set(REGISTRATION_STATES)


def as_utc(value: datetime) -> datetime:
    """An aware time within the years the calendars and jobs can compute with, in UTC."""
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("Use a date between 1971 and 8999.") from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError("Use a date between 1971 and 8999.")
    return moment


def _http_url(value: str) -> str:
    if value and not _URL.match(value):
        raise ValueError("Use an http(s) URL.")
    return value


def _email(value: str) -> str:
    if not value:
        return value
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def _a_line(value: str) -> str:
    if not one_line(value):
        raise ValueError("Cannot be blank.")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(as_utc), Field(description="RFC 3339 date-time with an offset")]
Url = Annotated[str, Field(max_length=500), AfterValidator(_http_url)]
Offset = Annotated[int, Field(ge=60, le=MAX_OFFSET, description="Seconds")]
SpeakerOffset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Seconds")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- input ---------------------------------------------------------------------------------------

class EventFields(Strict):
    """Fields an organiser sets on an event."""

    slug: str | None = Field(None, max_length=120, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
                             description="Made from the title when absent.")
    summary: str = Field("", max_length=500)
    description: str = Field("", max_length=50_000, description="Markdown")
    kind: Kind = "talk"
    timezone: str = Field("UTC", min_length=1, max_length=64, description="IANA zone, e.g. Europe/Berlin")
    venue: str = Field("", max_length=300)
    join_url: Url = Field("", description="Private: shown only to confirmed registrants and speakers.")
    capacity: int | None = Field(None, ge=0, le=1_000_000, description="null: unlimited")
    signup_opens_at: Moment | None = None
    signup_closes_at: Moment | None = None
    tags: list[Annotated[str, Field(max_length=120)]] = Field(default_factory=list, max_length=20)
    reminder_offsets: list[Offset] = Field(default_factory=lambda: [86400, 3600], max_length=10,
                                           description="Attendee reminders, seconds before the start")
    double_opt_in: bool = True
    briefing_enabled: bool = True
    briefing_offset: SpeakerOffset = 3 * 86400
    nudge_enabled: bool = True
    nudge_offset: SpeakerOffset = 15 * 60
    thanks_enabled: bool = True
    thanks_offset: SpeakerOffset = 3600


class EventCreate(EventFields):
    """A new event (a draft until published)."""

    title: str = Field(max_length=200, min_length=1)
    starts_at: Moment
    ends_at: Moment


class EventUpdate(Strict):
    """Only the fields sent change; null clears capacity and the signup window, and is refused elsewhere."""

    title: str = Field(None, max_length=200, min_length=1)
    slug: str = Field(None, max_length=120, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    summary: str = Field(None, max_length=500)
    description: str = Field(None, max_length=50_000)
    kind: Kind = None
    starts_at: Moment = None
    ends_at: Moment = None
    timezone: str = Field(None, min_length=1, max_length=64)
    venue: str = Field(None, max_length=300)
    join_url: Url = None
    capacity: int | None = Field(None, ge=0, le=1_000_000)
    signup_opens_at: Moment | None = None
    signup_closes_at: Moment | None = None
    tags: list[Annotated[str, Field(max_length=120)]] = Field(None, max_length=20)
    reminder_offsets: list[Offset] = Field(None, max_length=10)
    double_opt_in: bool = None
    briefing_enabled: bool = None
    briefing_offset: SpeakerOffset = None
    nudge_enabled: bool = None
    nudge_offset: SpeakerOffset = None
    thanks_enabled: bool = None
    thanks_offset: SpeakerOffset = None


class CancelRequest(Strict):
    reason: str = Field("", max_length=500)


class SpeakerAdd(Strict):
    """Link an existing speaker (speaker_id) or a new person (name, ...) with a role."""

    speaker_id: int | None = Field(None, ge=1, le=MAX_ID)
    name: str | None = Field(None, min_length=1, max_length=200)
    email: Annotated[str, Field(max_length=320), AfterValidator(_email)] = ""
    affiliation: str = Field("", max_length=200)
    bio: str = Field("", max_length=5000)
    photo_url: Url = ""
    role: Role = "speaker"

    @model_validator(mode="after")
    def _someone(self):
        if self.speaker_id is None and not (self.name or "").strip():
            raise ValueError("Give a speaker_id or a name.")
        return self


class RegistrationCreate(Strict):
    """Register someone, with the same rules as the public form."""

    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_a_line)]
    email: Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_email)]
    question: str = Field("", max_length=2000)
    timezone: str | None = Field(None, max_length=64, description="IANA zone; the event's when absent")


class EventQuery(Strict):
    """Filters of the event list."""

    model_config = ConfigDict(extra="forbid")

    tag: str | None = Field(None, max_length=120, description="Tag (series) slug or name")
    from_: Moment | None = Field(None, alias="from", description="Events that end at or after this time "
                                                                  "(default: now, i.e. upcoming)")
    to: Moment | None = Field(None, description="Events that start before this time")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")


class PageQuery(Strict):
    """A page of a list."""

    limit: int = Field(100, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")


# --- output --------------------------------------------------------------------------------------

class TagOut(BaseModel):
    slug: str
    name: str


class SpeakerOut(BaseModel):
    name: str
    affiliation: str
    bio: str
    photo_url: str
    role: Role


class EventPublic(BaseModel):
    """What anyone may see: never the join URL, never attendee data."""

    slug: str
    title: str
    summary: str
    description: str
    description_html: str
    kind: Kind
    status: Literal["published", "cancelled"]
    starts_at: datetime
    ends_at: datetime
    timezone: str
    venue: str
    online: bool = Field(description="Has a join link (sent to confirmed registrants)")
    capacity: int | None
    seats_left: int | None
    signup_open: bool
    tags: list[TagOut]
    speakers: list[SpeakerOut]
    url: str


class EventList(BaseModel):
    events: list[EventPublic]
    next_cursor: str | None


class SpeakerPrivate(SpeakerOut):
    id: int
    email: str


class EventPrivate(BaseModel):
    """The organiser's view of an event."""

    id: int
    slug: str
    title: str
    summary: str
    description: str
    kind: Kind
    status: Literal["draft", "published", "cancelled"]
    starts_at: datetime
    ends_at: datetime
    timezone: str
    venue: str
    join_url: str
    capacity: int | None
    signup_opens_at: datetime | None
    signup_closes_at: datetime | None
    tags: list[TagOut]
    speakers: list[SpeakerPrivate]
    reminder_offsets: list[int]
    double_opt_in: bool
    briefing_enabled: bool
    briefing_offset: int
    nudge_enabled: bool
    nudge_offset: int
    thanks_enabled: bool
    thanks_offset: int
    sequence: int
    counts: dict[State, int]
    url: str


class RegistrationOut(BaseModel):
    id: int
    name: str
    email: str
    state: State
    waitlist_position: int | None
    question: str
    timezone: str
    created_at: datetime
    confirmed_at: datetime | None
    cancelled_at: datetime | None


class SignupOut(BaseModel):
    outcome: Literal["confirmed", "pending", "waitlisted", "repeat"]
    registration: RegistrationOut


class RegistrationList(BaseModel):
    registrations: list[RegistrationOut]
    next_cursor: str | None


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: dict[str, list[str]]


class Error(BaseModel):
    error: ErrorBody
