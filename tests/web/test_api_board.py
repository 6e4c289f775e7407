"""The question board in the API: public fields to whoever may read the board, moderation with a write token
through the same domain rules as the board's forms (and reaching open boards live), refusals as JSON."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from scheduler import clock
from scheduler.domain import api_tokens, signups
from scheduler.domain import board as rules
from scheduler.extensions import db
from scheduler.models import Question, Vote
from scheduler.web import board_stream

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
PUBLIC_FIELDS = {"id", "text", "name", "votes", "state", "pinned", "answered", "answered_at", "created_at"}


@pytest.fixture(autouse=True)
def test_reads_take_no_write_lock(app):
    """The test's own session reads like a GET does, so requests made meanwhile never wait behind it."""
    from scheduler.database import read_only

    with read_only():
        yield


def make_token(scope: str = "write") -> dict:
    db.session.commit()
    _row, token = api_tokens.create_token(db.session, name=f"{scope} token", scope=scope, now=clock.now())
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def join(app, event, name: str, now):
    registration = signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@attendees.example.org",
                                   now=now, secret=app.config["SECRET_KEY"]).registration
    db.session.commit()
    return rules.Actor(registration=registration)


def board_with_questions(app, create_event, now, **fields):
    """An event whose board has Ada's question (hostile text, one vote from Bob) and Bob's anonymous one."""
    event = create_event(**fields)
    ada, bob = join(app, event, "Ada", now), join(app, event, "Bob", now)
    first = rules.ask(db.session, event, ada, body=HOSTILE, now=now)
    second = rules.ask(db.session, event, bob, body="Second?", anonymous=True, now=now + timedelta(seconds=1))
    if first.state == "visible":
        rules.vote(db.session, event, bob, first.id, up=True, now=now)
    db.session.commit()
    return event, first.id, second.id


def state_of(question_id: int) -> tuple:
    db.session.expire_all()
    q = db.session.get(Question, question_id)
    result = (q.state, q.pinned, q.votes, q.merged_into_id)
    db.session.rollback()
    return result


# --- reading ---------------------------------------------------------------------------------------

def test_api_board_public_fields_only_with_hostile_text_as_json(app, client, create_event, now):
    event, first, second = board_with_questions(app, create_event, now, board_public=True)
    response = client.get(f"/api/v1/events/{event.slug}/questions")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    raw = response.get_data(as_text=True)
    assert "@attendees.example.org" not in raw and "registration" not in raw
    body = response.get_json()
    assert {k: v for k, v in body.items() if k != "questions"} == {
        "event": event.slug, "mode": "open", "readable_by_visitors": True, "open": True, "closed_reason": None}
    assert [set(q) for q in body["questions"]] == [PUBLIC_FIELDS, PUBLIC_FIELDS]
    assert [(q["id"], q["text"], q["name"], q["votes"], q["state"], q["pinned"], q["answered"])
            for q in body["questions"]] == [(first, HOSTILE, "Ada", 1, "visible", False, False),
                                            (second, "Second?", "Anonymous", 0, "visible", False, False)]
    assert body["questions"][0]["created_at"] == "2026-11-02T12:00:00Z"


def test_api_board_public_list_keeps_waiting_and_hidden_questions_out(app, client, create_event, now):
    event, first, second = board_with_questions(app, create_event, now, board_public=True, board_mode="moderated")
    assert client.get(f"/api/v1/events/{event.slug}/questions").get_json()["questions"] == []
    organiser = rules.Actor(organiser=True)
    rules.approve(db.session, event, organiser, first, now=now)
    rules.approve(db.session, event, organiser, second, now=now)
    rules.hide(db.session, event, organiser, second, now=now)
    db.session.commit()
    listed = client.get(f"/api/v1/events/{event.slug}/questions").get_json()
    assert (listed["mode"], [q["id"] for q in listed["questions"]]) == ("moderated", [first])
    # A token changes nothing on the public list: waiting and hidden questions are read through /all.
    with_token = client.get(f"/api/v1/events/{event.slug}/questions", headers=make_token("write")).get_json()
    assert [q["id"] for q in with_token["questions"]] == [first]


