"""The JSON API: public reads of events, and organiser operations with bearer tokens.

Every operation is declared with `@operation(...)` (api_registry.py), which records what it takes and
returns; this module routes the records behind their scope, and the OpenAPI document (api_doc.py) is
written from the same records and the payload models. Writes run in one unit of work each.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request
from flask_babel import gettext
from flask_login import current_user
from pydantic import BaseModel
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from .. import clock
from ..domain import api_tokens, queries, seats, signups
from ..domain import events as event_rules
from ..errors import DomainError, EventNotOpen, InvalidInput, NotFound
from ..extensions import csrf, db
from ..models import ApiToken, Event, Registration, Speaker, Tag
from ..services import unit_of_work
from ..text import render_markdown, slugify
from ..timefmt import current_locale
from ..urls import event_url, external_url
from . import api_schemas as s
from .api_doc import document
from .api_input import ApiError, parse_body, parse_query
from .api_input import find_event as _event
from .api_registry import OPERATIONS, Link, Operation, operation
from .refusals import json_error, refusal_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Bearer-token requests carry no ambient credential, so they need no CSRF token; session-cookie
# requests do (see csrf_for_sessions).
csrf.exempt(bp)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TOUCH_EVERY = timedelta(minutes=1)


# --- errors ---------------------------------------------------------------------------------------

@bp.errorhandler(ApiError)
def api_error(exc: ApiError):
    response = json_error(exc.status, exc.code, gettext(exc.message), exc.fields)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="townhall"'
    return response


@bp.errorhandler(DomainError)
def domain_error(exc: DomainError):
    return refusal_json(exc)  # a write raises it in its unit of work, which has rolled back


@bp.errorhandler(IntegrityError)
def raced(_exc: IntegrityError):
    # A concurrent request took the same slug or tag between our check and our insert.
    return json_error(409, "conflict", gettext("That conflicts with a change made at the same moment; try again."))


# --- auth -----------------------------------------------------------------------------------------

def _bearer() -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


@bp.before_request
def csrf_for_sessions():
    """A logged-in organiser's browser may write through the API, but only with a CSRF token."""
    if request.method not in SAFE_METHODS and _bearer() is None and current_user.is_authenticated:
        csrf.protect()


def authenticate(scope: str) -> None:
    """Let the request through with a live token of enough scope, or an organiser's session."""
    if request.headers.get("Authorization"):
        token = _bearer()
        if not token:
            raise ApiError(401, "unauthorized", "Send the token as: Authorization: Bearer <token>.")
        row = api_tokens.find_active(db.session, token)
        if row is None:
            raise ApiError(401, "invalid_token", "This token is unknown or has been revoked.")
        if scope == "write" and row.scope != "write":
            raise ApiError(403, "insufficient_scope", "This token can only read; this needs a write token.")
        _touch(row)
        g.api_token = row
    elif not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "This needs an API token: Authorization: Bearer <token>.")


def _touch(row: ApiToken) -> None:
    now = clock.now()
    if row.last_used_at is not None and now - row.last_used_at < TOUCH_EVERY:
        return
    if request.method not in SAFE_METHODS:
        row.last_used_at = now  # committed with the change, or rolled back with it
        return
    # A read holds no write lock: note the use on a connection of its own, best effort, never waiting
    # long behind a writer (a read must not fail or stall for a bookkeeping column).
    try:
        with db.engine.connect() as conn:
            _lock_wait(conn, short=True)
            try:
                conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
                conn.commit()
            finally:
                conn.rollback()
                _lock_wait(conn, short=False)
    except OperationalError:
        current_app.logger.info("API token %s: last use not recorded (database busy)", row.id)


def _lock_wait(conn, *, short: bool) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA busy_timeout={200 if short else 30000}")
    else:
        conn.exec_driver_sql("SET lock_timeout = '200ms'" if short else "SET lock_timeout = 0")
    conn.commit()


# --- input ----------------------------------------------------------------------------------------

def _event_cursor(event: Event) -> str:
    """The position after `event` in the list's order (start, id), as EVENT_CURSOR_PATTERN spells it."""
    return f"{(event.starts_at - s.EPOCH) // timedelta(microseconds=1)}_{event.id}"


