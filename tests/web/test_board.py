"""The question board's pages through the test client: forms with CSRF and 303s, refusals with their status and
nothing changed, private links, hostile text escaped, the moderation and presenter views, the links to the board."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from scheduler.domain import board as rules
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.models import Question, Vote
from tests.support import csrf_token, token_for

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def join(app, event, name: str, now, **kw):
    registration = signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@example.org", now=now,
                                   secret=app.config["SECRET_KEY"], **kw).registration
    db.session.commit()
    return registration, token_for(app, registration)


def questions() -> list[tuple[str, str, str]]:
    db.session.expire_all()
    return [(q.body, q.display_name, q.state) for q in db.session.scalars(select(Question).order_by(Question.id))]


def post(client, page: str, path: str, data: dict | None = None, **kwargs):
    """POST a board form with the CSRF token read from the board page, as the browser would."""
    return client.post(path, data={"csrf_token": csrf_token(client, page), **(data or {})}, **kwargs)


def ask(client, token: str, body: str, **fields):
    page = f"/r/{token}/questions"
    return post(client, page, page, {"body": body, "shown_as": "name", **fields})


def speaker_link(app, event, role_index: int = 0) -> str:
    link = event.speakers[role_index]
    return f"/s/{link.id}/{rules.moderator_token(app.config['SECRET_KEY'], link, link.speaker)}/questions"


# --- asking ------------------------------------------------------------------------------------

def test_registrant_asks_and_gets_303_back_to_the_board_with_text_escaped(app, client, create_event, now):
    event = create_event()
    _, token = join(app, event, "Ada", now)
    response = ask(client, token, HOSTILE)
    assert (response.status_code, response.headers["Location"]) == (303, f"/r/{token}/questions#board-ask")
    page = client.get(f"/r/{token}/questions").get_data(as_text=True)
    assert "Your question is on the board." in page
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert questions() == [(HOSTILE, "Ada", "visible")]


def test_ask_as_anonymous_hides_the_name(app, client, create_event, now):
    event = create_event(board_public=True)
    _, token = join(app, event, "Ada Secret", now)
    assert ask(client, token, "Who decides?", shown_as="anonymous").status_code == 303
    page = client.get(f"/events/{event.slug}/questions").get_data(as_text=True)
    assert "Who decides?" in page and "Anonymous" in page and "Ada Secret" not in page


def test_ask_without_csrf_token_is_refused_and_writes_nothing(app, client, create_event, now):
    event = create_event()
    _, token = join(app, event, "Ada", now)
    response = client.post(f"/r/{token}/questions", data={"body": "Hello?", "shown_as": "name"})
    assert response.status_code == 400
    assert questions() == []


@pytest.mark.parametrize(("body", "message"), [
    ("", "Write your question first."),
    ("x" * 501, "Keep your question to 500 characters."),
    ("  \x00  ", "Write your question first."),
])
def test_invalid_question_answers_422_with_the_message_beside_the_field(app, client, create_event, now, body, message):
    event = create_event()
    _, token = join(app, event, "Ada", now)
    response = ask(client, token, body)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'aria-invalid="true"' in page
    assert questions() == []


def test_sixth_question_in_ten_minutes_answers_429(app, client, create_event, now):
    event = create_event()
    _, token = join(app, event, "Ada", now)
    for n in range(rules.RATE_LIMIT):
        assert ask(client, token, f"Question {n}").status_code == 303
    response = ask(client, token, "One too many")
    assert response.status_code == 429
    assert "wait a few minutes before asking another" in response.get_data(as_text=True)
    assert len(questions()) == rules.RATE_LIMIT


def test_moderated_board_keeps_a_new_question_from_others_until_approved(app, client, auth, create_event, now):
    event = create_event(board_mode="moderated")
    _, ada = join(app, event, "Ada", now)
    _, bob = join(app, event, "Bob", now)
    response = ask(client, ada, "Pending question?")
    assert response.status_code == 303
    assert "waits for a moderator" in client.get(f"/r/{ada}/questions").get_data(as_text=True)
    assert "Pending question?" not in client.get(f"/r/{bob}/questions").get_data(as_text=True)
    question_id = db.session.scalar(select(Question.id))
    admin = f"/admin/events/{event.id}/questions"
    assert "Pending question?" in client.get(admin).get_data(as_text=True)
    response = post(client, admin, f"{admin}/{question_id}/approve")
    assert (response.status_code, response.headers["Location"]) == (303, f"{admin}#q{question_id}")
    assert "Pending question?" in client.get(f"/r/{bob}/questions").get_data(as_text=True)


# --- voting ------------------------------------------------------------------------------------

def test_vote_form_303s_and_the_json_vote_answers_the_count(app, client, create_event, now):
    event = create_event()
    ada_registration, ada = join(app, event, "Ada", now)
    _, bob = join(app, event, "Bob", now)
    question = rules.ask(db.session, event, rules.Actor(registration=ada_registration), body="Q?", now=now)
    db.session.commit()
    page, path = f"/r/{bob}/questions", f"/r/{bob}/questions/{question.id}/vote"
    response = post(client, page, path, {"up": "1"})
    assert (response.status_code, response.headers["Location"]) == (303, f"{page}#q{question.id}")
    assert "Upvoted · take back" in client.get(page).get_data(as_text=True)
    response = post(client, page, path, {"up": "0"}, headers={"Accept": "application/json"})
    assert (response.status_code, response.get_json()) == (200, {"id": question.id, "votes": 0, "voted": False})
    response = post(client, page, path, {}, headers={"Accept": "application/json"})  # no "up": a toggle
    assert response.get_json() == {"id": question.id, "votes": 1, "voted": True}
    assert db.session.scalar(select(func.count()).select_from(Vote)) == 1


def test_refused_votes_answer_403_404_and_change_nothing(app, client, create_event, now):
    event = create_event()
    ada_registration, ada = join(app, event, "Ada", now)
    question = rules.ask(db.session, event, rules.Actor(registration=ada_registration), body="Mine", now=now)
    db.session.commit()
    page = f"/r/{ada}/questions"
    own = post(client, page, f"{page}/{question.id}/vote", {"up": "1"})
    assert own.status_code == 403
    assert "That is your own question" in own.get_data(as_text=True)
    as_json = post(client, page, f"{page}/{question.id}/vote", {"up": "1"}, headers={"Accept": "application/json"})
    assert (as_json.status_code, as_json.get_json()["error"]["code"]) == (403, "not_allowed")
    assert post(client, page, f"{page}/99999/vote", {"up": "1"}).status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Vote)) == 0


def test_bad_tokens_answer_404(app, client, create_event, now):
    event = create_event(speakers=[("Hal Host", "host")])
    _, token = join(app, event, "Ada", now)
    wrong = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for path in (f"/r/{wrong}/questions", f"/r/{wrong}/questions/live", "/r/short/questions",
                 speaker_link(app, event)[:-12] + "x" * 30 + "/questions",
                 f"/s/999/{token}/questions"):
        assert client.get(path).status_code == 404, path
    page = f"/r/{token}/questions"
    response = client.post(f"/r/{wrong}/questions/1/vote", data={"csrf_token": csrf_token(client, page)})
    assert response.status_code == 404


def test_cancelled_registrant_reads_a_403_page(app, client, create_event, now):
    event = create_event()
    registration, token = join(app, event, "Ada", now)
    signups.cancel_registration(db.session, registration, now=now)
    db.session.commit()
    response = client.get(f"/r/{token}/questions")
    assert response.status_code == 403
    assert "Your registration is cancelled" in response.get_data(as_text=True)


@contextmanager
def statements():
    """What each SQL statement run on the app's engine inside the block does, as "VERB table"."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        words = " ".join(statement.split())
        table = re.search(r"^(?:INSERT INTO|UPDATE|DELETE FROM) (\w+)|\bFROM (\w+)|^SELECT (pg_notify)", words)
        seen.append(f"{words.split()[0]} {next((t for t in table.groups() if t), '') if table else ''}".strip())

    sa_event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", note)


