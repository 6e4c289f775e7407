"""Question board rules through the domain functions, on SQLite and PostgreSQL: asking, votes, moderation,
modes, the closed board, the rate limit and who may do what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from scheduler.domain import board, signups
from scheduler.domain.events import update_event
from scheduler.errors import Conflict, InvalidInput, NotFound
from scheduler.extensions import db
from scheduler.models import EventSpeaker, Question, Registration, Vote

SECRET = "test-secret-key"
ORGANISER = board.Actor(organiser=True)


def join(event, name: str, now, **kw) -> Registration:
    registration = signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@example.org", now=now,
                                   secret=SECRET, **kw).registration
    db.session.commit()
    return registration


def as_(registration: Registration) -> board.Actor:
    return board.Actor(registration=registration)


def ask(event, registration, body="What is next?", *, now, **kw) -> Question:
    question = board.ask(db.session, event, as_(registration), body=body, now=now, **kw)
    db.session.commit()
    return question


def votes_in_table(question_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Vote).where(Vote.question_id == question_id))


def refused(error, call, *args, **kwargs):
    """The call raises `error`, and nothing it did stays."""
    with pytest.raises(error) as caught:
        call(db.session, *args, **kwargs)
    db.session.rollback()
    return caught.value


# --- asking ------------------------------------------------------------------------------------

def test_ask_on_an_open_board_is_visible_under_the_chosen_name(create_event, now):
    event = create_event()
    ada = join(event, "Ada", now)
    named = ask(event, ada, "Will it stay open?", now=now)
    anonymous = ask(event, ada, "And the governance?", now=now, anonymous=True)
    assert (named.state, named.shown_name, named.body) == ("visible", "Ada", "Will it stay open?")
    assert (anonymous.state, anonymous.display_name, anonymous.shown_name) == ("visible", "", "Anonymous")
    seen = board.read_board(db.session, event, board.VISITOR, now=now)
    assert [q.id for q in seen.open] == [named.id, anonymous.id]


def test_ask_on_a_moderated_board_waits_for_approval(create_event, now):
    event = create_event(board_mode="moderated")
    ada, bob = join(event, "Ada", now), join(event, "Bob", now)
    question = ask(event, ada, now=now)
    assert question.state == "pending"
    assert board.read_board(db.session, event, as_(bob), now=now).open == []
    own = board.read_board(db.session, event, as_(ada), now=now)
    assert (own.open, [q.id for q in own.own_waiting]) == ([], [question.id])
    assert [q.id for q in board.read_board(db.session, event, ORGANISER, now=now).pending] == [question.id]
    refused(NotFound, board.vote, event, as_(bob), question.id, now=now)  # invisible to others: not there
    board.approve(db.session, event, ORGANISER, question.id, now=now)
    db.session.commit()
    assert [q.id for q in board.read_board(db.session, event, as_(bob), now=now).open] == [question.id]


def test_hostile_text_is_kept_as_text_without_control_characters(create_event, now):
    event = create_event()
    ada = join(event, "Ada <b>", now)
    question = ask(event, ada, "  <script>alert(1)</script>\u202e =1+1\x00\r\nline two  ", now=now)
    assert question.body == "<script>alert(1)</script> =1+1\r\nline two"
    assert question.display_name == "Ada <b>"


@pytest.mark.parametrize(("body", "message"), [
    ("", "Write your question first."),
    ("   \n\t ", "Write your question first."),
    ("x" * 501, "Keep your question to 500 characters (this one has 501)."),
])
def test_ask_refuses_empty_and_too_long_questions(create_event, now, body, message):
    event = create_event()
    ada = join(event, "Ada", now)
    error = refused(InvalidInput, board.ask, event, as_(ada), body=body, now=now)
    assert (error.message, error.fields) == (message, {"body": [message]})
    assert db.session.scalar(select(func.count()).select_from(Question)) == 0


def test_rate_limit_counts_recent_questions_from_the_table(create_event, now):
    event = create_event()
    ada, bob = join(event, "Ada", now), join(event, "Bob", now)
    for n in range(board.RATE_LIMIT):
        ask(event, ada, f"Question {n}", now=now + timedelta(minutes=n))
    error = refused(board.RateLimited, board.ask, event, as_(ada), body="One more", now=now + timedelta(minutes=5))
    assert error.message == "You asked 5 questions in the last 10 minutes: wait a few minutes before asking another."
    ask(event, bob, "Someone else may", now=now + timedelta(minutes=5))
    # Ten minutes after the first, one more fits again.
    ask(event, ada, "Later", now=now + timedelta(minutes=10, seconds=1))
    assert db.session.scalar(select(func.count()).select_from(Question)) == 7


def test_signup_question_becomes_the_first_question_once_the_address_is_real(create_event, now):
    event = create_event(double_opt_in=True)
    pending = join(event, "Ada", now, question="How is it funded?")
    assert db.session.scalars(select(Question)).all() == []  # unconfirmed address: not on the board yet
    signups.confirm_email(db.session, pending, now=now)
    signups.confirm_email(db.session, pending, now=now)  # twice: still one
    db.session.commit()
    open_event = create_event()
    join(open_event, "Bob", now, question="  ")  # blank: nothing
    join(open_event, "Cy", now, question="<i>Roadmap?</i>")
    rows = [(q.event_id, q.registration_id is not None, q.body, q.shown_name, q.state)
            for q in db.session.scalars(select(Question).order_by(Question.id))]
    assert rows == [(event.id, True, "How is it funded?", "Ada", "visible"),
                    (open_event.id, True, "<i>Roadmap?</i>", "Cy", "visible")]


def test_a_waitlisted_signup_question_reaches_the_board_when_the_address_is_confirmed(create_event, now):
    event = create_event(double_opt_in=True, capacity=1)
    join(event, "Ada", now)
    waiting = join(event, "Bob", now, question="Will there be a recording?")
    assert waiting.state == "waitlisted"
    assert db.session.scalars(select(Question)).all() == []  # unconfirmed address: not yet
    assert signups.confirm_email(db.session, waiting, now=now) == "waitlisted"
    db.session.commit()
    assert [(q.registration_id, q.body) for q in db.session.scalars(select(Question))] == [
        (waiting.id, "Will there be a recording?")]


# --- voting ------------------------------------------------------------------------------------

def test_vote_toggles_and_keeps_the_count_in_step(create_event, now):
    event = create_event()
    ada, bob, cy = (join(event, n, now) for n in ("Ada", "Bob", "Cy"))
    question = ask(event, ada, now=now)
    assert board.vote(db.session, event, as_(bob), question.id, now=now)[1] is True
    assert board.vote(db.session, event, as_(cy), question.id, now=now)[1] is True
    db.session.commit()
    assert (question.votes, votes_in_table(question.id)) == (2, 2)
    assert board.vote(db.session, event, as_(bob), question.id, now=now)[1] is False  # taken back
    db.session.commit()
    assert (question.votes, votes_in_table(question.id)) == (1, 1)
    # An explicit "up" twice (a double click) is one vote.
    board.vote(db.session, event, as_(bob), question.id, up=True, now=now)
    board.vote(db.session, event, as_(bob), question.id, up=True, now=now)
    db.session.commit()
    assert (question.votes, votes_in_table(question.id)) == (2, 2)
    seen = board.read_board(db.session, event, as_(bob), now=now)
    assert seen.voted == {question.id}


def test_nobody_votes_for_their_own_question(create_event, now):
    event = create_event()
    ada = join(event, "Ada", now)
    question = ask(event, ada, now=now)
    error = refused(board.NotAllowed, board.vote, event, as_(ada), question.id, now=now)
    assert error.message == "That is your own question: votes are for other people's."
    assert votes_in_table(question.id) == 0


def test_board_orders_by_votes_then_age(create_event, now):
    event = create_event()
    ada, bob, cy = (join(event, n, now) for n in ("Ada", "Bob", "Cy"))
    first = ask(event, ada, "first", now=now)
    second = ask(event, bob, "second", now=now + timedelta(seconds=1))
    third = ask(event, cy, "third", now=now + timedelta(seconds=2))
    for voter in (ada, bob):
        board.vote(db.session, event, as_(voter), third.id, now=now)
    board.vote(db.session, event, as_(ada), second.id, now=now)
    db.session.commit()
    assert [q.body for q in board.read_board(db.session, event, board.VISITOR, now=now).open] == [
        "third", "second", "first"]
    top, total = board.top_questions(db.session, event, limit=2)
    assert ([q.id for q in top], total) == ([third.id, second.id], 3)
    assert first.id not in [q.id for q in top]


# --- moderation --------------------------------------------------------------------------------

def test_pin_keeps_one_pinned_question_per_event(create_event, now):
    event = create_event()
    ada, bob = join(event, "Ada", now), join(event, "Bob", now)
    one, two = ask(event, ada, "one", now=now), ask(event, bob, "two", now=now)
    board.pin(db.session, event, ORGANISER, one.id, now=now)
    db.session.commit()
    board.pin(db.session, event, ORGANISER, two.id, now=now)
    db.session.commit()
    db.session.expire_all()
    assert (db.session.get(Question, one.id).pinned, db.session.get(Question, two.id).pinned) == (False, True)
    seen = board.read_board(db.session, event, board.VISITOR, now=now)
    assert (seen.pinned.id, [q.id for q in seen.open]) == (two.id, [one.id])
    board.mark_answered(db.session, event, ORGANISER, two.id, now=now)
    db.session.commit()
    seen = board.read_board(db.session, event, board.VISITOR, now=now)
    assert (seen.pinned, [q.id for q in seen.answered]) == (None, [two.id])
    assert two.answered_at == now
    # Answered questions take no more votes.
    refused(Conflict, board.vote, event, as_(ada), two.id, now=now)


def test_pin_refuses_pending_and_hidden_questions(create_event, now):
    event = create_event(board_mode="moderated")
    ada = join(event, "Ada", now)
    question = ask(event, ada, now=now)
    assert refused(Conflict, board.pin, event, ORGANISER, question.id, now=now).message == (
        "Approve that question before pinning it.")
    board.approve(db.session, event, ORGANISER, question.id, now=now)
    board.hide(db.session, event, ORGANISER, question.id, now=now)
    db.session.commit()
    assert refused(Conflict, board.pin, event, ORGANISER, question.id, now=now).message == (
        "That question is hidden: show it again first.")
    assert db.session.get(Question, question.id).pinned is False


def test_hide_takes_a_question_off_the_board_and_unpins_it(create_event, now):
    event = create_event()
    ada = join(event, "Ada", now)
    question = ask(event, ada, now=now)
    board.pin(db.session, event, ORGANISER, question.id, now=now)
    board.hide(db.session, event, ORGANISER, question.id, now=now)
    db.session.commit()
    assert (question.state, question.pinned) == ("hidden", False)
    assert board.read_board(db.session, event, board.VISITOR, now=now).total == 0
    assert [q.id for q in board.read_board(db.session, event, ORGANISER, now=now).hidden] == [question.id]
    assert [q.id for q in board.read_board(db.session, event, as_(ada), now=now).own_waiting] == [question.id]


def test_merge_moves_votes_without_counting_anyone_twice(create_event, now):
    event = create_event()
    ada, bob, cy, dee = (join(event, n, now) for n in ("Ada", "Bob", "Cy", "Dee"))
    kept = ask(event, ada, "Is it open?", now=now)
    duplicate = ask(event, bob, "Will it stay open?", now=now)
    board.vote(db.session, event, as_(cy), kept.id, now=now)  # Cy voted for both
    board.vote(db.session, event, as_(cy), duplicate.id, now=now)
    board.vote(db.session, event, as_(dee), duplicate.id, now=now)  # Dee only for the duplicate
    board.vote(db.session, event, as_(ada), duplicate.id, now=now)  # the kept question's asker
    board.pin(db.session, event, ORGANISER, duplicate.id, now=now)
    db.session.commit()
    result = board.merge(db.session, event, ORGANISER, duplicate.id, kept.id, now=now)
    db.session.commit()
    assert result.id == kept.id
    voters = set(db.session.scalars(select(Vote.registration_id).where(Vote.question_id == kept.id)))
    assert voters == {cy.id, dee.id}
    assert (kept.votes, votes_in_table(kept.id)) == (2, 2)
    assert (duplicate.votes, votes_in_table(duplicate.id), duplicate.merged_into_id) == (0, 0, kept.id)
    assert (duplicate.state, duplicate.pinned, kept.pinned) == ("hidden", False, True)  # the pin moved over
    assert board.question_data(duplicate, moderator=True)["state"] == "merged"
    assert board.question_data(duplicate, moderator=False) == {"id": duplicate.id, "state": "hidden"}
    # A merged question takes no votes and no further moderation.
    refused(Conflict, board.vote, event, as_(dee), duplicate.id, now=now)
    refused(Conflict, board.approve, event, ORGANISER, duplicate.id, now=now)


def test_merge_refuses_itself_and_other_boards(create_event, now):
    event, other = create_event(), create_event()
    ada = join(event, "Ada", now)
    elsewhere = ask(other, join(other, "Bob", now), now=now)
    question = ask(event, ada, now=now)
    assert refused(InvalidInput, board.merge, event, ORGANISER, question.id, question.id, now=now).fields == {
        "into": ["A question cannot be merged with itself."]}
    assert refused(InvalidInput, board.merge, event, ORGANISER, question.id, elsewhere.id, now=now).fields == {
        "into": ["Choose a question of this board to merge it with."]}
    assert db.session.get(Question, question.id).merged_into_id is None


# --- who may do what, and when ------------------------------------------------------------------

def test_only_active_registrants_of_the_event_ask_and_vote(create_event, now):
    event, other = create_event(), create_event()
    ada, bob = join(event, "Ada", now), join(event, "Bob", now)
    outsider = join(other, "Eve", now)
    question = ask(event, ada, now=now)
    assert refused(board.NotAllowed, board.ask, event, as_(outsider), body="Hi", now=now).message == (
        "Only people registered for this event can ask questions.")
    refused(board.NotAllowed, board.vote, event, board.VISITOR, question.id, now=now)
    refused(board.NotAllowed, board.ask, event, board.VISITOR, body="Hi", now=now)
    signups.cancel_registration(db.session, bob, now=now)
    db.session.commit()
    assert refused(board.NotAllowed, board.vote, event, as_(bob), question.id, now=now).message == (
        "Your registration is cancelled: only registered people can vote.")
    assert not board.can_read(event, as_(bob))
    assert board.can_read(event, as_(ada))


def test_moderators_are_the_organiser_and_hosts_and_moderators_by_their_link(create_event, now):
    event = create_event(speakers=[("Hal Host", "host"), ("Mo Moderator", "moderator"), ("Pat Panel", "panelist")])
    other = create_event(speakers=[("Oz Other", "host")])
    ada = join(event, "Ada", now)
    question = ask(event, ada, now=now)
    links = {link.speaker.name: link for link in event.speakers}
    for name in ("Hal Host", "Mo Moderator"):
        actor = board.Actor(speaker_link=links[name])
        board.pin(db.session, event, actor, question.id, now=now)
        board.unpin(db.session, event, actor, question.id, now=now)
    db.session.commit()
    panelist = board.Actor(speaker_link=links["Pat Panel"])
    assert refused(board.NotAllowed, board.hide, event, panelist, question.id, now=now).message == (
        "Only the organiser and the event's hosts and moderators moderate the board.")
    refused(board.NotAllowed, board.hide, event, as_(ada), question.id, now=now)
    assert refused(board.NotAllowed, board.hide, event, board.Actor(speaker_link=other.speakers[0]), question.id,
                   now=now).message == "That private link is for another event."
    assert db.session.get(Question, question.id).state == "visible"


def test_speaker_private_link_finds_only_hosts_and_moderators(create_event, now):
    event = create_event(speakers=[("Hal Host", "host"), ("Pat Panel", "panelist")])
    host, panelist = event.speakers
    token = board.moderator_token(SECRET, host, host.speaker)
    assert board.find_speaker_link(db.session, host.id, token, secret=SECRET) is host
    assert board.find_speaker_link(db.session, host.id, token[:-1] + ("A" if token[-1] != "A" else "B"),
                                   secret=SECRET) is None
    assert board.find_speaker_link(db.session, panelist.id, board.moderator_token(SECRET, panelist, panelist.speaker),
                                   secret=SECRET) is None
    assert board.find_speaker_link(db.session, 999, token, secret=SECRET) is None
    # Revoking the speaker's private feed revokes this link too.
    from scheduler.domain import speaker_feeds
    speaker_feeds.revoke_feed(db.session, host.speaker, secret=SECRET)
    db.session.commit()
    assert board.find_speaker_link(db.session, host.id, token, secret=SECRET) is None
    assert isinstance(host, EventSpeaker)


def test_moderator_question_goes_up_at_once_on_a_moderated_board(create_event, now):
    event = create_event(board_mode="moderated")
    question = board.ask(db.session, event, ORGANISER, body="From the chat: what about ARM?", now=now,
                         display_name="From the chat")
    db.session.commit()
    assert (question.state, question.registration_id, question.shown_name) == ("visible", None, "From the chat")


def test_board_closes_when_the_event_ends(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=1))
    ada, bob = join(event, "Ada", now), join(event, "Bob", now)
    question = ask(event, ada, now=now)
    after = event.ends_at
    assert refused(board.BoardClosed, board.ask, event, as_(ada), body="Late", now=after).message == (
        "The event has ended: the board is closed and stays as it was.")
    refused(board.BoardClosed, board.vote, event, as_(bob), question.id, now=after)
    refused(board.BoardClosed, board.pin, event, ORGANISER, question.id, now=after)
    seen = board.read_board(db.session, event, board.VISITOR, now=after)
    assert ([q.id for q in seen.open], seen.closed) == ([question.id], "The event has ended: the board is closed "
                                                                       "and stays as it was.")
    assert (question.votes, question.pinned) == (0, False)


def test_cancelled_event_board_is_closed(create_event, now):
    from scheduler.domain.events import cancel_event

    event = create_event()
    ada = join(event, "Ada", now)
    cancel_event(db.session, event, now=now)
    db.session.commit()
    assert refused(board.BoardClosed, board.ask, event, as_(ada), body="Hi", now=now).message == (
        "The event was cancelled: the board is closed.")


def test_visitors_read_only_when_the_organiser_allows_it(create_event, now):
    event = create_event()
    assert not board.can_read(event, board.VISITOR)
    update_event(db.session, event, now=now, board_public=True)
    db.session.commit()
    assert board.can_read(event, board.VISITOR)
    draft = create_event(publish=False, board_public=True)
    assert not board.can_read(draft, board.VISITOR)
    assert board.can_read(draft, ORGANISER)


def test_update_event_takes_the_board_settings_and_checks_the_mode(create_event, now):
    event = create_event()
    assert update_event(db.session, event, now=now, board_mode="moderated", board_public=True) == {
        "board_mode", "board_public"}
    db.session.commit()
    assert (event.board_mode, event.board_public) == ("moderated", True)
    error = refused(InvalidInput, update_event, event, now=now, board_mode="chaos")
    assert error.fields == {"board_mode": ["Choose one of: open, moderated."]}
    assert db.session.get(type(event), event.id).board_mode == "moderated"


def _board_texts(event) -> list[tuple[str, str]]:
    db.session.expire_all()
    return [(q.body, q.state) for q in db.session.scalars(
        select(Question).where(Question.event_id == event.id).order_by(Question.id))]


def test_a_question_edited_on_the_manage_page_shows_on_the_board(create_event, now):
    event = create_event()
    ada = join(event, "Ada", now, question="First thought")
    assert _board_texts(event) == [("First thought", "visible")]
    signups.update_question(db.session, ada, question="Better thought", now=now)
    db.session.commit()
    assert _board_texts(event) == [("Better thought", "visible")]  # no votes yet: changed in place
    bob = join(event, "Bob", now)
    board.vote(db.session, event, as_(bob), db.session.scalar(select(Question.id)), now=now)
    db.session.commit()
    signups.update_question(db.session, ada, question="Third thought", now=now)
    db.session.commit()
    # What Bob voted for stays as it was; the new text is a question of its own.
    assert _board_texts(event) == [("Better thought", "visible"), ("Third thought", "visible")]


def test_an_edited_question_waits_for_approval_again_on_a_moderated_board(create_event, now):
    event = create_event()
    update_event(db.session, event, now=now, board_mode="moderated")
    ada = join(event, "Ada", now, question="Innocent")
    board.approve(db.session, event, board.Actor(organiser=True), db.session.scalar(select(Question.id)), now=now)
    db.session.commit()
    signups.update_question(db.session, ada, question="Changed after approval", now=now)
    db.session.commit()
    assert _board_texts(event) == [("Changed after approval", "pending")]


def test_a_question_added_on_the_manage_page_joins_the_board(create_event, now):
    event = create_event()
    ada = join(event, "Ada", now)
    signups.update_question(db.session, ada, question="Asked later", now=now)
    db.session.commit()
    assert _board_texts(event) == [("Asked later", "visible")]