def _after_event(cursor: str) -> tuple[datetime, int] | None:
    """The (start, id) a cursor names; None when it lies past any time an event can have.

    Any cursor of the documented form is a position, so none is refused: one beyond the last event
    gives an empty page.
    """
    micros, last_id = (int(part) for part in cursor.split("_"))
    try:
        return s.EPOCH + timedelta(microseconds=micros), min(last_id, s.MAX_ID)
    except OverflowError:
        return None


# --- output ---------------------------------------------------------------------------------------

def _signup_open(event: Event, now: datetime) -> bool:
    try:
        signups.check_open(event, now=now)
    except DomainError:
        return False
    return True


def public_event(event: Event, now: datetime) -> dict:
    """Public fields only: never the join URL, never attendee or speaker contact data."""
    return s.EventPublic(
        slug=event.slug, title=event.title, summary=event.summary, description=event.description,
        description_html=render_markdown(event.description), kind=event.kind, status=event.status,
        starts_at=event.starts_at, ends_at=event.ends_at, timezone=event.timezone, venue=event.venue,
        online=bool(event.join_url), capacity=event.capacity,
        seats_left=seats.seats_left(event),
        signup_open=_signup_open(event, now), tags=[s.TagOut(slug=t.slug, name=t.name) for t in event.tags],
        speakers=[s.SpeakerOut(name=link.speaker.name, affiliation=link.speaker.affiliation, bio=link.speaker.bio,
                               photo_url=link.speaker.photo_url, role=link.role) for link in event.speakers],
        url=event_url(event),
    ).model_dump(mode="json")


def private_event(event: Event) -> dict:
    counts = queries.counts(db.session, [event.id])[event.id]
    return s.EventPrivate(
        **{name: getattr(event, name) for name in s.EventPrivate.model_fields
           if name not in ("tags", "speakers", "counts", "url")},
        tags=[s.TagOut(slug=t.slug, name=t.name) for t in event.tags],
        speakers=[s.SpeakerPrivate(id=link.speaker.id, name=link.speaker.name, email=link.speaker.email,
                                   affiliation=link.speaker.affiliation, bio=link.speaker.bio,
                                   photo_url=link.speaker.photo_url, role=link.role) for link in event.speakers],
        counts={state: counts.get(state, 0) for state in s.State.__args__},
        url=event_url(event),
    ).model_dump(mode="json")


def registration_out(registration: Registration, position: int | None) -> s.RegistrationOut:
    return s.RegistrationOut(
        id=registration.id, name=registration.name, email=registration.email, state=registration.state,
        waitlist_position=position, question=registration.question, timezone=registration.timezone,
        created_at=registration.created_at, confirmed_at=registration.confirmed_at,
        cancelled_at=registration.cancelled_at,
    )


def _saved(event: Event, status: int = 200):
    """The organiser's view of an event just committed, read again as the database has it."""
    db.session.refresh(event)
    response = jsonify(private_event(event))
    response.status_code = status
    if status == 201:
        response.headers["Location"] = external_url("api.event", slug=event.slug)
    return response


def _hold_hours() -> float:
    return float(current_app.config["HOLD_EXPIRY_HOURS"])


def _event_fields(data: BaseModel, names) -> dict:
    fields = {name: getattr(data, name) for name in names if name != "tags"}
    if fields.get("reminder_offsets") is not None:
        fields["reminder_offsets"] = sorted(set(fields["reminder_offsets"]), reverse=True)
    return fields


# --- links between operations ---------------------------------------------------------------------

def _on(slug: str, *endpoints: str) -> tuple[Link, ...]:
    """Links to operations on the event whose slug the expression `slug` reads."""
    return tuple(Link(endpoint, {"slug": slug}) for endpoint in endpoints)


#: Organisers' operations on an event they have just seen, each reached by the event's slug.
ORGANISE = ("event_update", "event_publish", "event_cancel", "speaker_add", "registrations", "registration_create")
SAME_EVENT = "$request.path.slug"
ANSWERED_EVENT = "$response.body#/slug"


# --- public ---------------------------------------------------------------------------------------

@operation("GET", "/events", summary="Upcoming public events, soonest first", ok={200: s.EventList},
           query=s.EventQuery, links={200: _on("$response.body#/events/0/slug", "event", *ORGANISE)})