def plumbing() -> list[str]:
    """The transaction's own statements: SQLite's BEGIN IMMEDIATE, PostgreSQL's NOTIFY to the open boards."""
    return ["BEGIN"] if db.engine.dialect.name == "sqlite" else ["SELECT pg_notify"]


def test_a_vote_and_a_question_cost_a_fixed_few_statements(app, client, create_event, now):
    """The registrant is found with their event in one statement (not the event's tags and speakers, which a
    vote does not read); a vote then reads the question and the registrant's vote and writes both. A vote is
    most of a busy board's requests: a statement more each is a change to make on purpose, here."""
    event = create_event(tags=["python", "data"], speakers=[("Hal Host", "host"), ("Sue Speaker", "speaker")])
    ada_registration, ada = join(app, event, "Ada", now)
    _, bob = join(app, event, "Bob", now)
    question = rules.ask(db.session, event, rules.Actor(registration=ada_registration), body="Q?", now=now)
    db.session.commit()
    page, vote = f"/r/{bob}/questions", f"/r/{bob}/questions/{question.id}/vote"
    token = csrf_token(client, page)
    db.session.remove()  # nothing already in the session: the request loads what it needs
    for up, votes in (("1", 1), ("0", 0)):
        with statements() as seen:
            response = client.post(vote, data={"csrf_token": token, "up": up},
                                   headers={"Accept": "application/json"})
        assert (response.status_code, response.get_json()["votes"]) == (200, votes)
        change = "INSERT question_votes" if up == "1" else "DELETE question_votes"
        assert sorted(seen) == sorted([*plumbing(), "SELECT registrations", "SELECT questions",
                                       "SELECT question_votes", change, "UPDATE questions"]), seen
    db.session.remove()
    with statements() as seen:
        response = client.post(page, data={"csrf_token": token, "body": "Mine?", "shown_as": "name"})
    assert response.status_code == 303
    assert sorted(seen) == sorted([*plumbing(), "SELECT registrations", "SELECT registrations",
                                   "SELECT questions", "INSERT questions"]), seen


