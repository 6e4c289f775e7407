"""The board's live channel: a committed change reaches open boards (in-process on SQLite, LISTEN/NOTIFY across
connections on PostgreSQL), a rolled-back one never does, and moderators alone get a pending question's text."""

from __future__ import annotations

import json
import queue
import threading
import time

import pytest

from scheduler import live
from scheduler.domain import board as rules
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.web import board_stream
from tests.support import csrf_token, token_for

#: Each test measures how soon a change reaches a board: run alone (pyproject: the timing marker).
pytestmark = pytest.mark.timing

#: The promise: a change shows on every open board within a second.
WITHIN = 1.0


def join(app, event, name: str, now):
    registration = signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@example.org", now=now,
                                   secret=app.config["SECRET_KEY"]).registration
    db.session.commit()
    return registration


def ready(hub: board_stream.Hub) -> None:
    """On PostgreSQL, wait until the hub's LISTEN connection is up (changes before it would be missed)."""
    if hub.listener is not None:
        assert hub.listener.listening.wait(10)


def next_change(stream: board_stream.Stream, timeout: float = 10.0) -> dict:
    """The next "change" message on the stream (snapshots sent when the LISTEN connection came up are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        chunk = stream.queue.get(timeout=max(0.01, deadline - time.monotonic())).decode()
        kind, data = chunk.split("\n", 1)
        if kind == "event: change":
            return json.loads(data.removeprefix("data: "))


def test_a_committed_question_reaches_open_boards_and_a_rolled_back_one_never(app, create_event, now):
    event = create_event(board_mode="moderated")
    ada = rules.Actor(registration=join(app, event, "Ada", now))
    hub = board_stream.hub_of(app)
    everyone, moderators = hub.subscribe(event.id, moderator=False), hub.subscribe(event.id, moderator=True)
    ready(hub)
    rules.ask(db.session, event, ada, body="Never sent", now=now)
    db.session.rollback()
    started = time.monotonic()
    question = rules.ask(db.session, event, ada, body="<b>Sent</b>", now=now)
    db.session.commit()
    for_moderators = next_change(moderators)
    assert time.monotonic() - started < WITHIN
    assert [(q["id"], q["body"], q["state"]) for q in for_moderators["questions"]] == [
        (question.id, "<b>Sent</b>", "pending")]
    # Everyone else learns only that a question is waiting: no text, no name.
    assert next_change(everyone) == {"questions": [{"id": question.id, "state": "pending"}]}
    rules.approve(db.session, event, rules.Actor(organiser=True), question.id, now=now)
    db.session.commit()
    approved = next_change(everyone)["questions"]
    assert [(q["id"], q["body"], q["state"], q["votes"]) for q in approved] == [
        (question.id, "<b>Sent</b>", "visible", 0)]


def test_pin_sends_the_question_unpinned_with_the_one_pinned(app, create_event, now):
    event = create_event()
    ada = rules.Actor(registration=join(app, event, "Ada", now))
    one = rules.ask(db.session, event, ada, body="one", now=now)
    two = rules.ask(db.session, event, ada, body="two", now=now)
    rules.pin(db.session, event, rules.Actor(organiser=True), one.id, now=now)
    db.session.commit()
    hub = board_stream.hub_of(app)
    stream = hub.subscribe(event.id, moderator=False)
    ready(hub)
    rules.pin(db.session, event, rules.Actor(organiser=True), two.id, now=now)
    db.session.commit()
    pins = {q["id"]: q["pinned"] for q in next_change(stream)["questions"]}
    assert pins == {one.id: False, two.id: True}


def test_postgres_notify_crosses_connections(app, backend, create_event, now):
    """A NOTIFY sent by another connection (another worker, another machine) reaches this process's Listener."""
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    import psycopg

    heard: queue.Queue = queue.Queue()
    stop = threading.Event()
    listener = live.Listener(db.engine.url, lambda event_id, ids: heard.put((event_id, ids)), stop)
    listener.start()
    try:
        assert listener.listening.wait(10)
        conninfo = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo) as other:  # a transaction of its own: heard at its commit only
            other.execute("SELECT pg_notify(%s, %s)", (live.CHANNEL, live.format_payload(7, [3, 1])))
            other.execute("SELECT pg_notify(%s, %s)", (live.CHANNEL, "not a payload"))
            assert heard.empty()
        assert heard.get(timeout=WITHIN) == (7, frozenset({1, 3}))
    finally:
        stop.set()
        listener.join(timeout=5)