def events():
    query = parse_query(s.EventQuery)
    now = clock.now()
    statement = select(Event).where(Event.status.in_(("published", "cancelled")),
                                    Event.ends_at >= (query.from_ or now))
    if query.to is not None:
        statement = statement.where(Event.starts_at < query.to)
    if query.tag:
        statement = statement.where(Event.tags.any(Tag.slug == slugify(query.tag)))
    if query.cursor:
        after = _after_event(query.cursor)
        if after is None:
            return jsonify(events=[], next_cursor=None)
        starts, last_id = after
        statement = statement.where(or_(Event.starts_at > starts, and_(Event.starts_at == starts, Event.id > last_id)))
    found = list(db.session.scalars(statement.order_by(Event.starts_at, Event.id).limit(query.limit + 1)))
    page = found[:query.limit]
    next_cursor = _event_cursor(page[-1]) if len(found) > query.limit else None
    return jsonify(events=[public_event(e, now) for e in page], next_cursor=next_cursor)


@operation("GET", "/events/<slug>", summary="One public event", ok={200: s.EventPublic}, errors=(404,),
           links={200: _on(ANSWERED_EVENT, *ORGANISE)})
def event(slug: str):
    found = _event(slug)
    if found.status == "draft":
        raise NotFound("No event with that slug.")
    return jsonify(public_event(found, clock.now()))


# --- organisers -----------------------------------------------------------------------------------
# Each write reads its input and its event inside its unit of work, so that a refusal of any kind
# also rolls back the token's last use noted on the way in.

@operation("POST", "/events", summary="Create a draft event", ok={201: s.EventPrivate}, scope="write",
           body=s.EventCreate, errors=(409,), links={201: _on(ANSWERED_EVENT, *ORGANISE)})
def event_create():
    with unit_of_work() as uow:
        data = parse_body(s.EventCreate)
        created = event_rules.create_event(uow.session, now=uow.now, tags=data.tags,
                                           **_event_fields(data, s.EventCreate.model_fields))
    return _saved(created, 201)


@operation("PATCH", "/events/<slug>", summary="Change an event; people are told when time or place change",
           ok={200: s.EventPrivate}, scope="write", body=s.EventUpdate, errors=(404, 409),
           links={200: _on(ANSWERED_EVENT, *ORGANISE)})
def event_update(slug: str):
    with unit_of_work() as uow:
        found = _event(slug)
        data = parse_body(s.EventUpdate)
        tags = data.tags if "tags" in data.model_fields_set else None
        event_rules.update_event(uow.session, found, now=uow.now, tags=tags, hold_hours=_hold_hours(),
                                 **_event_fields(data, data.model_fields_set))
    return _saved(found)


@operation("POST", "/events/<slug>/publish", summary="Publish a draft (plans reminders and speaker jobs)",
           ok={200: s.EventPrivate}, scope="write", errors=(404, 409),
           links={200: _on(ANSWERED_EVENT, "event", *ORGANISE)})
def event_publish(slug: str):
    with unit_of_work() as uow:
        found = _event(slug)
        event_rules.publish_event(uow.session, found, now=uow.now)
    return _saved(found)


@operation("POST", "/events/<slug>/cancel", summary="Cancel an event: everyone is told, pending jobs removed",
           ok={200: s.EventPrivate}, scope="write", body=s.CancelRequest, body_required=False, errors=(404,),
           links={200: _on(ANSWERED_EVENT, "event", *ORGANISE)})
def event_cancel(slug: str):
    with unit_of_work() as uow:
        found = _event(slug)
        data = parse_body(s.CancelRequest, required=False)
        event_rules.cancel_event(uow.session, found, now=uow.now, reason=data.reason)
    return _saved(found)


@operation("POST", "/events/<slug>/speakers", summary="Add a speaker (existing by id, or a new person)",
           ok={201: s.EventPrivate}, scope="write", body=s.SpeakerAdd, errors=(404,),
           links={201: (Link("speaker_remove", {"slug": SAME_EVENT, "speaker_id": "$response.body#/speakers/0/id"}),
                        Link("speaker_add", {"slug": SAME_EVENT},
                             body={"speaker_id": "$response.body#/speakers/0/id"}))})