def test_api_board_respects_who_may_read_it(app, client, create_event, now):
    members_only, _first, _second = board_with_questions(app, create_event, now)
    refused = client.get(f"/api/v1/events/{members_only.slug}/questions")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "members_only"
    draft = create_event(publish=False, board_public=True)
    for slug in (draft.slug, "no-such-event", "Not A Slug"):
        missing = client.get(f"/api/v1/events/{slug}/questions")
        assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "not_found")


def test_api_board_after_the_end_is_read_only(app, client, create_event, now):
    event, first, _second = board_with_questions(app, create_event, now, board_public=True,
                                                 starts_at=now + timedelta(hours=1))
    after = event.ends_at + timedelta(minutes=1)
    db.session.commit()
    app.config["CLOCK"] = lambda: after
    body = client.get(f"/api/v1/events/{event.slug}/questions").get_json()
    assert (body["open"], body["closed_reason"]) == (False, "The event has ended: the board is closed and stays as it was.")
    assert [q["votes"] for q in body["questions"]] == [1, 0]
    refused = client.post(f"/api/v1/events/{event.slug}/questions/{first}/pin", headers=make_token())
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "board_closed")
    assert state_of(first) == ("visible", False, 1, None)


def test_api_board_all_questions_need_a_write_token(app, client, create_event, now):
    event, first, second = board_with_questions(app, create_event, now, board_mode="moderated")
    path = f"/api/v1/events/{event.slug}/questions/all"
    assert client.get(path).status_code == 401
    refused = client.get(path, headers=make_token("read"))
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "insufficient_scope")
    response = client.get(path, headers=make_token())
    assert response.status_code == 200
    assert "@attendees.example.org" not in response.get_data(as_text=True)
    assert [(q["id"], q["state"], q["merged_into"]) for q in response.get_json()["questions"]] == [
        (first, "pending", None), (second, "pending", None)]


# --- moderating ------------------------------------------------------------------------------------

def test_api_board_moderation_runs_the_board_rules(app, client, create_event, now):
    event, first, second = board_with_questions(app, create_event, now, board_mode="moderated")
    token = make_token()
    base = f"/api/v1/events/{event.slug}/questions"

    def act(question_id: int, action: str, **kwargs):
        response = client.post(f"{base}/{question_id}/{action}", headers=token, **kwargs)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    approved = act(first, "approve")
    assert (approved["id"], approved["state"], approved["text"], approved["name"]) == (first, "visible", HOSTILE, "Ada")
    act(second, "approve")
    assert act(first, "pin")["pinned"] is True
    assert act(second, "pin")["pinned"] is True
    assert state_of(first)[:2] == ("visible", False)  # one pinned per board
    assert act(second, "unpin")["pinned"] is False
    answered = act(second, "answered")
    assert (answered["state"], answered["answered"], answered["answered_at"]) == ("answered", True, "2026-11-02T12:00:00Z")
    assert act(first, "hide")["state"] == "hidden"
    assert act(first, "approve")["state"] == "visible"
    kept = act(first, "merge", json={"into": second})
    assert (kept["id"], kept["state"]) == (second, "answered")
    assert state_of(first) == ("hidden", False, 0, second)
    listed = client.get(f"{base}/all", headers=token).get_json()["questions"]
    assert [(q["id"], q["state"], q["merged_into"]) for q in listed] == [(second, "answered", None),
                                                                         (first, "hidden", second)]


