"""The JSON API: tokens and scopes, public fields only, same effects as the admin, bad input never a 500."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select, text

from scheduler import clock
from scheduler.domain import api_tokens, signups
from scheduler.extensions import db
from scheduler.models import ApiToken, Event, OutboxMessage, PlannedJob, Registration, Speaker, Tag
from scheduler.web.api_schemas import EPOCH
from tests.support import csrf_token

ZONE = "Europe/Berlin"


@pytest.fixture(autouse=True)
def test_reads_take_no_write_lock(app):
    """The test's own session reads like a GET does (on SQLite: BEGIN, not BEGIN IMMEDIATE), so requests
    made meanwhile through the client never wait behind it."""
    from scheduler.database import read_only

    with read_only():
        yield


def make_token(scope: str = "write") -> str:
    db.session.commit()  # end the test's read transaction: its snapshot may predate the requests' writes
    _row, token = api_tokens.create_token(db.session, name=f"{scope} token", scope=scope, now=clock.now())
    db.session.commit()
    return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def event_payload(now, **overrides) -> dict:
    start = (now + timedelta(days=10)).astimezone(ZoneInfo(ZONE)).replace(hour=18, minute=0, second=0)
    data = {
        "title": "Made through the API", "summary": "A talk.", "kind": "talk", "timezone": ZONE,
        "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat(),
        "venue": "Room 1", "join_url": "https://meet.example.org/api-secret-room", "capacity": 50,
        "tags": ["Python"], "reminder_offsets": [86400, 3600], "double_opt_in": False,
    }
    data.update(overrides)
    return data


def counts() -> tuple[int, ...]:
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Event, Registration, Speaker, OutboxMessage, PlannedJob))


# --- the document ---------------------------------------------------------------------------------

def test_api_document_is_valid_openapi_and_lists_every_route(app, client):
    from openapi_spec_validator import validate

    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
            routed |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routed
    assert len(routed) == 31


def test_api_document_links_each_answer_to_what_may_follow(client):
    """OpenAPI links, which schemathesis's stateful phase follows (test_api_doc.py)."""
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    links = {(method.upper(), path, status): {name: (link["operationId"], link["parameters"], link.get("requestBody"))
                                              for name, link in response.get("links", {}).items()}
             for path, item in paths.items() for method, operation in item.items()
             for status, response in operation["responses"].items() if response.get("links")}
    answered = {"slug": "$response.body#/slug"}
    organise = {name: (name, answered, None) for name in (
        "event_update", "event_publish", "event_cancel", "speaker_add", "registrations", "registration_create")}
    assert links[("POST", "/api/v1/events", "201")] == organise
    assert links[("PATCH", "/api/v1/events/{slug}", "200")] == organise
    assert links[("POST", "/api/v1/events/{slug}/publish", "200")] == {**organise, "event": ("event", answered, None)}
    assert links[("GET", "/api/v1/events", "200")]["event"] == ("event", {"slug": "$response.body#/events/0/slug"}, None)
    assert links[("POST", "/api/v1/events/{slug}/speakers", "201")] == {
        "speaker_remove": ("speaker_remove", {"slug": "$request.path.slug",
                                              "speaker_id": "$response.body#/speakers/0/id"}, None),
        "speaker_add_again": ("speaker_add", {"slug": "$request.path.slug"},
                              {"speaker_id": "$response.body#/speakers/0/id"})}
    assert links[("POST", "/api/v1/events/{slug}/registrations", "201")] == {
        "registrations": ("registrations", {"slug": "$request.path.slug"}, None)}
    assert len(links) == 8