def speaker_add(slug: str):
    with unit_of_work() as uow:
        found = _event(slug)
        data = parse_body(s.SpeakerAdd)
        if data.speaker_id is not None:
            speaker = uow.session.get(Speaker, data.speaker_id)
            if speaker is None:
                raise InvalidInput("No speaker with that id.", field="speaker_id")
        else:
            speaker = event_rules.create_speaker(uow.session, now=uow.now, **data.model_dump(
                include={"name", "email", "affiliation", "bio", "photo_url"}))
        event_rules.add_speaker(uow.session, found, speaker, role=data.role, now=uow.now)
    return _saved(found, 201)


@operation("DELETE", "/events/<slug>/speakers/<int:speaker_id>", summary="Remove a speaker from an event",
           ok={204: None}, scope="write", errors=(404,))
def speaker_remove(slug: str, speaker_id: int):
    with unit_of_work() as uow:
        found = _event(slug)
        if not any(link.speaker_id == speaker_id for link in found.speakers):
            raise NotFound("That person does not speak at this event.")
        event_rules.remove_speaker(uow.session, found, speaker_id, now=uow.now)
    return "", 204


@operation("GET", "/events/<slug>/registrations", summary="Registrations of an event, oldest first",
           ok={200: s.RegistrationList}, scope="read", query=s.PageQuery, errors=(404,), tag="registrations")
def registrations(slug: str):
    found = _event(slug)
    query = parse_query(s.PageQuery)
    statement = select(Registration).where(Registration.event_id == found.id)
    if query.cursor:
        statement = statement.where(Registration.id > min(int(query.cursor), s.MAX_ID))
    rows = list(db.session.scalars(statement.order_by(Registration.id).limit(query.limit + 1)))
    page = rows[:query.limit]
    waiting = db.session.scalars(
        select(Registration.id).where(Registration.event_id == found.id, Registration.state == "waitlisted")
        .order_by(Registration.waitlist_seq, Registration.id)
    ).all()
    positions = {registration_id: n for n, registration_id in enumerate(waiting, start=1)}
    result = s.RegistrationList(
        registrations=[registration_out(r, positions.get(r.id)) for r in page],
        next_cursor=str(page[-1].id) if len(rows) > query.limit else None,
    )
    return jsonify(result.model_dump(mode="json"))


@operation("POST", "/events/<slug>/registrations",
           summary="Register someone: same rules as the form (capacity, waitlist, one seat per address)",
           ok={201: s.SignupOut, 200: s.SignupOut}, scope="write", body=s.RegistrationCreate, errors=(404, 409),
           tag="registrations", links={201: _on(SAME_EVENT, "registrations")})
def registration_create(slug: str):
    with unit_of_work() as uow:
        found = _event(slug)
        data = parse_body(s.RegistrationCreate)
        if found.status == "draft":
            raise EventNotOpen("This event is not published yet.")
        result = signups.sign_up(uow.session, found, name=data.name, email=data.email, question=data.question,
                                 timezone=data.timezone or "", now=uow.now, secret=current_app.config["SECRET_KEY"],
                                 hold_hours=_hold_hours(), language=current_locale())  # from Accept-Language
    registration = result.registration
    body = s.SignupOut(outcome=result.outcome,
                       registration=registration_out(registration, queries.waitlist_position(db.session, registration)))
    return jsonify(body.model_dump(mode="json")), (200 if result.outcome == "repeat" else 201)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document, written from the operations above and their payload models."""
    return jsonify(document())


# The board's operations (api_board.py) come after the events' in the routes and the document.
# So do announcements and the after-the-event operations (api_follow_ups.py).
from . import api_board, api_follow_ups, api_series  # noqa: E402, F401

# --- routes ---------------------------------------------------------------------------------------

def _scoped(op: Operation):
    """The operation's view, let through only with a token of its scope (or an organiser's session)."""

    @wraps(op.view)
    def run(**kwargs):
        if op.scope is not None:
            authenticate(op.scope)
        return op.view(**kwargs)

    return run


for _op in OPERATIONS:
    bp.add_url_rule(_op.rule, _op.endpoint, _scoped(_op), methods=[_op.method])
