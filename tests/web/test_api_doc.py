"""Property-based run of schemathesis against the served OpenAPI document: no 5xx, nothing off-document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from scheduler.domain import api_tokens, signups
from scheduler.extensions import db

#: Examples per operation and generation mode: 18 runs x 25 = 450 requests: 6-15 s per backend here, depending on load.
EXAMPLES = 25
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def seeded(app, create_event, now):
    """Events in every state, with speakers and registrants, and a write token."""
    full = create_event(title="Full house", capacity=1, tags=["PyTorch"], speakers=[("Ada Lovelace", "host")])
    open_event = create_event(title="Open talk", tags=["Linux Foundation"])
    draft = create_event(title="Still a draft", publish=False)
    for n, event in enumerate((full, full, open_event)):
        signups.sign_up(db.session, event, name=f"Person {n}", email=f"person{n}@attendees.example.org", now=now,
                        secret=app.config["SECRET_KEY"])
    _row, token = api_tokens.create_token(db.session, name="fuzz", scope="write", now=now)
    seeded = {"token": token, "slugs": [full.slug, open_event.slug, draft.slug],
              "speaker_id": full.speakers[0].speaker_id}
    db.session.commit()  # and hold no transaction while the requests run
    return seeded


def _strategy(operation, mode, seeded):
    """Generated cases, plus the same aimed at real events so organiser operations reach the domain."""
    strategies = [operation.as_strategy(mode)]
    path_names = {p.name for p in operation.path_parameters}
    # A negative case needs something left to spoil besides the fixed path.
    if "slug" in path_names and (mode is GenerationMode.POSITIVE or operation.body or operation.query):
        for slug in seeded["slugs"]:
            fixed = {"slug": slug}
            if "speaker_id" in path_names:
                fixed["speaker_id"] = seeded["speaker_id"]
            strategies.append(operation.as_strategy(mode, path_parameters=fixed))
    return st.one_of(strategies)


def test_api_conforms_to_its_openapi_document(app, seeded):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {seeded['token']}"}
    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            negatable = operation.body or operation.query or "{speaker_id}" in operation.path
            if mode is GenerationMode.NEGATIVE and not negatable:
                continue  # a non-empty string path parameter has no invalid value to send

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate, Phase.shrink],
                      suppress_health_check=list(HealthCheck))
            @given(case=_strategy(operation, mode, seeded))
            def check(case):
                # Positive data may still break rules JSON Schema cannot say (end after start, a real IANA
                # zone, a free slug): those get a documented 4xx, so acceptance is not demanded.
                case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

            try:
                check()
            except Exception as exc:
                exc.add_note(f"{mode.value} {operation.label}")
                raise
            ran.append(f"{mode.value} {operation.label}")
    assert len(ran) == 18, "\n".join(ran)  # every operation but the document itself, both modes
