"""Schemathesis against the served OpenAPI document, with every check: each operation alone (examples,
coverage and fuzzing phases) and in workflows that follow the document's links (the stateful phase).

The runs are deterministic (a fixed seed, derandomized Hypothesis, no example database) and the app's
clock stands still (conftest's `now`), so the same requests go out on every run.
"""

from __future__ import annotations

import re
import zlib
from datetime import datetime, timedelta

import pytest
import schemathesis
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from sqlalchemy import select

from scheduler.domain import api_tokens, signups
from scheduler.domain.events import MAX_DURATION, SLUG_RE
from scheduler.extensions import db
from scheduler.models import MAX_ID, Event, Speaker
from scheduler.web.api import document  # importing the API records its operations
from scheduler.web.api_schemas import MOMENT_PATTERN
from tests.support import empty_tables

#: Generated cases per operation in the fuzzing phase (the coverage phase adds its own boundary cases).
EXAMPLES = 15
#: Workflows in the stateful phase, and the most steps each takes.
WORKFLOWS, STEPS = 30, 10
SEED = 17
#: Every check schemathesis has, by name (object_level_authorization needs a second identity: it has none
#: to compare here and passes).
CHECKS = [getattr(checks, name) for name in (
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "response_headers_conformance", "positive_data_acceptance", "negative_data_rejection", "missing_required_header",
    "unsupported_method", "allow_header_conformance", "ignored_auth", "use_after_free", "ensure_resource_availability",
    "object_level_authorization",
)]
pytestmark = pytest.mark.timeout(240)

TIMES = ("starts_at", "ends_at", "signup_opens_at", "signup_closes_at")
HOUR = timedelta(hours=1)
#: Starts whose hour after them can be written (in UTC) inside the years the document allows.
SAFE_STARTS = (datetime.fromisoformat("1971-01-02T00:00:00Z"), datetime.fromisoformat("8999-12-30T00:00:00Z"))


def seed_events(app, create_event, now) -> dict:
    """Events in every state, with speakers and registrants; what the tests aim at."""
    full = create_event(title="Full house", capacity=1, tags=["PyTorch"], speakers=[("Ada Lovelace", "host")])
    open_event = create_event(title="Open talk", tags=["Linux Foundation"])
    draft = create_event(title="Still a draft", publish=False)
    for n, event in enumerate((full, full)):  # one confirmed, one waiting
        signups.sign_up(db.session, event, name=f"Person {n}", email=f"person{n}@attendees.example.org", now=now,
                        secret=app.config["SECRET_KEY"])
    db.session.commit()  # and hold no transaction while the requests run
    return {"slugs": [full.slug, open_event.slug, draft.slug], "speaker_id": full.speakers[0].speaker_id,
            "start": now + timedelta(days=7)}


def forget_events() -> None:
    """Empty every table but the accounts and their tokens; ids count from 1 again."""
    empty_tables(keep=("users", "api_tokens"))


@pytest.fixture
def seeded(app, create_event, now):
    """The seeded events and a write token."""
    _row, token = api_tokens.create_token(db.session, name="fuzz", scope="write", now=now)
    return {"token": token, **seed_events(app, create_event, now)}


def _config(**extra) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"deterministic": True, "database": "none", "max-examples": EXAMPLES},
        # Through WSGI nothing decodes gzip (requests would), and the checks read the body as sent.
        "headers": {"Accept-Encoding": "identity"},
        "phases": {
            # Boundary cases of what the document refuses, and the methods and headers it does not list; the
            # positive ones would walk every timezone name, and fuzzing and the workflows send valid data.
            "coverage": {"generation": {"mode": "negative"}},
            # Only the document's own links: inferred ones would guess at what the document states.
            "stateful": {"max-steps": STEPS, "inference": {"algorithms": []}},
        },
        **extra,
    })


# --- the rules the document states in words --------------------------------------------------------

