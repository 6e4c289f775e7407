"""URL converters (scheduler.web.converters): a control character in a slug, a token or a tag, and an id
beyond the column's range, match no route (404) instead of reaching the database; so does a speaker_id
beyond the range in the admin's speaker form."""

from __future__ import annotations

import re

import pytest

from scheduler.models import MAX_ID
from scheduler.web.converters import row_id

TOO_BIG = ("2147483648", "99999999999999999999", "9" * 5000)

#: Anonymous requests with a NUL or another control character where a slug, a tag or a token goes.
CONTROL_PATHS = [
    "/events/%00", "/events/a%00b", "/events/a%00b/signup", "/events/%00.ics", "/events/a%1Fb.ics",
    "/calendar/%00.ics", "/calendar/a%00b.ics", "/api/v1/events/%00", "/api/v1/events/a%00b/registrations",
    "/r/%00", "/r/" + "a" * 30 + "%00", "/feeds/%00.ics", "/speakers/feeds/%00.ics",
]


def _id_routes(app) -> list[tuple[str, str]]:
    """(method, rule) of every route with an integer id in its path."""
    return [(method, rule.rule) for rule in app.url_map.iter_rules() if "<int:" in rule.rule
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]


@pytest.mark.parametrize("path", CONTROL_PATHS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_control_character_in_a_path_is_not_found(client, create_event, path, method):
    create_event(title="A b")  # a real event beside the fuzzed one
    response = client.open(path, method=method)
    assert response.status_code in (404, 405), (path, response.status_code)


def test_every_route_with_an_id_refuses_one_beyond_the_column(app, auth, create_event):
    create_event()
    routes = _id_routes(app)
    assert len(routes) >= 10, routes  # the admin's and the API's
    for method, rule in routes:
        for number in TOO_BIG:
            path = re.sub(r"<int:\w+>", number, rule)
            # A form POST carries a CSRF token; the API's POSTs need none (the id is refused before any token check).
            form = method == "POST" and not path.startswith("/api/")
            response = auth.post(path) if form else auth.client.open(path, method=method)
            assert response.status_code == 404, (method, path[:80], response.status_code)


@pytest.mark.parametrize("speaker_id", [*TOO_BIG, str(MAX_ID)])
def test_speaker_form_with_an_id_beyond_the_column_is_not_found(auth, create_event, speaker_id):
    event = create_event(publish=False)
    response = auth.post(f"/admin/events/{event.id}/speakers", {"speaker_id": speaker_id, "role": "speaker"})
    assert response.status_code == 404


@pytest.mark.parametrize(("text", "expected"), [
    ("1", 1), (str(MAX_ID), MAX_ID), (str(MAX_ID + 1), None), ("0", None), ("", None), ("-1", None),
    ("²", None), ("9" * 5000, None), (" 1", None),
])
def test_row_id_reads_only_what_a_column_can_hold(text, expected):
    assert row_id(text) == expected