# --- the closed board --------------------------------------------------------------------------

def test_board_after_the_event_is_read_only_409(app, client, create_event, now):
    event = create_event(starts_at=now + timedelta(hours=1))
    ada_registration, ada = join(app, event, "Ada", now)
    _, bob = join(app, event, "Bob", now)
    question = rules.ask(db.session, event, rules.Actor(registration=ada_registration), body="Before the end", now=now)
    db.session.commit()
    page = f"/r/{bob}/questions"
    token = csrf_token(client, page)
    after = event.ends_at + timedelta(minutes=1)
    app.config["CLOCK"] = lambda: after
    shown = client.get(page).get_data(as_text=True)
    assert "The event has ended: the board is closed" in shown and "Before the end" in shown
    assert "Send question" not in shown and "Upvote" not in shown
    refused = client.post(page, data={"csrf_token": token, "body": "Too late", "shown_as": "name"})
    assert refused.status_code == 409
    assert client.post(f"{page}/{question.id}/vote", data={"csrf_token": token, "up": "1"}).status_code == 409
    assert questions() == [("Before the end", "Ada", "visible")]
    assert db.session.scalar(select(func.count()).select_from(Vote)) == 0


# --- moderation --------------------------------------------------------------------------------

def test_host_moderates_by_private_link_and_panelist_has_none(app, client, create_event, now):
    event = create_event(speakers=[("Hal Host", "host"), ("Pat Panel", "panelist")])
    ada_registration, _ = join(app, event, "Ada", now)
    question = rules.ask(db.session, event, rules.Actor(registration=ada_registration), body=HOSTILE, now=now)
    db.session.commit()
    host = speaker_link(app, event, 0)
    page = client.get(host)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert HOSTILE not in page.get_data(as_text=True) and "Pin: answering now" in page.get_data(as_text=True)
    response = post(client, host, f"{host}/{question.id}/pin")
    assert (response.status_code, response.headers["Location"]) == (303, f"{host}#q{question.id}")
    assert db.session.get(Question, question.id).pinned is True
    presenter = client.get(f"{host}/presenter").get_data(as_text=True)
    assert "&lt;script&gt;" in presenter and HOSTILE not in presenter
    assert client.get(speaker_link(app, event, 1)).status_code == 404
    assert post(client, host, f"{host}/{question.id}/explode").status_code == 404