def _moment(value) -> datetime | None:
    if isinstance(value, str) and re.fullmatch(MOMENT_PATTERN, value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _event_times(body: dict, *, partial: bool, fallback: datetime) -> None:
    """Times that keep the rules between fields: an end after the start and at most 31 days later, a
    signup window that closes after it opens and by the end. On a change (`partial`), fields left out keep
    stored values the generated ones may break, so the times taking part are all sent."""
    parsed = {}
    for name in TIMES:
        if name in body:
            if body[name] is None and name.startswith("signup_"):
                parsed[name] = None
            elif (moment := _moment(body[name])) is None:
                return  # a value the document refuses: a negative case, left as it is
            else:
                parsed[name] = moment
    if not ({"starts_at", "ends_at"} <= parsed.keys() if not partial else parsed):
        return
    starts, ends = parsed.get("starts_at"), parsed.get("ends_at")
    opens, closes = parsed.get("signup_opens_at"), parsed.get("signup_closes_at")
    if any(moment is not None for moment in (starts, ends, closes)):
        if starts is None:
            starts = ends - HOUR if ends else closes
        if not SAFE_STARTS[0] <= starts <= SAFE_STARTS[1]:
            starts = fallback
        if ends is None or not starts < ends <= starts + MAX_DURATION:
            ends = starts + HOUR
        if closes is not None and closes > ends:
            closes = ends
        if closes is not None and opens is not None and closes <= opens:
            opens = None
        wanted = {"starts_at": starts, "ends_at": ends}
        if closes is not None or "signup_closes_at" in body or partial:
            wanted["signup_closes_at"] = closes
        if opens is not None or "signup_opens_at" in body or (partial and closes is not None):
            wanted["signup_opens_at"] = opens
        for name, value in wanted.items():
            if name not in parsed or parsed[name] != value:
                body[name] = None if value is None else value.isoformat()
    elif opens is not None and "signup_closes_at" not in body:
        body["signup_closes_at"] = None


def _deliverable(email: str) -> str:
    """The address, or the same local part at a domain mail can reach when only its domain is refused
    (schemathesis draws domains like x.test, which `format: idn-email` allows and the rule does not)."""
    local = email.rpartition("@")[0]
    for address in (email, f"{local}@example.org"):
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError:
            continue
        return address
    return email


def keep_documented_rules(case, seeded) -> None:
    """Bend generated data to the rules the document states in words, as a client reading it would:
    JSON Schema cannot state them, and the server refuses data that breaks them with a 422.

    The body is replaced, not edited in place, so that schemathesis judges the request as sent (an edit
    may make a negative case valid)."""
    method, path = case.method.upper(), case.operation.path
    if not isinstance(case.body, dict):
        return
    body = dict(case.body)
    if (method, path) in (("POST", "/api/v1/events"), ("PATCH", "/api/v1/events/{slug}")):
        _event_times(body, partial=method == "PATCH", fallback=seeded["start"])
    if method == "PATCH" and isinstance(body.get("slug"), str) and isinstance(case.path_parameters.get("slug"), str):
        # A new slug moves the event: links holding the old one would then find nothing, which
        # ensure_resource_availability reads as a lost resource. test_api.py covers renaming.
        body["slug"] = case.path_parameters["slug"]
    if isinstance(body.get("email"), str) and "@" in body["email"]:
        body["email"] = _deliverable(body["email"])
    if (method, path) == ("POST", "/api/v1/events/{slug}/speakers") and _an_id(body.get("speaker_id")):
        if db.session.get(Speaker, int(body["speaker_id"])) is None:
            body["speaker_id"] = seeded["speaker_id"]  # "a speaker_id that names no speaker is refused"
        db.session.rollback()  # hold no read transaction while the request writes
    if body != case.body:
        case.body = body


def _an_id(value) -> bool:
    """An id the document allows (JSON Schema's integer: 24.0 is one)."""
    return type(value) in (int, float) and 0 <= value <= MAX_ID and float(value).is_integer()


def aim_at_seeded_events(case, seeded) -> None:
    """Three in four valid slugs that name no event become a real event's (a full one, an open one, a
    draft), so that cases reach the rules; a hash of the drawn slug picks them, as coverage cases are fixed
    and draw nothing more. Slugs that name an event (from a link, say) stay."""
    slug = case.path_parameters.get("slug")
    if not (isinstance(slug, str) and len(slug) <= 120 and SLUG_RE.fullmatch(slug) and zlib.crc32(slug.encode()) % 4):
        return
    known = db.session.scalar(select(Event.id).where(Event.slug == slug)) is not None
    db.session.rollback()
    if known:
        return
    aimed = {**case.path_parameters, "slug": seeded["slugs"][zlib.crc32(slug.encode()) % 3]}
    if _an_id(case.path_parameters.get("speaker_id")):
        aimed["speaker_id"] = seeded["speaker_id"]
    case.path_parameters = aimed


# --- each operation alone ------------------------------------------------------------------------------

def townhall(environ, start_response):
    """The running test's app (its `app` fixture holds an app context), as a WSGI application."""
    return current_app(environ, start_response)


# The pytest plugin makes one test per operation at collection, so it reads the document as api_doc writes
# it (test_api_serves_the_document_it_writes checks the app serves the same), and sends to `townhall`.
schema = schemathesis.openapi.from_dict(document(), config=_config())
schema.app = townhall


def test_api_serves_the_document_it_writes(client):
    assert client.get("/api/v1/openapi.json").get_json() == document()


@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck))  # `app` and `seeded` serve every example, on purpose
def test_api_operation_conforms_to_its_document(case, app, seeded):
    aim_at_seeded_events(case, seeded)
    keep_documented_rules(case, seeded)
    case.call_and_validate(headers={"Authorization": f"Bearer {seeded['token']}"}, checks=CHECKS)


# --- linked workflows ----------------------------------------------------------------------------------

def test_api_workflows_conform_to_the_document(app, create_event, now, seeded):
    served = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=_config(
        auth={"openapi": {"bearer": {"bearer": seeded["token"]}}}))

    class Workflow(served.as_state_machine()):
        def setup(self):
            # Each workflow starts from the same rows: Hypothesis replays the start of a workflow and
            # expects the same answers (which links can be followed), as the derandomized run needs too.
            forget_events()
            assert seed_events(app, create_event, now) == {k: v for k, v in seeded.items() if k != "token"}

        def before_call(self, case):
            aim_at_seeded_events(case, seeded)
            keep_documented_rules(case, seeded)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None, recorder=self.recorder)

    Workflow.run(settings=settings(max_examples=WORKFLOWS, stateful_step_count=STEPS, derandomize=True,
                                   database=None, deadline=None, phases=[Phase.generate],
                                   suppress_health_check=list(HealthCheck)))