def test_live_stream_delivers_a_vote_made_through_another_request(app, client, create_event, now):
    """The SSE response itself: the snapshot first, then a vote sent by someone else within a second."""
    event = create_event()
    ada_registration = join(app, event, "Ada", now)
    bob = token_for(app, join(app, event, "Bob", now))
    question = rules.ask(db.session, event, rules.Actor(registration=ada_registration), body="Q?", now=now)
    db.session.commit()
    response = client.get(f"/r/{token_for(app, ada_registration)}/questions/live", buffered=False)
    chunks: queue.Queue = queue.Queue()

    def read():
        for chunk in response.response:
            chunks.put(chunk.decode())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    snapshot = chunks.get(timeout=10)
    assert [q["votes"] for q in json.loads(snapshot.split("data: ", 1)[1])["questions"]] == [0]
    ready(board_stream.hub_of(app))
    page = f"/r/{bob}/questions"
    started = time.monotonic()
    assert client.post(f"{page}/{question.id}/vote", data={"csrf_token": csrf_token(client, page), "up": "1"},
                       headers={"Accept": "application/json"}).status_code == 200
    while True:
        chunk = chunks.get(timeout=10)
        if chunk.startswith("event: change"):
            break
    assert time.monotonic() - started < WITHIN + 0.5  # the request itself is in the measured time
    assert [(q["id"], q["votes"]) for q in json.loads(chunk.split("data: ", 1)[1])["questions"]] == [(question.id, 1)]
    board_stream.stop(app)  # ends every open stream, this one too
    reader.join(timeout=10)
    assert not reader.is_alive()
    response.close()


def test_changes_go_out_in_rounds_a_quarter_second_apart(app, create_event, now):
    """Changes waiting when a round starts share one message; a change after a quiet spell goes out at once,
    and the next round comes ROUND_SECONDS after it, so a board under a stream of votes gets a few writes a
    second, not one per vote."""
    event = create_event()
    ada = rules.Actor(registration=join(app, event, "Ada", now))
    one, two, three = (rules.ask(db.session, event, ada, body=text, now=now) for text in ("one", "two", "three"))
    db.session.commit()
    ids = (one.id, two.id, three.id)
    hub = board_stream.hub_of(app)
    stream = hub.subscribe(event.id, moderator=False)
    ready(hub)
    if hub.listener is not None:  # the whole board, sent when the LISTEN connection came up, comes first
        while not stream.queue.get(timeout=10).startswith(b"event: snapshot"):
            pass
    before = time.monotonic()
    hub.notify(event.id, frozenset({ids[0]}))
    assert [q["id"] for q in next_change(stream)["questions"]] == [ids[0]]
    hub.notify(event.id, frozenset({ids[1]}))
    hub.notify(event.id, frozenset({ids[2]}))
    second = next_change(stream)
    # A timed wait may wake a hair early: a millisecond of slack, far below a round.
    assert time.monotonic() - before >= board_stream.ROUND_SECONDS - 0.001
    seen = {q["id"] for q in second["questions"]}
    if seen != {ids[1], ids[2]}:  # this thread was held up past the round: the last one comes in the next
        seen |= {q["id"] for q in next_change(stream)["questions"]}
    assert seen == {ids[1], ids[2]}


def test_open_boards_end_once_their_process_is_told_to_stop_and_so_do_boards_opened_after(app, create_event):
    event = create_event()
    hub = board_stream.hub_of(app)
    stopping = threading.Event()
    board_stream.end_streams_when(app, stopping.is_set)
    first = hub.subscribe(event.id, moderator=False)
    ready(hub)
    stopping.set()

    def ends(stream: board_stream.Stream) -> bool:
        """Whether the stream gets its end mark (None) within a second; snapshots may come before it."""
        deadline = time.monotonic() + 1.0
        while True:
            try:
                if stream.queue.get(timeout=max(0.0, deadline - time.monotonic())) is None:
                    return True
            except queue.Empty:
                return False

    assert ends(first)
    assert ends(hub.subscribe(event.id, moderator=True))