def test_merge_form_with_a_bad_number_answers_422(app, client, auth, create_event, now):
    event = create_event()
    ada_registration, _ = join(app, event, "Ada", now)
    question = rules.ask(db.session, event, rules.Actor(registration=ada_registration), body="Q", now=now)
    db.session.commit()
    admin = f"/admin/events/{event.id}/questions"
    for into, message in (("", "Give the number of the question to keep."),
                          (str(question.id), "A question cannot be merged with itself."),
                          ("424242", "Choose a question of this board to merge it with.")):
        response = post(client, admin, f"{admin}/{question.id}/merge", {"into": into})
        assert response.status_code == 422, into
        assert message in response.get_data(as_text=True)
    assert questions() == [("Q", "Ada", "visible")]


def test_pinning_a_pending_question_answers_409(app, client, auth, create_event, now):
    event = create_event(board_mode="moderated")
    ada_registration, _ = join(app, event, "Ada", now)
    question = rules.ask(db.session, event, rules.Actor(registration=ada_registration), body="Q", now=now)
    db.session.commit()
    admin = f"/admin/events/{event.id}/questions"
    response = post(client, admin, f"{admin}/{question.id}/pin")
    assert response.status_code == 409
    assert "Approve that question before pinning it." in response.get_data(as_text=True)
    assert db.session.get(Question, question.id).pinned is False


