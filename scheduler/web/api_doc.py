"""The OpenAPI 3.1 document, written from the API's operation records and its pydantic payload models."""

from __future__ import annotations

import re
from functools import cache

from pydantic.json_schema import models_json_schema

from ..domain.events import SLUG_RE
from . import api_schemas as s
from .api_registry import OPERATIONS, Operation

REF = "#/components/schemas/{model}"
STATUS_TEXT = {
    200: "OK", 201: "Created", 204: "No content", 400: "Malformed request (JSON, query or cursor)",
    401: "No token, an unknown one or a revoked one",
    403: "The token's scope does not allow this (or the board is for registrants only)",
    404: "No such event (or speaker link, or question on its board)",
    409: "Conflicts with the event's state (slug taken, closed, cancelled; the board closed, the question's state)",
    413: "Body too large",
    422: "Some fields are not valid (error.fields names them): against this document, or against a rule between "
         "fields that JSON Schema cannot state and the fields' descriptions do (ends_at after starts_at, ...), "
         "or a speaker_id that names no speaker",
}
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _drop_null_defaults(node):
    """A field that may be absent but not null: keep `default: null` out of its schema."""
    if isinstance(node, dict):
        if node.get("default", 0) is None and "type" in node and node["type"] != "null":
            node = {k: v for k, v in node.items() if k != "default"}
        return {k: _drop_null_defaults(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_drop_null_defaults(v) for v in node]
    return node


def _not_null(schema: dict) -> dict:
    """Query strings cannot carry null: keep only the non-null alternative."""
    options = [o for o in schema.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        schema = {**{k: v for k, v in schema.items() if k not in ("anyOf", "default")}, **options[0]}
    return schema


def _path(op: Operation) -> tuple[str, list[dict]]:
    parameters = []
    for converter, name in _CONVERTER.findall(op.rule):
        if converter == "int":
            schema = {"type": "integer", "minimum": 0, "maximum": s.MAX_ID}
        else:  # a slug: anything else names no event (404)
            schema = {"type": "string", "minLength": 1, "maxLength": 120, "pattern": SLUG_RE.pattern}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return "/api/v1" + _CONVERTER.sub(r"{\2}", op.rule), parameters


def _links(op: Operation, by_endpoint: dict[str, Operation]) -> dict[int, dict]:
    """The operation's links by status, each named after its target and checked against the target's inputs."""
    links: dict[int, dict] = {}
    for status, follows in op.links.items():
        for link in follows:
            target = by_endpoint[link.endpoint]
            taken = {name for _converter, name in _CONVERTER.findall(target.rule)}
            if status not in op.responses or set(link.parameters) != taken or (
                    link.body is not None and not (target.body and set(link.body) <= set(target.body.model_fields))):
                raise ValueError(f"{op.endpoint} {status} -> {link.endpoint}: not what either of them says")
            entry = {"operationId": link.endpoint, "parameters": dict(link.parameters)}
            if link.body is not None:
                entry["requestBody"] = dict(link.body)
            name = link.endpoint if link.body is None else f"{link.endpoint}_again"
            links.setdefault(status, {})[name] = entry
    return links


def _query(model) -> list[dict]:
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
            for name, prop in schema["properties"].items()]


@cache
def document() -> dict:
    if not OPERATIONS:
        raise RuntimeError("No API operations recorded yet: import scheduler.web.api first.")
    inputs = {op.body for op in OPERATIONS if op.body}
    outputs = {m for op in OPERATIONS for m in op.responses.values() if m} | {s.Error}
    refs, defs = models_json_schema([(m, "validation") for m in inputs] + [(m, "serialization") for m in outputs],
                                    ref_template=REF)
    error = {"description": "", "content": {"application/json": {"schema": refs[(s.Error, "serialization")]}}}
    paths: dict[str, dict] = {}
    by_endpoint = {op.endpoint: op for op in OPERATIONS}
    for op in OPERATIONS:
        path, parameters = _path(op)
        if op.query is not None:
            parameters += _query(op.query)
        responses = {}
        for status, model in op.responses.items():
            responses[str(status)] = {"description": STATUS_TEXT[status]}
            if model is not None:
                responses[str(status)]["content"] = {
                    "application/json": {"schema": refs[(model, "serialization")]}}
        for status, links in _links(op, by_endpoint).items():
            responses[str(status)]["links"] = links
        for status in op.errors:
            responses[str(status)] = {**error, "description": STATUS_TEXT[status]}
        entry = {"operationId": op.endpoint, "summary": op.summary, "tags": [op.tag], "responses": responses,
                 "security": [{"bearer": []}] if op.scope else []}
        if op.scope:
            entry["description"] = f"Needs a {op.scope} token (or an organiser's session with a CSRF token)."
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {"required": op.body_required, "content": {
                "application/json": {"schema": refs[(op.body, "validation")]}}}
        paths.setdefault(path, {})[op.method.lower()] = entry
    paths["/api/v1/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "This document", "tags": ["meta"], "security": [],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}},
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Townhall API", "version": "1.0.0",
                 "description": "Public reads of events and question boards; organiser operations and board "
                                "moderation with bearer tokens. Errors are "
                                "always {\"error\": {\"code\", \"message\", \"fields\"}}."},
        "paths": paths,
        "components": {
            "schemas": _drop_null_defaults(defs.get("$defs", {})),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token from the admin's API tokens page or "
                                                          "`flask api-token create`."}},
        },
    }