# --- tokens and scopes ----------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/events"), ("PATCH", "/api/v1/events/{slug}"), ("POST", "/api/v1/events/{slug}/cancel"),
    ("POST", "/api/v1/events/{slug}/registrations"), ("GET", "/api/v1/events/{slug}/registrations"),
])
def test_api_without_token_is_401(client, create_event, method, path):
    event = create_event()
    response = client.open(path.format(slug=event.slug), method=method, json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="townhall"'
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_api_unknown_or_malformed_token_is_401(client, create_event):
    event = create_event()
    for header in ("Bearer th_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer " + "x" * 5000):
        response = client.get(f"/api/v1/events/{event.slug}/registrations", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_api_read_token_on_write_is_403(client, create_event, now):
    event = create_event()
    token = make_token("read")
    before = counts()
    response = client.post("/api/v1/events", json=event_payload(now), headers=bearer(token))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "insufficient_scope"
    response = client.post(f"/api/v1/events/{event.slug}/cancel", headers=bearer(token))
    assert response.status_code == 403
    assert counts() == before
    assert client.get(f"/api/v1/events/{event.slug}/registrations", headers=bearer(token)).status_code == 200


def test_api_revoked_token_is_401(client, runner, create_event):
    event = create_event()
    token = make_token("write")
    path = f"/api/v1/events/{event.slug}/registrations"
    assert client.get(path, headers=bearer(token)).status_code == 200
    token_id = db.session.scalar(select(ApiToken.id))
    db.session.commit()
    result = runner.invoke(args=["api-token", "revoke", str(token_id)])
    assert result.exit_code == 0, result.output
    response = client.get(path, headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"


def test_api_token_is_stored_hashed_and_records_use(client, create_event):
    event = create_event()
    token = make_token("read")
    row = db.session.scalar(select(ApiToken))
    assert token not in row.token_hash and len(row.token_hash) == 64
    assert row.last_used_at is None
    assert client.get(f"/api/v1/events/{event.slug}/registrations", headers=bearer(token)).status_code == 200
    db.session.commit()  # a fresh snapshot
    assert db.session.get(ApiToken, row.id).last_used_at is not None


def test_cli_api_token_create_prints_a_working_token(runner, client, admin_user, create_event):
    event = create_event()
    result = runner.invoke(args=["api-token", "create", "--name", "Sync", "--scope", "write",
                                 "--email", "organiser@townhall.test"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    row = db.session.scalar(select(ApiToken))
    assert (row.name, row.scope, row.user_id) == ("Sync", "write", admin_user.id)
    response = client.post(f"/api/v1/events/{event.slug}/cancel", json={}, headers=bearer(token))
    assert response.status_code == 200
    bad = runner.invoke(args=["api-token", "create", "--name", "x", "--email", "nobody@townhall.test"])
    assert bad.exit_code == 2
    assert runner.invoke(args=["api-token", "revoke", "999"]).exit_code == 1


def test_admin_api_tokens_page_shows_token_once_and_revokes(auth, client, create_event):
    event = create_event()
    response = auth.post("/admin/api-tokens", {"name": "Website", "scope": "read"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    row = db.session.scalar(select(ApiToken))
    token = page.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert row.token_hash == __import__("scheduler.tokens", fromlist=["token_hash"]).token_hash(token)
    assert token not in client.get("/admin/api-tokens").get_data(as_text=True)
    path = f"/api/v1/events/{event.slug}/registrations"
    assert client.get(path, headers=bearer(token)).status_code == 200
    response = auth.post(f"/admin/api-tokens/{row.id}/revoke", {}, follow_redirects=True)
    assert response.status_code == 200
    assert "revoked" in response.get_data(as_text=True)
    assert client.get(path, headers=bearer(token)).status_code == 401


def test_admin_api_tokens_page_refuses_a_bad_scope(auth):
    response = auth.post("/admin/api-tokens", {"name": "Website", "scope": "admin"})
    assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 0


# --- CSRF: only bearer requests are exempt --------------------------------------------------------

def test_api_session_write_needs_csrf(auth, client, now):
    response = client.post("/api/v1/events", json=event_payload(now))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"
    assert counts()[0] == 0
    token = csrf_token(client, "/admin/")
    response = client.post("/api/v1/events", json=event_payload(now), headers={"X-CSRFToken": token})
    assert response.status_code == 201
    assert counts()[0] == 1


def test_api_bearer_write_needs_no_csrf(client, now):
    response = client.post("/api/v1/events", json=event_payload(now), headers=bearer(make_token()))
    assert response.status_code == 201


# --- public reads ---------------------------------------------------------------------------------

def test_api_public_responses_never_show_join_url_or_attendee_emails(app, client, create_event, now):
    secret = "https://meet.example.org/very-private-room"
    event = create_event(title="Private link talk", join_url=secret, capacity=1, tags=["AI"],
                         speakers=[("Grace Hopper", "host")])
    create_event(title="Draft with link", join_url=secret + "-draft", publish=False)
    emails = ["first.person@attendees.example.org", "second.person@attendees.example.org"]
    for email in emails:
        signups.sign_up(db.session, event, name="Attendee", email=email, now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    responses = [client.get(path) for path in (
        "/api/v1/events", f"/api/v1/events/{event.slug}", "/api/v1/events?tag=ai", "/api/v1/events?limit=1",
        "/api/v1/openapi.json", "/api/v1/events/draft-with-link",
    )]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 404]
    for response in responses:
        body = response.get_data(as_text=True)
        assert "meet.example.org" not in body
        for email in [*emails, "grace@speakers.example.org"]:
            assert email not in body
    detail = responses[1].get_json()
    assert detail["online"] is True and detail["seats_left"] == 0 and detail["speakers"][0]["role"] == "host"
    assert "join_url" not in detail and "email" not in detail["speakers"][0]


def test_api_event_list_filters_and_pages(client, create_event, now):
    made = [create_event(title=f"Talk {n}", starts_at=now + timedelta(days=n), tags=["Even" if n % 2 else "Odd"])
            for n in range(1, 6)]
    create_event(title="Past", starts_at=now - timedelta(days=3))
    create_event(title="Draft", publish=False)
    body = client.get("/api/v1/events").get_json()
    assert [e["title"] for e in body["events"]] == [e.title for e in made]
    assert body["next_cursor"] is None
    assert [e["title"] for e in client.get("/api/v1/events?tag=Even").get_json()["events"]] == [
        "Talk 1", "Talk 3", "Talk 5"]
    window = {"from": (now + timedelta(days=2)).isoformat(), "to": (now + timedelta(days=4)).isoformat()}
    assert [e["title"] for e in client.get("/api/v1/events", query_string=window).get_json()["events"]] == [
        "Talk 2", "Talk 3"]
    titles, cursor = [], None
    while True:
        page = client.get("/api/v1/events", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})})
        titles += [e["title"] for e in page.get_json()["events"]]
        cursor = page.get_json()["next_cursor"]
        if cursor is None:
            break
    assert titles == [e.title for e in made]


def test_api_any_cursor_of_the_documented_form_is_a_position(client, create_event, now):
    """A cursor is where the last page ended: any of the documented form is a page, one past the end an empty one."""
    made = [create_event(title=f"Talk {n}", starts_at=now + timedelta(days=n)) for n in range(1, 4)]
    headers = bearer(make_token("read"))
    first = client.get("/api/v1/events?limit=1").get_json()
    assert first["next_cursor"] == f"{(made[0].starts_at - EPOCH) // timedelta(microseconds=1)}_{made[0].id}"
    pages = {cursor: client.get(f"/api/v1/events?cursor={cursor}") for cursor in (
        "0_0", first["next_cursor"], "99999999999999999999_99999999999999999999", "253402300799999999_1")}
    assert {cursor: (r.status_code, [e["title"] for e in r.get_json()["events"]]) for cursor, r in pages.items()} == {
        "0_0": (200, ["Talk 1", "Talk 2", "Talk 3"]), first["next_cursor"]: (200, ["Talk 2", "Talk 3"]),
        "99999999999999999999_99999999999999999999": (200, []), "253402300799999999_1": (200, [])}
    signups.sign_up(db.session, made[0], name="Ada", email="ada@attendees.example.org", now=now, secret="s")
    db.session.commit()
    path = f"/api/v1/events/{made[0].slug}/registrations"
    assert [len(client.get(f"{path}?cursor={cursor}", headers=headers).get_json()["registrations"])
            for cursor in ("0", "99999999999999999999")] == [1, 0]
    assert client.get(f"{path}?cursor=1_1", headers=headers).status_code == 400


def test_api_dates_are_bounded_by_the_year_as_written(client, now):
    headers = bearer(make_token())
    early = event_payload(now, starts_at="1971-01-01T00:00:00+14:00", ends_at="1971-01-01T01:00:00+14:00")
    response = client.post("/api/v1/events", json=early, headers=headers)
    assert (response.status_code, response.get_json()["starts_at"]) == (201, "1970-12-31T10:00:00Z")
    too_early = event_payload(now, starts_at="1970-12-31T23:30:00-01:00", ends_at="1971-01-01T01:00:00Z")
    response = client.post("/api/v1/events", json=too_early, headers=headers)
    assert (response.status_code, list(response.get_json()["error"]["fields"])) == (422, ["starts_at"])


def test_api_a_number_without_a_fraction_is_an_integer(client, now):
    """JSON Schema's integer: 50.0 is one, 50.5 and "50" are not."""
    headers = bearer(make_token())
    response = client.post("/api/v1/events", json=event_payload(now, capacity=50.0, briefing_offset=3600.0),
                           headers=headers)
    assert (response.status_code, response.get_json()["capacity"], response.get_json()["briefing_offset"]) == (
        201, 50, 3600)
    for capacity in (50.5, "50", True):
        response = client.post("/api/v1/events", json=event_payload(now, capacity=capacity), headers=headers)
        assert (response.status_code, list(response.get_json()["error"]["fields"])) == (422, ["capacity"])


def test_api_a_new_slug_moves_the_event(client, create_event):
    event = create_event(title="Old name")
    headers = bearer(make_token())
    response = client.patch(f"/api/v1/events/{event.slug}", json={"slug": "new-name"}, headers=headers)
    assert (response.status_code, response.get_json()["slug"]) == (200, "new-name")
    assert [client.get(f"/api/v1/events/{slug}").status_code for slug in ("old-name", "new-name")] == [404, 200]


@pytest.mark.parametrize("query", [
    "limit=0", "limit=101", "limit=abc", "limit=99999999999999999999999", "from=yesterday", "to=2031-02-30T10:00Z",
    "from=0001-01-01T00:00:00%2B14:00", "cursor=not-a-cursor", "cursor=WzEsMl0", "tag=" + "x" * 200, "unknown=1",
    "from=9999-12-31T23:59:59-23:59",
])
def test_api_bad_query_is_400(client, create_event, query):
    create_event()
    response = client.get("/api/v1/events?" + query)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert set(response.get_json()["error"]) == {"code", "message", "fields"}


def test_api_unknown_event_paths_are_json_404(client):
    for path in ("/api/v1/events/nope", "/api/v1/events/%00", "/api/v1/nothing-here", "/api/v1/events/a/b/c"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.put("/api/v1/events").status_code == 405


# --- organiser operations -------------------------------------------------------------------------

def later_local(event) -> str:
    return event.starts_at.astimezone(ZoneInfo(ZONE)).strftime("%Y%m%dT%H%M%S")


def test_api_create_publish_move_cancel_show_in_admin_public_and_feeds(auth, client, now):
    headers = bearer(make_token())
    response = client.post("/api/v1/events", json=event_payload(now, slug="api-made"), headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert (created["status"], created["join_url"], response.headers["Location"]) == (
        "draft", "https://meet.example.org/api-secret-room", "http://townhall.test/api/v1/events/api-made")
    assert client.get("/api/v1/events/api-made").status_code == 404  # drafts are not public
    assert "Made through the API" in client.get("/admin/").get_data(as_text=True)

    assert client.post("/api/v1/events/api-made/publish", headers=headers).get_json()["status"] == "published"
    assert client.get("/events/api-made").status_code == 200
    assert client.get("/api/v1/events/api-made").get_json()["title"] == "Made through the API"
    assert "Made through the API" in client.get("/calendar.ics").get_data(as_text=True)

    later = event_payload(now + timedelta(days=1))
    response = client.patch("/api/v1/events/api-made", json={"starts_at": later["starts_at"],
                                                             "ends_at": later["ends_at"]}, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["sequence"] == 1
    event = db.session.scalar(select(Event).where(Event.slug == "api-made"))
    page = client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert event.starts_at.astimezone(ZoneInfo(ZONE)).strftime("%H:%M") in page
    ics = client.get("/events/api-made.ics").get_data(as_text=True)
    assert "SEQUENCE:1" in ics and "DTSTART;TZID=Europe/Berlin:" + later_local(event) in ics

    response = client.post("/api/v1/events/api-made/cancel", json={"reason": "Speaker ill"}, headers=headers)
    assert response.get_json()["status"] == "cancelled"
    assert "cancelled" in client.get("/events/api-made").get_data(as_text=True).lower()
    assert "STATUS:CANCELLED" in client.get("/events/api-made.ics").get_data(as_text=True)
    response = client.patch("/api/v1/events/api-made", json={"title": "Too late"}, headers=headers)
    assert response.status_code == 409


def test_api_speakers_are_added_and_removed(client, create_event):
    event = create_event(publish=False)
    headers = bearer(make_token())
    response = client.post(f"/api/v1/events/{event.slug}/speakers", headers=headers, json={
        "name": "Soumith Chintala", "email": "soumith@example.org", "affiliation": "Meta", "role": "speaker"})
    assert response.status_code == 201, response.get_data(as_text=True)
    speaker = response.get_json()["speakers"][0]
    assert (speaker["name"], speaker["role"]) == ("Soumith Chintala", "speaker")
    response = client.post(f"/api/v1/events/{event.slug}/speakers", headers=headers,
                           json={"speaker_id": speaker["id"], "role": "host"})
    assert [s["role"] for s in response.get_json()["speakers"]] == ["host"]
    assert client.post(f"/api/v1/events/{event.slug}/speakers", headers=headers,
                       json={"speaker_id": 424242}).status_code == 422
    response = client.delete(f"/api/v1/events/{event.slug}/speakers/{speaker['id']}", headers=headers)
    assert response.status_code == 204
    assert client.delete(f"/api/v1/events/{event.slug}/speakers/{speaker['id']}", headers=headers).status_code == 404
    db.session.expire_all()
    assert db.session.get(Event, event.id).speakers == []


def test_api_register_follows_the_form_rules(client, create_event):
    event = create_event(capacity=1)
    draft = create_event(publish=False)
    headers = bearer(make_token())
    path = f"/api/v1/events/{event.slug}/registrations"
    first = client.post(path, json={"name": "Ada", "email": "ada@attendees.example.org"}, headers=headers)
    assert (first.status_code, first.get_json()["outcome"]) == (201, "confirmed")
    second = client.post(path, json={"name": "Bob", "email": "bob@attendees.example.org"}, headers=headers)
    assert (second.status_code, second.get_json()["outcome"]) == (201, "waitlisted")
    assert second.get_json()["registration"]["waitlist_position"] == 1
    again = client.post(path, json={"name": "Ada", "email": "ADA@attendees.example.org"}, headers=headers)
    assert (again.status_code, again.get_json()["outcome"]) == (200, "repeat")
    assert db.session.scalar(select(func.count()).select_from(Registration)) == 2
    listed = client.get(path, headers=bearer(make_token("read"))).get_json()
    assert [(r["email"], r["state"], r["waitlist_position"]) for r in listed["registrations"]] == [
        ("ada@attendees.example.org", "confirmed", None), ("bob@attendees.example.org", "waitlisted", 1)]
    response = client.post(f"/api/v1/events/{draft.slug}/registrations",
                           json={"name": "Cy", "email": "cy@attendees.example.org"}, headers=headers)
    assert response.status_code == 409
    response = client.post(path, json={"name": "Dee", "email": "not-an-email"}, headers=headers)
    assert (response.status_code, list(response.get_json()["error"]["fields"])) == (422, ["email"])
    response = client.post(path, json={"name": "\x01 ", "email": "dee@attendees.example.org"}, headers=headers)
    assert (response.status_code, list(response.get_json()["error"]["fields"])) == (422, ["name"])


def test_api_domain_rules_come_back_as_field_errors(client, create_event, now):
    taken = create_event(title="Taken")
    headers = bearer(make_token())
    before = counts()
    response = client.post("/api/v1/events", json=event_payload(now, slug=taken.slug), headers=headers)
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "slug_taken")
    payload = event_payload(now)
    response = client.post("/api/v1/events", json={**payload, "ends_at": payload["starts_at"]}, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {"ends_at": ["The end must be after the start."]}
    response = client.post("/api/v1/events", json={**payload, "timezone": "Mars/Olympus_Mons"}, headers=headers)
    assert list(response.get_json()["error"]["fields"]) == ["timezone"]
    assert counts() == before


def _waiting_on(holder) -> bool:
    """Whether some session waits for a lock held by `holder` (asked on a fresh connection: the
    statistics views keep one snapshot per transaction)."""
    pid = holder.execute(text("SELECT pg_backend_pid()")).scalar()
    with db.engine.connect() as probe:
        return bool(probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                                  {"pid": pid}).scalar())


def test_api_tag_taken_by_a_concurrent_request_is_409_not_500(client, backend, now):
    """Two requests creating the same new tag: the loser waits on the unique index, then gets a 409."""
    if backend != "postgres":
        pytest.skip("needs row-level concurrency: PostgreSQL")
    token = make_token()
    result = {}
    with db.engine.connect() as other:
        other.execute(insert(Tag).values(slug="racy", name="Racy"))  # not committed yet
        thread = threading.Thread(target=lambda: result.update(response=client.post(
            "/api/v1/events", json=event_payload(now, tags=["Racy"]), headers=bearer(token))))
        thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _waiting_on(other):
            time.sleep(0.05)
        other.commit()
        thread.join(20)
    assert result["response"].status_code == 409
    assert result["response"].get_json()["error"]["code"] == "conflict"
    assert counts()[0] == 0


# --- bad input ------------------------------------------------------------------------------------

BAD_BODIES = [
    (b"{not json", 400), (b"", 400), (b"[]", 422), (b'"text"', 422), (b"null", 422), (b"1e999999", 422),
    (b"[" * 100_000, 400), (b'{"title": ' + b"9" * 5000 + b"}", 400),
    (json.dumps({"title": 5, "starts_at": "x", "ends_at": "y"}).encode(), 422),
    (json.dumps({"title": "x", "starts_at": "2031-02-30T10:00:00Z", "ends_at": "2031-03-01T10:00:00Z"}).encode(), 422),
    (json.dumps({"title": "x", "starts_at": "2031-03-01T10:00:00", "ends_at": "2031-03-01T11:00:00"}).encode(), 422),
    (json.dumps({"title": "x", "starts_at": "9999-12-31T23:59:59-12:00", "ends_at": "9999-12-31T23:59:59-13:00"})
     .encode(), 422),
    (json.dumps({"title": "x", "starts_at": "0001-01-01T00:00:00+14:00", "ends_at": "0001-01-01T01:00:00+14:00"})
     .encode(), 422),
    (json.dumps({"title": "x", "capacity": 10**30, "starts_at": "2031-03-01T10:00:00Z",
                 "ends_at": "2031-03-01T11:00:00Z"}).encode(), 422),
    (json.dumps({"title": "x", "surprise": True, "starts_at": "2031-03-01T10:00:00Z",
                 "ends_at": "2031-03-01T11:00:00Z"}).encode(), 422),
    (json.dumps({"title": "\x00", "starts_at": "2031-03-01T10:00:00Z", "ends_at": "2031-03-01T11:00:00Z"}).encode(),
     422),
    (b'{"title": "\\ud800", "starts_at": "2031-03-01T10:00:00Z", "ends_at": "2031-03-01T11:00:00Z", "x\\ud800": 1}',
     422),
    (json.dumps({"title": "x", "capacity": "12", "starts_at": "2031-03-01T10:00:00Z",
                 "ends_at": "2031-03-01T11:00:00Z"}).encode(), 422),
    (json.dumps({"title": "x", "capacity": True, "starts_at": "2031-03-01T10:00:00Z",
                 "ends_at": "2031-03-01T11:00:00Z"}).encode(), 422),
    (b'{"title": NaN, "starts_at": "2031-03-01T10:00:00Z", "ends_at": "2031-03-01T11:00:00Z"}', 422),
    (json.dumps({"title": "x", "reminder_offsets": [1] * 11, "starts_at": "2031-03-01T10:00:00Z",
                 "ends_at": "2031-03-01T11:00:00Z"}).encode(), 422),
]


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
def test_api_bad_body_is_a_4xx_and_changes_nothing(client, create_event, body, status):
    create_event()
    headers = {**bearer(make_token()), "Content-Type": "application/json"}
    before = counts()
    response = client.post("/api/v1/events", data=body, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert set(response.get_json()["error"]) == {"code", "message", "fields"}
    assert counts() == before


def test_api_nul_bytes_are_dropped_not_stored(client, now):
    headers = bearer(make_token())
    response = client.post("/api/v1/events", json=event_payload(now, title="Null\x00 talk", venue="Ro\x00om"),
                           headers=headers)
    assert response.status_code == 201
    assert (response.get_json()["title"], response.get_json()["venue"]) == ("Null talk", "Room")


def test_api_too_large_body_is_413(client):
    response = client.post("/api/v1/events", data=b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}',
                           headers={**bearer(make_token()), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_api_failed_update_changes_nothing(client, create_event, now):
    event = create_event(capacity=5)
    headers = bearer(make_token())
    before = {c.key: getattr(event, c.key) for c in Event.__table__.columns}
    jobs = [(j.kind, j.due_at, j.state) for j in db.session.scalars(select(PlannedJob).order_by(PlannedJob.id))]
    payload = event_payload(now + timedelta(days=3))
    response = client.patch(f"/api/v1/events/{event.slug}", headers=headers, json={
        "starts_at": payload["starts_at"], "ends_at": payload["ends_at"], "capacity": 10, "timezone": "Nowhere/Zone"})
    assert response.status_code == 422
    response = client.patch(f"/api/v1/events/{event.slug}", headers=headers, json={"title": None})
    assert response.status_code == 422
    db.session.expire_all()
    after = db.session.get(Event, event.id)
    assert {c.key: getattr(after, c.key) for c in Event.__table__.columns} == before
    assert [(j.kind, j.due_at, j.state) for j in db.session.scalars(select(PlannedJob).order_by(PlannedJob.id))] == jobs
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


# --- the same change through the admin and the API has the same effects --------------------------

def _admin_form(start, end, title: str) -> dict:
    local = "%Y-%m-%dT%H:%M"
    return {
        "title": title, "slug": "", "summary": "A talk.", "description": "", "kind": "talk", "timezone": ZONE,
        "starts_at": start.astimezone(ZoneInfo(ZONE)).strftime(local),
        "ends_at": end.astimezone(ZoneInfo(ZONE)).strftime(local), "venue": "Room 1",
        "join_url": "https://meet.example.org/api-secret-room", "capacity": "50", "signup_opens_at": "",
        "signup_closes_at": "", "tags": "Python", "reminders": "1d, 1h", "briefing_enabled": "y",
        "briefing_offset": "3d", "nudge_enabled": "y", "nudge_offset": "15m", "thanks_enabled": "y",
        "thanks_offset": "1h",
    }


def _effects(event_id: int, *, start) -> tuple[Counter, list]:
    """Outbox rows by (kind, recipient, ICS method), and jobs by (kind, offset, state, due relative to start)."""
    mail = Counter((m.kind, m.to_addr, m.ics_method) for m in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.event_id == event_id)))
    jobs = sorted((j.kind, j.offset_seconds, j.state, j.due_at - start) for j in db.session.scalars(
        select(PlannedJob).where(PlannedJob.event_id == event_id)))
    return mail, jobs


def test_api_changes_queue_the_same_mail_and_jobs_as_the_admin(app, auth, client, now):
    headers = bearer(make_token())
    start = (now + timedelta(days=10)).replace(second=0)
    moved = start + timedelta(days=1, hours=2)
    one_hour = timedelta(hours=1)
    people = [("Ada", "ada@attendees.example.org"), ("Bob", "bob@attendees.example.org")]

    # Create and publish, once through each door.
    assert auth.post("/admin/events/new", _admin_form(start, start + one_hour, "Via admin")).status_code == 302
    admin_event = db.session.scalar(select(Event).where(Event.title == "Via admin"))
    assert auth.post(f"/admin/events/{admin_event.id}/speakers", {
        "name": "Grace Hopper", "email": "grace@speakers.example.org", "role": "host"}).status_code == 302
    assert auth.post(f"/admin/events/{admin_event.id}/publish", {}).status_code == 302
    payload = event_payload(now, title="Via API", starts_at=start.isoformat(),
                            ends_at=(start + one_hour).isoformat(), double_opt_in=False)
    api_slug = client.post("/api/v1/events", json=payload, headers=headers).get_json()["slug"]
    assert client.post(f"/api/v1/events/{api_slug}/speakers", headers=headers, json={
        "name": "Grace Hopper", "email": "grace@speakers.example.org", "role": "host"}).status_code == 201
    assert client.post(f"/api/v1/events/{api_slug}/publish", headers=headers).status_code == 200
    api_event = db.session.scalar(select(Event).where(Event.slug == api_slug))
    for event in (admin_event, api_event):
        db.session.refresh(event)
        for name, email in people:
            signups.sign_up(db.session, event, name=name, email=email, now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert admin_event.double_opt_in is api_event.double_opt_in is False
    published = _effects(api_event.id, start=start)
    assert _effects(admin_event.id, start=start) == published
    assert len(published[1]) == 5  # 2 reminders, briefing, nudge, thanks

    # Move both.
    form = _admin_form(moved, moved + one_hour, "Via admin") | {"slug": admin_event.slug}
    assert auth.post(f"/admin/events/{admin_event.id}/edit", form).status_code == 302
    response = client.patch(f"/api/v1/events/{api_slug}", headers=headers, json={
        "starts_at": moved.isoformat(), "ends_at": (moved + one_hour).isoformat()})
    assert response.status_code == 200, response.get_data(as_text=True)
    db.session.commit()  # a fresh snapshot
    moved_effects = _effects(api_event.id, start=moved)
    assert _effects(admin_event.id, start=moved) == moved_effects
    assert moved_effects[0].total() > published[0].total()  # people were told
    assert db.session.get(Event, admin_event.id).sequence == db.session.get(Event, api_event.id).sequence == 1

    # Cancel both.
    assert auth.post(f"/admin/events/{admin_event.id}/cancel", {"reason": "Ill"}).status_code == 302
    assert client.post(f"/api/v1/events/{api_slug}/cancel", json={"reason": "Ill"}, headers=headers).status_code == 200
    db.session.commit()
    admin_effects, api_effects = _effects(admin_event.id, start=moved), _effects(api_event.id, start=moved)
    assert admin_effects == api_effects
    assert api_effects[0] != moved_effects[0]  # people were told (a still-queued update may be rewritten)
    assert {state for _kind, _offset, state, _due in api_effects[1]} == {"cancelled"}