def test_organiser_pages_need_a_login(client, create_event):
    event = create_event()
    for path in (f"/admin/events/{event.id}/questions", f"/admin/events/{event.id}/questions/presenter",
                 f"/admin/events/{event.id}/questions/live"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"], path


def test_registrant_cannot_reach_moderation(app, client, create_event, now):
    event = create_event()
    _, token = join(app, event, "Ada", now)
    assert client.get(f"/r/{token}/questions/1/pin").status_code == 404
    page = client.get(f"/r/{token}/questions").get_data(as_text=True)
    assert "Pin: answering now" not in page and 'name="into"' not in page


# --- visitors and the links to the board --------------------------------------------------------

def test_visitors_read_the_board_only_when_allowed_and_never_ask(app, client, create_event, now):
    event = create_event()
    assert client.get(f"/events/{event.slug}/questions").status_code == 403
    assert client.get(f"/events/{event.slug}/questions/live").status_code == 403
    assert client.get("/events/no-such-event/questions").status_code == 404
    draft = create_event(publish=False, board_public=True)
    assert client.get(f"/events/{draft.slug}/questions").status_code == 404
    public = create_event(board_public=True)
    ada_registration, _ = join(app, public, "Ada", now)
    rules.ask(db.session, public, rules.Actor(registration=ada_registration), body="Open question", now=now)
    db.session.commit()
    page = client.get(f"/events/{public.slug}/questions").get_data(as_text=True)
    assert "Open question" in page and "Send question" not in page and "Upvote" not in page
    assert "Open question" in client.get(f"/events/{public.slug}/questions/presenter").get_data(as_text=True)


def test_event_page_and_manage_page_link_to_the_board(app, client, create_event, now):
    public, members = create_event(board_public=True), create_event()
    assert f'href="/events/{public.slug}/questions"' in client.get(f"/events/{public.slug}").get_data(as_text=True)
    members_page = client.get(f"/events/{members.slug}").get_data(as_text=True)
    assert "/questions" not in members_page and "Ask the speakers a question" in members_page
    _, token = join(app, members, "Ada", now)
    assert f'href="/r/{token}/questions"' in client.get(f"/r/{token}").get_data(as_text=True)


def test_admin_event_form_sets_the_board_settings(app, client, auth, create_event):
    event = create_event()
    form = client.get(f"/admin/events/{event.id}/edit").get_data(as_text=True)
    assert 'name="board_mode"' in form and 'name="board_public"' in form
    assert f'href="/admin/events/{event.id}/questions"' in form
    from scheduler.forms import EventForm, to_local

    data = {"title": event.title, "slug": event.slug, "kind": event.kind, "timezone": event.timezone,
            "starts_at": to_local(event.starts_at, event.timezone).strftime("%Y-%m-%dT%H:%M"),
            "ends_at": to_local(event.ends_at, event.timezone).strftime("%Y-%m-%dT%H:%M"),
            "join_url": event.join_url, "reminders": "1d", "briefing_offset": "3d", "nudge_offset": "15m",
            "thanks_offset": "1h", "board_mode": "moderated", "board_public": "y"}
    assert set(data) <= {f.name for f in EventForm(meta={"csrf": False})}
    response = auth.post(f"/admin/events/{event.id}/edit", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    db.session.expire_all()
    assert (event.board_mode, event.board_public) == ("moderated", True)
    response = auth.post(f"/admin/events/{event.id}/edit", data=data | {"board_mode": "chaos"})
    assert response.status_code == 422
    db.session.expire_all()
    assert event.board_mode == "moderated"


# --- the live stream's first message -------------------------------------------------------------

def test_live_stream_starts_with_the_board_as_this_reader_may_see_it(app, client, auth, create_event, now):
    event = create_event(board_mode="moderated", board_public=True)
    ada_registration, _ = join(app, event, "Ada", now)
    rules.ask(db.session, event, rules.Actor(registration=ada_registration), body="Secret until approved", now=now)
    rules.ask(db.session, event, rules.Actor(organiser=True), body=HOSTILE, display_name="Chat", now=now)
    db.session.commit()

    def first_message(path: str) -> dict:
        response = client.get(path, buffered=False)
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        assert response.headers["X-Accel-Buffering"] == "no"
        chunk = next(iter(response.response)).decode()
        response.close()
        assert chunk.startswith("retry: 1000\nevent: snapshot\ndata: ")
        return json.loads(chunk.split("data: ", 1)[1])

    public = first_message(f"/events/{event.slug}/questions/live")
    assert [q["body"] for q in public["questions"]] == [HOSTILE]
    moderator = first_message(f"/admin/events/{event.id}/questions/live")
    assert sorted(q["body"] for q in moderator["questions"]) == sorted([HOSTILE, "Secret until approved"])


def test_seed_demo_has_an_open_public_board_with_questions_and_votes(app, client, runner):
    from scheduler.cli import DEMO_SLUG
    from scheduler.models import OutboxMessage, Registration

    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    page = client.get(f"/events/{DEMO_SLUG}/questions")
    assert page.status_code == 200
    shown = [(q.body[:20], q.shown_name, q.votes) for q in db.session.scalars(
        select(Question).order_by(Question.votes.desc()))]
    assert shown == [("Will the governing b", "Anonymous", 3), ("How will the foundat", "Grace", 2),
                     ("What changes for som", "Margaret", 1)]
    assert "Will the governing board include individual contributors" in page.get_data(as_text=True)
    # The demo's registrants hold seats but are never mailed.
    assert db.session.scalar(select(func.count()).select_from(Registration)) == 4
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert "496 of 500 seats left" in client.get(f"/events/{DEMO_SLUG}").get_data(as_text=True)
