"""The payload models and the document they write say the same: what one refuses, the other refuses."""

from __future__ import annotations

import json
import re
import sys
from zoneinfo import available_timezones

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from scheduler.text import one_line
from scheduler.web import api_schemas as s
from scheduler.web.api import document

START, END = "2031-03-01T18:00:00+01:00", "2031-03-01T19:00:00+01:00"


def documented(model: type, instance) -> bool:
    """Whether the document's schema for `model` allows `instance`, formats included."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}", "components": document()["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).is_valid(instance)


def accepted(model: type, instance) -> bool:
    """Whether the server's model takes `instance` as a request body (strict JSON, as api.parse_body reads it)."""
    try:
        model.model_validate_json(json.dumps(instance), strict=True)
    except ValidationError:
        return False
    return True


def event(**fields) -> dict:
    return {"title": "A talk", "starts_at": START, "ends_at": END, **fields}


CASES = [
    # Dates: RFC 3339 with an offset, written in the years 1971 to 8999 (the UTC instant may lie just outside).
    (s.EventCreate, event(), True),
    (s.EventCreate, event(starts_at="1971-01-01T00:00:00+14:00"), True),
    (s.EventCreate, event(starts_at="1970-12-31T23:30:00-01:00"), False),
    (s.EventCreate, event(ends_at="8999-12-31T23:59:59.999999-23:59"), True),
    (s.EventCreate, event(ends_at="9000-01-01T00:00:00Z"), False),
    (s.EventCreate, event(starts_at="2031-03-01T18:00:00.5+23:59"), True),
    (s.EventCreate, event(starts_at="2031-03-01t18:00:00z"), False),
    (s.EventCreate, event(starts_at="2031-03-01 18:00:00Z"), False),
    (s.EventCreate, event(starts_at="2031-03-01T18:00:00"), False),
    (s.EventCreate, event(starts_at="2031-03-01T18:00:00.1234567Z"), False),
    (s.EventCreate, event(starts_at="2031-02-29T18:00:00Z"), False),
    (s.EventCreate, event(starts_at="2031-03-01T18:00:60Z"), False),
    (s.EventCreate, event(starts_at="1700000000"), False),
    # Timezones: the IANA names the server knows, exactly.
    (s.EventCreate, event(timezone="Europe/Berlin"), True),
    (s.EventCreate, event(timezone=" Europe/Berlin"), False),
    (s.EventCreate, event(timezone="europe/berlin"), False),
    (s.EventCreate, event(timezone="Mars/Olympus_Mons"), False),
    (s.EventCreate, event(timezone=""), False),
    (s.EventUpdate, {"timezone": "Asia/Kolkata"}, True),
    (s.EventUpdate, {"timezone": "Asia/Calcutta "}, False),
    (s.RegistrationCreate, {"name": "Ada", "email": "ada@example.org", "timezone": ""}, True),
    (s.RegistrationCreate, {"name": "Ada", "email": "ada@example.org", "timezone": None}, True),
    (s.RegistrationCreate, {"name": "Ada", "email": "ada@example.org", "timezone": "Mars/Olympus_Mons"}, False),
    # Names: one character that one_line() keeps.
    (s.EventCreate, event(title="\u2028\u00a0 \t"), False),
    (s.EventCreate, event(title="\u0081"), True),
    (s.EventUpdate, {"title": "\u202e"}, False),
    (s.RegistrationCreate, {"name": "\u3000", "email": "ada@example.org"}, False),
    # Links: http(s), nothing one_line() would remove.
    (s.EventCreate, event(join_url="https://meet.example.org/room"), True),
    (s.EventCreate, event(join_url="https://meet.example.org/\u202eroom"), False),
    (s.EventCreate, event(join_url="ftp://files.example.org"), False),
    # Speakers: an existing one by id, or a new person by name.
    (s.SpeakerAdd, {}, False),
    (s.SpeakerAdd, {"role": "host"}, False),
    (s.SpeakerAdd, {"speaker_id": None}, False),
    (s.SpeakerAdd, {"name": None, "speaker_id": 3}, True),
    (s.SpeakerAdd, {"name": "Grace Hopper"}, True),
    (s.SpeakerAdd, {"name": " "}, False),
    (s.SpeakerAdd, {"name": "Grace Hopper", "email": ""}, True),
    (s.SpeakerAdd, {"name": "Grace Hopper", "email": "grace@example.org"}, True),
    (s.SpeakerAdd, {"name": "Grace Hopper", "email": "grace"}, False),
]


@pytest.mark.parametrize(("model", "instance", "valid"), CASES, ids=[f"{m.__name__}-{n}" for n, (m, *_) in
                                                                    enumerate(CASES)])
def test_api_schema_and_model_agree(model, instance, valid):
    assert (documented(model, instance), accepted(model, instance)) == (valid, valid)


def test_api_timezones_are_the_servers_own():
    schema = document()["components"]["schemas"]["EventCreate"]["properties"]["timezone"]
    assert schema["enum"] == sorted(available_timezones()) == s.zone_names()
    assert all(accepted(s.EventCreate, event(timezone=name)) for name in schema["enum"])


def test_api_blank_class_is_what_one_line_removes():
    blank = re.compile(f"[{s.BLANK}]")
    wrong = [hex(code) for code in range(sys.maxunicode + 1)
             if not 0xD800 <= code <= 0xDFFF and (one_line(chr(code)) == "") != bool(blank.fullmatch(chr(code)))]
    assert wrong == []


def test_api_rules_between_fields_are_stated_where_json_schema_cannot():
    schemas = document()["components"]["schemas"]
    for name in ("EventCreate", "EventUpdate"):
        assert "after starts_at" in schemas[name]["properties"]["ends_at"]["description"]
        assert "not after ends_at" in json.dumps(schemas[name]["properties"]["signup_closes_at"])
    assert "names no speaker" in schemas["SpeakerAdd"]["properties"]["speaker_id"]["description"]
    refusal = document()["paths"]["/api/v1/events"]["post"]["responses"]["422"]
    assert "ends_at after starts_at" in refusal["description"]
    assert refusal["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
