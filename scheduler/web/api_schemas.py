"""API payloads: each pydantic model both validates a request and describes it in the OpenAPI document.

The document says exactly what a request may hold: where a check is not one of JSON Schema's own
(a real IANA zone, a non-blank name, the years a date may have), the model checks it in Python and writes
the same rule into its schema as a `pattern` or an `enum`. Rules between fields (an end after its start)
cannot be written in JSON Schema; the fields' descriptions state them, and they are refused with a 422.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Literal
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from ..domain import door as door_rules
from ..domain import events as event_rules
from ..models import BOARD_MODES, EVENT_KINDS, MAX_ID, QUESTION_STATES, REGISTRATION_STATES, SPEAKER_ROLES

MAX_OFFSET = 60 * 86400
FIRST_YEAR, LAST_YEAR = 1971, 8999
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The characters one_line() removes or folds (controls, bidi overrides, whitespace), as a regex class body
#: that reads the same in Python, ECMAScript and Rust: a name needs one character outside it.
BLANK = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028-\u202f\u205f\u2066-\u2069\u3000"
NON_BLANK = f"[^{BLANK}]"
URL_PATTERN = f"^https?://[^{BLANK}]+$"
#: RFC 3339 with an offset (upper-case T and Z), written in the years 1971 to 8999; `format: date-time`
#: rules out the days a month does not have.
MOMENT_PATTERN = (r"^(197[1-9]|19[89][0-9]|[2-8][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                  r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
#: A page's position: the last event's start in microseconds since 1970 (UTC), "_", and its id.
EVENT_CURSOR_PATTERN = "^[0-9]{1,20}_[0-9]{1,20}$"
#: A page's position: the last registration's id.
ID_CURSOR_PATTERN = "^[0-9]{1,20}$"
_MOMENT, _URL, _NON_BLANK = re.compile(MOMENT_PATTERN), re.compile(URL_PATTERN), re.compile(NON_BLANK)

Kind = Literal[EVENT_KINDS]
Role = Literal[SPEAKER_ROLES]
State = Literal[REGISTRATION_STATES]
assert set(State.__args__) == set(REGISTRATION_STATES)


@cache
def zone_names() -> list[str]:
    """Every timezone name the server accepts, sorted."""
    return sorted(name for name in available_timezones() if event_rules.is_valid_timezone(name))


def as_utc(value: datetime) -> datetime:
    """An aware time written in the years the calendars and jobs can compute with, in UTC."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"Use a date between {FIRST_YEAR} and {LAST_YEAR}.")
    return value.astimezone(UTC)


def _moment(value) -> datetime:
    if not isinstance(value, str) or not _MOMENT.fullmatch(value):
        raise ValueError(f"Use an RFC 3339 date-time with an offset, between {FIRST_YEAR} and {LAST_YEAR}, "
                         "e.g. 2031-03-01T18:00:00+01:00.")
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise ValueError(f"Not a real date: {exc}.") from None


def _http_url(value: str) -> str:
    if value and not _URL.fullmatch(value):
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
    if not _NON_BLANK.search(value):
        raise ValueError("Cannot be blank.")
    return value


def _zone(value: str) -> str:
    if not event_rules.is_valid_timezone(value):
        raise ValueError("Unknown timezone: use an IANA name such as Europe/Berlin.")
    return value


def _zone_or_empty(value: str) -> str:
    return value and _zone(value)


def _cursor(pattern: str):
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError("Not a cursor from a previous page.")
        return value

    return AfterValidator(check)


def _zone_enum(schema: dict) -> None:
    schema["enum"] = zone_names()


def _zone_or_empty_enum(schema: dict) -> None:
    schema["enum"] = ["", *zone_names()]


#: What email-validator refuses of what `format: idn-email` allows can only be said in words.
EMAIL_RULE = ("An address email-validator accepts without a DNS lookup: a domain with a dot that is not a "
              "special-use name (.test, .local, .invalid, ...), no IP address, no quoted local part; otherwise 422")
Email = Annotated[str, Field(max_length=320, description=EMAIL_RULE, json_schema_extra={"format": "idn-email"}),
                  AfterValidator(_email)]
Moment = Annotated[datetime, PlainValidator(_moment), WithJsonSchema({
    "type": "string", "format": "date-time", "pattern": MOMENT_PATTERN,
    "description": f"RFC 3339 date-time with an offset, in the years {FIRST_YEAR} to {LAST_YEAR}"})]
Url = Annotated[str, Field(max_length=500, json_schema_extra={"pattern": f"^$|{URL_PATTERN}"}),
                AfterValidator(_http_url)]
Line = Annotated[str, AfterValidator(_a_line), Field(json_schema_extra={"pattern": NON_BLANK})]
Zone = Annotated[str, Field(description="IANA zone, e.g. Europe/Berlin", json_schema_extra=_zone_enum),
                 AfterValidator(_zone)]
