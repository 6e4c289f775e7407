"""What every API operation reads the same way: its JSON body, its query, the event its path names, and ApiError."""

from __future__ import annotations

import json

from flask import request
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from ..domain import events as event_rules
from ..errors import NotFound
from ..extensions import db
from ..models import Event


class ApiError(Exception):
    """An error answered as {"error": {"code", "message", "fields"}} with its status."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}


def _fields(exc: ValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for item in exc.errors(include_url=False, include_input=False, include_context=False):
        name = ".".join(str(part) for part in item["loc"]) or "body"
        fields.setdefault(name, []).append(item["msg"])
    return fields


def _scrub(value):
    """NUL and lone surrogates cannot be stored by PostgreSQL or encoded: drop them before validation.

    A number without a fraction (12.0) is an integer, as JSON Schema reads it.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        value = value.replace("\x00", "")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def parse_body(model: type[BaseModel], *, required: bool = True):
    raw = request.get_data(cache=True)
    if not raw:
        if required:
            raise ApiError(400, "bad_request", "Send a JSON object as the request body.")
        raw = b"{}"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "The request body is not valid JSON.") from None
    try:
        # Strict JSON mode: 12 is a number and "12" is not, true is not 1; date-times are strings.
        return model.model_validate_json(json.dumps(_scrub(data)), strict=True)
    except ValidationError as exc:
        raise ApiError(422, "invalid", "Some fields are not valid.", _fields(exc)) from None


def parse_query(model: type[BaseModel]):
    data = {key: _scrub(value) for key, value in request.args.items()}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "bad_query", "Some query parameters are not valid.", _fields(exc)) from None


def find_event(slug: str) -> Event:
    """The event with this slug, whatever its status (organisers see drafts)."""
    event = None
    if event_rules.SLUG_RE.match(slug) and len(slug) <= 120:
        event = db.session.scalar(select(Event).where(Event.slug == slug))
    if event is None:
        raise NotFound("No event with that slug.")
    return event