def test_api_board_merge_moves_votes_like_the_form(app, client, create_event, now):
    event = create_event()
    ada, bob, cleo = (join(app, event, name, now) for name in ("Ada", "Bob", "Cleo"))
    duplicate = rules.ask(db.session, event, ada, body="Same?", now=now)
    original = rules.ask(db.session, event, bob, body="Same!", now=now)
    rules.vote(db.session, event, cleo, duplicate.id, up=True, now=now)
    rules.vote(db.session, event, bob, duplicate.id, up=True, now=now)  # the kept question's asker
    db.session.commit()
    ids = (duplicate.id, original.id)
    response = client.post(f"/api/v1/events/{event.slug}/questions/{ids[0]}/merge", json={"into": ids[1]},
                           headers=make_token())
    assert (response.status_code, response.get_json()["votes"]) == (200, 1)
    assert db.session.scalars(select(Vote.question_id)).all() == [ids[1]]


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("{q}/pin", None, 409, "conflict"),  # still waiting for approval
    ("{q}/answered", None, 409, "conflict"),
    ("999999/approve", None, 404, "not_found"),
    ("{other}/approve", None, 404, "not_found"),  # a question of another board
    ("{q}/merge", {"into": "{q}"}, 422, "invalid"),
    ("{q}/merge", {"into": 999999}, 422, "invalid"),
    ("{q}/merge", {"into": "{other}"}, 422, "invalid"),
    ("{q}/merge", {"into": "7"}, 422, "invalid"),
    ("{q}/merge", {}, 422, "invalid"),
    ("{q}/merge", {"into": 1, "extra": True}, 422, "invalid"),
    ("{q}/merge", "not json", 400, "bad_request"),
    ("{q}/merge", b"", 400, "bad_request"),
    ("{q}/reject", None, 404, "not_found"),
])
def test_api_board_bad_moderation_is_a_clear_error_and_changes_nothing(app, client, create_event, now, path, body,
                                                                        status, code):
    event, first, _second = board_with_questions(app, create_event, now, board_mode="moderated")
    other_event, other, _ = board_with_questions(app, create_event, now)
    values = {"q": first, "other": other}
    if isinstance(body, dict):
        body = {k: (int(v.format(**values)) if isinstance(v, str) and "{" in v else v) for k, v in body.items()}
        kwargs = {"json": body}
    elif body is None:
        kwargs = {}
    else:
        kwargs = {"data": body, "content_type": "application/json"}
    before = (state_of(first), state_of(other))
    response = client.post(f"/api/v1/events/{event.slug}/questions/{path.format(**values)}", headers=make_token(),
                           **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    assert (state_of(first), state_of(other)) == before


def test_api_board_moderation_needs_a_write_token(app, client, create_event, now):
    event, first, _second = board_with_questions(app, create_event, now, board_mode="moderated")
    path = f"/api/v1/events/{event.slug}/questions/{first}/approve"
    assert client.post(path).status_code == 401
    assert client.post(path, headers=make_token("read")).status_code == 403
    assert state_of(first)[0] == "pending"


@pytest.mark.timing  # compares measured times: run alone
def test_api_board_moderation_reaches_open_boards(app, client, create_event, now):
    """The change made through the API is announced like the form's: an open board hears it within a second."""
    event, first, _second = board_with_questions(app, create_event, now, board_mode="moderated")
    hub = board_stream.hub_of(app)
    stream = hub.subscribe(event.id, moderator=False)
    if hub.listener is not None:  # the whole board, sent when the LISTEN connection came up, comes first
        assert hub.listener.listening.wait(10)
        while not stream.queue.get(timeout=10).startswith(b"event: snapshot"):
            pass
    token = make_token()
    started = time.monotonic()
    assert client.post(f"/api/v1/events/{event.slug}/questions/{first}/approve", headers=token).status_code == 200
    while True:
        kind, data = stream.queue.get(timeout=10).decode().split("\n", 1)
        if kind == "event: change":
            break
    assert time.monotonic() - started < 1.0
    assert [(q["id"], q["body"], q["state"]) for q in json.loads(data.removeprefix("data: "))["questions"]] == [
        (first, HOSTILE, "visible")]