Offset = Annotated[int, Field(ge=60, le=MAX_OFFSET, description="Seconds")]
SpeakerOffset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Seconds")]
DoorOffset = Annotated[int, Field(ge=0, le=door_rules.MAX_OFFSET, description=(
    "Seconds before the start at which registrants' and speakers' own join links (the door) begin to lead to "
    "the join URL; before that they show a waiting page"))]
#: Rules between fields, which JSON Schema cannot state: a request that breaks one is refused with a 422.
END_RULE = "Must be after starts_at, and at most 31 days after it (otherwise 422)"
CLOSE_RULE = "Must be after signup_opens_at, and not after ends_at (otherwise 422)"


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
    timezone: Zone = "UTC"
    venue: str = Field("", max_length=300)
    join_url: Url = Field("", description="Private: shown only to confirmed registrants and speakers.")
    capacity: int | None = Field(None, ge=0, le=1_000_000, description="null: unlimited")
    signup_opens_at: Moment | None = None
    signup_closes_at: Moment | None = Field(None, description=CLOSE_RULE)
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
    door_offset: DoorOffset = 15 * 60


class EventCreate(EventFields):
    """A new event (a draft until published)."""

    title: Annotated[Line, Field(max_length=200, min_length=1)]
    starts_at: Moment
    ends_at: Annotated[Moment, Field(description=END_RULE)]


class EventUpdate(Strict):
    """Only the fields sent change; null clears capacity and the signup window, and is refused elsewhere.

    The rules between fields hold for the event as changed: a field left out keeps its stored value.
    """

    title: Annotated[Line, Field(max_length=200, min_length=1)] = None
    slug: str = Field(None, max_length=120, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    summary: str = Field(None, max_length=500)
    description: str = Field(None, max_length=50_000)
    kind: Kind = None
    starts_at: Moment = None
    ends_at: Annotated[Moment, Field(description=END_RULE)] = None
    timezone: Zone = None
    venue: str = Field(None, max_length=300)
    join_url: Url = None
    capacity: int | None = Field(None, ge=0, le=1_000_000)
    signup_opens_at: Moment | None = None
    signup_closes_at: Moment | None = Field(None, description=CLOSE_RULE)
    tags: list[Annotated[str, Field(max_length=120)]] = Field(None, max_length=20)
    reminder_offsets: list[Offset] = Field(None, max_length=10)
    double_opt_in: bool = None
    briefing_enabled: bool = None
    briefing_offset: SpeakerOffset = None
    nudge_enabled: bool = None
    nudge_offset: SpeakerOffset = None
    thanks_enabled: bool = None
    thanks_offset: SpeakerOffset = None
    door_offset: DoorOffset = None


class CancelRequest(Strict):
    reason: str = Field("", max_length=500)


class SpeakerAdd(Strict):
    """Link an existing speaker (speaker_id) or a new person (name, ...) with a role: one of the two is required."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["speaker_id"], "properties": {"speaker_id": {"type": "integer"}}},
        {"required": ["name"], "properties": {"name": {"type": "string"}}},
    ]})

    speaker_id: int | None = Field(None, ge=1, le=MAX_ID, description="A speaker of any event; a speaker_id that "
                                   "names no speaker is refused with a 422")
    name: Annotated[Line, Field(min_length=1, max_length=200)] | None = None
    email: Annotated[str, Field(max_length=320, description=f"Empty, or: {EMAIL_RULE}", json_schema_extra={
        "anyOf": [{"maxLength": 0}, {"format": "idn-email"}]}), AfterValidator(_email)] = ""
    affiliation: str = Field("", max_length=200)
    bio: str = Field("", max_length=5000)
    photo_url: Url = ""
    role: Role = "speaker"

    @model_validator(mode="after")
    def _someone(self):
        if self.speaker_id is None and self.name is None:
            raise ValueError("Give a speaker_id or a name.")
        return self


class RegistrationCreate(Strict):
    """Register someone, with the same rules as the public form."""

    name: Annotated[Line, Field(min_length=1, max_length=200)]
    email: Annotated[Email, Field(min_length=3)]
    question: str = Field("", max_length=2000)
    timezone: Annotated[str, AfterValidator(_zone_or_empty), Field(
        description="IANA zone; the event's when empty or absent",
        json_schema_extra=_zone_or_empty_enum)] | None = None


class MergeRequest(Strict):
    """Fold a duplicate into another question of the same board."""

    into: int = Field(ge=1, le=MAX_ID, description="The question kept: another question of this board that was not "
                                                      "itself merged (otherwise 422)")


class EventQuery(Strict):
    """Filters of the event list."""

    model_config = ConfigDict(extra="forbid")

    tag: str | None = Field(None, max_length=120, description="Tag (series) slug or name")
    from_: Moment | None = Field(None, alias="from", description="Events that end at or after this time "
                                                                  "(default: now, i.e. upcoming)")
    to: Moment | None = Field(None, description="Events that start before this time")
    limit: int = Field(20, ge=1, le=100)
    cursor: Annotated[str, _cursor(EVENT_CURSOR_PATTERN), Field(
        max_length=41, json_schema_extra={"pattern": EVENT_CURSOR_PATTERN},
        description="next_cursor of the previous page")] | None = None


class PageQuery(Strict):
    """A page of a list."""

    limit: int = Field(100, ge=1, le=500)
    cursor: Annotated[str, _cursor(ID_CURSOR_PATTERN), Field(
        max_length=20, json_schema_extra={"pattern": ID_CURSOR_PATTERN},
        description="next_cursor of the previous page")] | None = None


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
    door_offset: int
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


class QuestionPublic(BaseModel):
    """A question on the board as anyone who may read it sees it: never the asker's address or registration."""

    id: int
    text: str
    name: str = Field(description='The name the asker chose to show, or "Anonymous"')
    votes: int
    state: Literal["visible", "answered"]
    pinned: bool = Field(description="Being answered now (one per board at most)")
    answered: bool
    answered_at: datetime | None
    created_at: datetime


class QuestionModerated(BaseModel):
    """A question as moderators see it: also those waiting for approval, hidden or merged into another."""

    id: int
    text: str
    name: str = Field(description='The name the asker chose to show, or "Anonymous"')
    votes: int
    state: Literal[QUESTION_STATES]
    pinned: bool
    answered: bool
    answered_at: datetime | None
    created_at: datetime
    merged_into: int | None = Field(description="The question this duplicate was merged into (it is then hidden)")


class BoardFields(BaseModel):
    event: str = Field(description="The event's slug")
    mode: Literal[BOARD_MODES] = Field(description="open: questions appear at once; moderated: they wait for approval")
    readable_by_visitors: bool = Field(description="Whether people who are not registered may read the board")
    open: bool = Field(description="Whether questions, votes and moderation are taken now")
    closed_reason: str | None = Field(description="Why the board is closed (before publication, after the end)")


class BoardPublic(BoardFields):
    """The questions on the board as it shows them: the pinned one, the open ones (most votes first, then the
    earliest asked), the answered ones."""

    questions: list[QuestionPublic]


class BoardModerated(BoardFields):
    """Every question of the board: as visitors see them, then those waiting for approval, then those hidden
    or merged."""

    questions: list[QuestionModerated]


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: dict[str, list[str]]


class Error(BaseModel):
    error: ErrorBody


# --- announcements and after the event (api_follow_ups.py) ----------------------------------------

class AnnouncementCreate(Strict):
    """A message to an event's registrants, sent at once through the outbox (one message per person)."""

    subject: Line = Field(max_length=200, description="One line; control characters are removed")
    body: str = Field(min_length=1, max_length=20_000, json_schema_extra={"pattern": NON_BLANK},
                      description="Markdown, rendered and sanitised in the HTML part")
    audience: Literal["confirmed", "waitlisted", "all"] = Field(
        description="confirmed registrants, the waitlist, or both; people who turned reminders off are left out")


class AnnouncementOut(BaseModel):
    id: int
    event: str = Field(description="The event's slug")
    subject: str
    body: str
    audience: Literal["confirmed", "waitlisted", "all"]
    recipients: int = Field(description="How many messages were queued")
    created_at: datetime


class AnnouncementList(BaseModel):
    announcements: list[AnnouncementOut]


class RecordingSet(Strict):
    """The recording of a published event: the first one given plans the follow-up mail (at the end, or at
    once if the event is over); a later one corrects the link that mail carries."""

    recording_url: Annotated[str, Field(min_length=1, max_length=500, json_schema_extra={"pattern": URL_PATTERN},
                                        description="http:// or https:// link"), AfterValidator(_http_url)]
    recording_summary: str = Field("", max_length=5000, description="Optional; Markdown")


class FollowUpOut(BaseModel):
    """After the event: the recording, attendance through the door, feedback and the board's figures."""

    event: str = Field(description="The event's slug")
    recording_url: str
    recording_summary: str
    follow_up_state: str | None = Field(description="The follow-up job's state (planned, done, ...), None before a "
                                                    "recording is given")
    attended: int = Field(description="Registrants who came through their door")
    missed: int = Field(description="Confirmed registrants who never came through their door")
    attendance_rate: float | None = Field(description="attended / (attended + missed), 0 to 1")
    feedback_count: int
    feedback_average: float | None = Field(description="Average rating, 1 to 5")
    questions_asked: int
    questions_answered: int
    votes: int
