"""The question board: asking, voting and moderating, who may do which, and when the board is open.

Who is acting is an `Actor`: a registrant (by their private link), the organiser (signed in), or a
speaker by their own private link. Registrants with an active registration ask and vote; moderators
(the organiser, speakers with the host or moderator role) approve, hide, merge, mark answered and
pin. The board opens when the event is published and closes, read-only, when it ends.

Votes: one per registrant per question, taken back by voting again; nobody votes for their own
question (its asker's interest is the question itself, and a vote of one's own would only push it up).

Every change announces the questions it touched (scheduler/live.py), so open boards show it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session, joinedload, lazyload

from .. import live, signals
from ..errors import Conflict, InvalidInput, NotAllowed, NotFound, RateLimited
from ..models import ACTIVE_STATES, Event, EventSpeaker, Question, Registration, Speaker, Vote
from ..text import one_line, strip_controls
from ..tokens import derive, looks_like_token, token_hash
from .queries import lock_event

#: The longest question, in characters.
MAX_LENGTH = 500
#: A registrant asks at most RATE_LIMIT questions in any RATE_WINDOW.
RATE_LIMIT = 5
RATE_WINDOW = timedelta(minutes=10)
#: Speaker roles that moderate the board.
MODERATOR_ROLES = ("host", "moderator")
#: The briefing's "top questions" and the presenter view's "next up".
TOP = 10
NEXT_UP = 5
#: States shown to everyone who may read the board.
SHOWN_STATES = ("visible", "answered")


class BoardClosed(Conflict):
    """The board is closed."""

    code = "board_closed"


@dataclass(frozen=True)
class Actor:
    """Who is looking at or acting on a board."""

    registration: Registration | None = None
    #: A speaker's link to the event, when the speaker came by their private link.
    speaker_link: EventSpeaker | None = None
    organiser: bool = False

    @property
    def moderator(self) -> bool:
        return self.organiser or (self.speaker_link is not None and self.speaker_link.role in MODERATOR_ROLES)

    @property
    def registrant(self) -> bool:
        return self.registration is not None and self.registration.state in ACTIVE_STATES


VISITOR = Actor()


# --- when and who ------------------------------------------------------------------------------

def closed_reason(event: Event, *, now: datetime) -> str | None:
    """Why nobody can ask, vote or moderate now; None while the board is open."""
    if event.status == "cancelled":
        return "The event was cancelled: the board is closed."
    if event.status != "published":
        return "The board opens when the event is published."
    if now >= event.ends_at:
        return "The event has ended: the board is closed and stays as it was."
    return None


def check_open(event: Event, *, now: datetime) -> None:
    reason = closed_reason(event, now=now)
    if reason:
        raise BoardClosed(reason)


def can_read(event: Event, actor: Actor) -> bool:
    """Moderators always; registrants of the event while registered; visitors when the organiser allows it."""
    if actor.moderator:
        return True
    if event.status not in ("published", "cancelled"):
        return False
    if actor.registration is not None and actor.registration.event_id == event.id and actor.registrant:
        return True
    return bool(event.board_public)


def _check_moderator(event: Event, actor: Actor) -> None:
    if actor.speaker_link is not None and actor.speaker_link.event_id != event.id:
        raise NotAllowed("That private link is for another event.")
    if not actor.moderator:
        raise NotAllowed("Only the organiser and the event's hosts and moderators moderate the board.")


def _check_registrant(event: Event, actor: Actor, doing: str) -> Registration:
    """The actor's registration when it may `doing` ("ask" or "vote"); each refusal a whole sentence to translate."""
    registration = actor.registration
    if registration is None or registration.event_id != event.id:
        if doing == "vote":
            raise NotAllowed("Only people registered for this event can vote.")
        raise NotAllowed("Only people registered for this event can ask questions.")
    if not actor.registrant:
        state = {"state": registration.state}
        if doing == "vote":
            raise NotAllowed("Your registration is %(state)s: only registered people can vote.", params=state)
        raise NotAllowed("Your registration is %(state)s: only registered people can ask questions.", params=state)
    return registration


# --- registrants' private links ----------------------------------------------------------------

def find_registrant(session: Session, token: str) -> Registration | None:
    """The registration behind a private board link (or None), with its event but not the event's tags and speakers.

    Every vote and question starts here: the event's tags and speakers (eager elsewhere: two more queries
    and most of a vote's time) load only if a page reads them.
    """
    if not looks_like_token(token):
        return None
    return session.scalar(REGISTRANT_BY_TOKEN, {"token_hash": token_hash(token)})


#: The hot path's statements are built once: building one (its loader options above all) costs more than
#: running it, and a vote is most of a busy board's requests.
REGISTRANT_BY_TOKEN = select(Registration).where(Registration.token_hash == bindparam("token_hash")).options(
    joinedload(Registration.event).options(lazyload(Event.tags), lazyload(Event.speakers)))


# --- speakers' private links --------------------------------------------------------------------

PURPOSE = "board"


def moderator_token(secret: str, link: EventSpeaker, speaker: Speaker) -> str:
    """The private link's token of one speaker at one event (their feed's nonce revokes both)."""
    return derive(secret, PURPOSE, link.id, speaker.feed_nonce or "")


def find_speaker_link(session: Session, link_id: int, token: str, *, secret: str) -> EventSpeaker | None:
    """The speaker's link to an event behind a private board link, or None (also for a role that does not moderate)."""
    if not looks_like_token(token):
        return None
    link = session.get(EventSpeaker, link_id)
    if link is None or link.role not in MODERATOR_ROLES:
        return None
    if not hmac.compare_digest(moderator_token(secret, link, link.speaker), token):
        return None
    return link


# --- asking ------------------------------------------------------------------------------------

def clean_body(body: str) -> str:
    """The question as stored: control characters out, the outer blank space trimmed; HTML stays text."""
    return strip_controls(body or "").strip()


def check_body(body: str) -> str:
    text = clean_body(body)
    if not text:
        raise InvalidInput("Write your question first.", field="body")
    if len(text) > MAX_LENGTH:
        raise InvalidInput("Keep your question to %(max)s characters (this one has %(length)s).",
                           field="body", params={"max": MAX_LENGTH, "length": len(text)})
    return text


def ask(session: Session, event: Event, actor: Actor, *, body: str, anonymous: bool = False, now: datetime,
        display_name: str = "") -> Question:
    """Put a question on the board: visible at once on an open board, pending approval on a moderated one.

    A registrant asks under their name or as "Anonymous", at most RATE_LIMIT times in RATE_WINDOW;
    a moderator's question (one read out from the chat, say) goes up at once under `display_name`.
    """
    check_open(event, now=now)
    text = check_body(body)
    if actor.moderator and actor.registration is None:
        _check_moderator(event, actor)
        question = _add(session, event, None, text, one_line(display_name)[:200], "visible", now)
    else:
        registration = _check_registrant(event, actor, "ask")
        # Locked, so two questions sent at once are counted one after the other.
        session.scalar(select(Registration.id).where(Registration.id == registration.id).with_for_update())
        recent = session.scalar(select(func.count()).select_from(Question).where(
            Question.registration_id == registration.id, Question.created_at > now - RATE_WINDOW)) or 0
        if recent >= RATE_LIMIT:
            raise RateLimited("You asked %(count)s questions in the last %(minutes)s minutes: wait a few minutes "
                              "before asking another.", params={"count": recent, "minutes": RATE_WINDOW.seconds // 60})
        name = "" if anonymous else one_line(registration.name)[:200]
        state = "pending" if event.board_mode == "moderated" else "visible"
        question = _add(session, event, registration.id, text, name, state, now)
    return question


def _add(session: Session, event: Event, registration_id: int | None, text: str, name: str, state: str,
         now: datetime) -> Question:
    question = Question(event_id=event.id, registration_id=registration_id, body=text, display_name=name,
                        state=state, pinned=False, votes=0, created_at=now, updated_at=now)
    session.add(question)
    session.flush()
    live.announce(session, event.id, [question.id])
    return question


def add_signup_question(session: Session, registration: Registration, *, now: datetime) -> Question | None:
    """The question given at signup becomes the registrant's first on the board, once their address is known
    to be real (confirmed by the link, or no confirmation asked); never twice, and not after they asked there."""
    if not (registration.question or "").strip() or registration.email_verified_at is None:
        return None
    if session.scalar(select(Question.id).where(Question.registration_id == registration.id).limit(1)) is not None:
        return None
    event = registration.event
    state = "pending" if event.board_mode == "moderated" else "visible"
    return _add(session, event, registration.id, clean_body(registration.question),
                one_line(registration.name)[:200], state, now)


@signals.registration_confirmed.connect
@signals.registration_waitlisted.connect
@signals.registration_promoted.connect
@signals.registration_verified.connect
def on_registered(registration: Registration, *, session: Session, now: datetime, **_) -> None:
    if (registration.question or "").strip():  # no query for the many signups without a question
        add_signup_question(session, registration, now=now)


@signals.registration_question_changed.connect
def on_question_changed(registration: Registration, *, session: Session, now: datetime, previous: str, **_) -> None:
    """The signup question edited on the manage page: the board shows the new text.

    Still unanswered and without votes, the board's copy of the old text is changed in place (on a
    moderated board it waits for approval again); otherwise, nothing anyone voted for changes, and the
    new text is a question of its own. A closed board is left as it is.
    """
    event = registration.event
    if closed_reason(event, now=now) is not None or not (registration.question or "").strip():
        return
    asked = session.scalar(select(Question).where(
        Question.registration_id == registration.id, Question.body == clean_body(previous),
        Question.state.in_(("pending", "visible")), Question.votes == 0, Question.merged_into_id.is_(None))
        .order_by(Question.id).limit(1)) if previous.strip() else None
    if asked is None:
        if registration.email_verified_at is not None and registration.state in ("confirmed", "pending", "waitlisted"):
            state = "pending" if event.board_mode == "moderated" else "visible"
            _add(session, event, registration.id, clean_body(registration.question),
                 one_line(registration.name)[:200], state, now)
        return
    asked.body = clean_body(registration.question)
    asked.updated_at = now
    if event.board_mode == "moderated":
        asked.state, asked.pinned = "pending", False
    session.flush()
    live.announce(session, event.id, [asked.id])


# --- voting ------------------------------------------------------------------------------------

#: Built once too, like REGISTRANT_BY_TOKEN: every vote runs them.
QUESTION_LOCKED = (select(Question).where(Question.id == bindparam("question_id"),
                                          Question.event_id == bindparam("event_id"))
                   .with_for_update().execution_options(populate_existing=True))
VOTE_OF = select(Vote.question_id).where(Vote.question_id == bindparam("question_id"),
                                         Vote.registration_id == bindparam("registration_id"))


def _locked_question(session: Session, event: Event, question_id: int) -> Question:
    question = session.scalar(QUESTION_LOCKED, {"question_id": question_id, "event_id": event.id})
    if question is None:
        raise NotFound("No such question on this board.")
    return question


def vote(session: Session, event: Event, actor: Actor, question_id: int, *, up: bool | None = None,
         now: datetime) -> tuple[Question, bool]:
    """Vote for a question, or take the vote back: `up` True or False, or None to toggle.

    Returns the question and whether the registrant's vote is on it now. Repeating a vote (a double
    click) changes nothing.
    """
    check_open(event, now=now)
    registration = _check_registrant(event, actor, "vote")
    question = _locked_question(session, event, question_id)
    if question.merged_into_id is not None:
        raise Conflict("That question was merged with another one: vote for that one instead.")
    if question.state not in SHOWN_STATES and question.registration_id != registration.id:
        raise NotFound("No such question on this board.")
    if question.registration_id == registration.id:
        raise NotAllowed("That is your own question: votes are for other people's.")
    if question.state != "visible":
        raise Conflict("That question has been answered: votes are for the ones still open.")
    has = session.scalar(VOTE_OF, {"question_id": question.id, "registration_id": registration.id}) is not None
    wanted = (not has) if up is None else up
    if wanted and not has:
        session.execute(insert(Vote).values(question_id=question.id, registration_id=registration.id, created_at=now))
        question.votes += 1
    elif has and not wanted:
        session.execute(delete(Vote).where(Vote.question_id == question.id, Vote.registration_id == registration.id))
        question.votes -= 1
    else:
        return question, has
    question.updated_at = now
    session.flush()
    live.announce(session, event.id, [question.id])
    return question, wanted


# --- moderating --------------------------------------------------------------------------------

def approve(session: Session, event: Event, actor: Actor, question_id: int, *, now: datetime) -> Question:
    """Put a pending (or hidden) question on the board."""
    question = _moderated(session, event, actor, question_id, now=now)
    if question.state in ("pending", "hidden"):
        question.state = "visible"
    return _done(session, question, now)


def hide(session: Session, event: Event, actor: Actor, question_id: int, *, now: datetime) -> Question:
    """Take a question off the board (it stays in the moderators' list and can be shown again)."""
    question = _moderated(session, event, actor, question_id, now=now)
    question.state = "hidden"
    question.pinned = False
    return _done(session, question, now)


def mark_answered(session: Session, event: Event, actor: Actor, question_id: int, *, now: datetime) -> Question:
    """Answered: it moves to the answered list, and is no longer "now answering"."""
    question = _moderated(session, event, actor, question_id, now=now)
    if question.state == "pending":
        raise Conflict("Approve that question before marking it answered.")
    if question.state == "hidden":
        raise Conflict("That question is hidden: show it again first.")
    question.state = "answered"
    question.answered_at = question.answered_at or now
    question.pinned = False
    return _done(session, question, now)


def pin(session: Session, event: Event, actor: Actor, question_id: int, *, now: datetime) -> Question:
    """Make this the question being answered now; the one pinned before is unpinned."""
    question = _moderated(session, event, actor, question_id, now=now)
    if question.state != "visible":
        raise Conflict({"pending": "Approve that question before pinning it.",
                        "hidden": "That question is hidden: show it again first.",
                        "answered": "That question is answered already."}[question.state])
    if question.pinned:
        return question
    previous = session.scalars(select(Question).where(Question.event_id == event.id, Question.pinned.is_(True),
                                                      Question.id != question.id)).all()
    for other in previous:
        other.pinned = False
        other.updated_at = now
    session.flush()  # the old pin goes before the new one: one pinned per event, by a unique index
    question.pinned = True
    changed = _done(session, question, now)
    live.announce(session, event.id, [q.id for q in previous])
    return changed


def unpin(session: Session, event: Event, actor: Actor, question_id: int, *, now: datetime) -> Question:
    question = _moderated(session, event, actor, question_id, now=now)
    question.pinned = False
    return _done(session, question, now)


def merge(session: Session, event: Event, actor: Actor, question_id: int, into_id: int, *,
          now: datetime) -> Question:
    """Fold a duplicate into another question: its votes move there (nobody's counted twice, nor the
    other question's asker), and it leaves the board. Returns the question kept."""
    source = _moderated(session, event, actor, question_id, now=now)  # an unknown question is a 404 first
    if question_id == into_id:
        raise InvalidInput("A question cannot be merged with itself.", field="into")
    try:
        target = _locked_question(session, event, into_id)
    except NotFound:
        raise InvalidInput("Choose a question of this board to merge it with.", field="into") from None
    if target.merged_into_id is not None:
        raise Conflict("That question was itself merged into another one: merge into that one.")
    already = select(Vote.registration_id).where(Vote.question_id == target.id)
    moving = (Vote.question_id == source.id) & Vote.registration_id.not_in(already)
    if target.registration_id is not None:
        moving &= Vote.registration_id != target.registration_id
    session.execute(update(Vote).where(moving).values(question_id=target.id)
                    .execution_options(synchronize_session=False))
    session.execute(delete(Vote).where(Vote.question_id == source.id).execution_options(synchronize_session=False))
    # Duplicates merged into this one before now point at the question kept.
    earlier = session.scalars(select(Question.id).where(Question.merged_into_id == source.id)).all()
    session.execute(update(Question).where(Question.merged_into_id == source.id)
                    .values(merged_into_id=target.id, updated_at=now).execution_options(synchronize_session=False))
    was_pinned = source.pinned
    source.votes = 0
    source.state = "hidden"
    source.pinned = False
    source.merged_into_id = target.id
    source.updated_at = now
    session.flush()
    target.votes = session.scalar(select(func.count()).select_from(Vote).where(Vote.question_id == target.id)) or 0
    if was_pinned and target.state == "visible":
        target.pinned = True
    target.updated_at = now
    session.flush()
    live.announce(session, event.id, [source.id, target.id, *earlier])
    return target


#: The moderation actions a form may ask for, by name.
ACTIONS = {"approve": approve, "hide": hide, "answered": mark_answered, "pin": pin, "unpin": unpin}


def _moderated(session: Session, event: Event, actor: Actor, question_id: int, *, now: datetime) -> Question:
    """The question, locked for a moderator's change on an open board."""
    _check_moderator(event, actor)
    check_open(event, now=now)
    lock_event(session, event.id)  # moderators' changes (pins above all) one at a time per event
    question = _locked_question(session, event, question_id)
    if question.merged_into_id is not None:
        raise Conflict("That question was merged into another one.")
    return question


def _done(session: Session, question: Question, now: datetime) -> Question:
    question.updated_at = now
    session.flush()
    live.announce(session, question.event_id, [question.id])
    return question


# --- reading -----------------------------------------------------------------------------------

def order(questions):
    """Most votes first, then the earliest asked."""
    return sorted(questions, key=lambda q: (-q.votes, q.created_at, q.id))


@dataclass
class Board:
    """One reader's view of a board: what they may see, in the order shown."""

    event: Event
    actor: Actor
    #: The question being answered now, if any (and shown to this reader).
    pinned: Question | None = None
    #: Open questions, most votes first (the pinned one not among them).
    open: list[Question] = field(default_factory=list)
    answered: list[Question] = field(default_factory=list)
    #: Moderators only: waiting for approval, and taken off the board (hidden or merged).
    pending: list[Question] = field(default_factory=list)
    hidden: list[Question] = field(default_factory=list)
    #: A registrant's own questions that are not on the board (waiting, or hidden).
    own_waiting: list[Question] = field(default_factory=list)
    #: Ids of the questions this registrant voted for, and of their own.
    voted: set[int] = field(default_factory=set)
    own: set[int] = field(default_factory=set)
    closed: str | None = None

    @property
    def next_up(self) -> list[Question]:
        return self.open[:NEXT_UP]

    @property
    def total(self) -> int:
        return len(self.open) + len(self.answered) + (1 if self.pinned else 0)


def read_board(session: Session, event: Event, actor: Actor, *, now: datetime) -> Board:
    """The board as `actor` sees it. The caller has checked can_read."""
    query = select(Question).where(Question.event_id == event.id)
    registration_id = actor.registration.id if actor.registration is not None else None
    if not actor.moderator:
        shown = Question.state.in_(SHOWN_STATES)
        query = query.where(shown | (Question.registration_id == registration_id) if registration_id else shown)
    board = Board(event=event, actor=actor, closed=closed_reason(event, now=now))
    for question in order(session.scalars(query)):
        if question.registration_id is not None and question.registration_id == registration_id:
            board.own.add(question.id)
        if question.merged_into_id is not None or question.state == "hidden":
            (board.hidden if actor.moderator else board.own_waiting).append(question)
        elif question.state == "pending":
            (board.pending if actor.moderator else board.own_waiting).append(question)
        elif question.state == "answered":
            board.answered.append(question)
        elif question.pinned:
            board.pinned = question
        else:
            board.open.append(question)
    if registration_id is not None:
        board.voted = set(session.scalars(select(Vote.question_id).join(Question).where(
            Vote.registration_id == registration_id, Question.event_id == event.id)))
    return board


def top_questions(session: Session, event: Event, *, limit: int = TOP) -> tuple[list[Question], int]:
    """The questions on the board with the most votes (answered ones too), and how many are on it."""
    shown = (Question.event_id == event.id) & Question.state.in_(SHOWN_STATES) & Question.merged_into_id.is_(None)
    questions = list(session.scalars(select(Question).where(shown)
                                     .order_by(Question.votes.desc(), Question.created_at, Question.id).limit(limit)))
    total = session.scalar(select(func.count()).select_from(Question).where(shown)) or 0
    return questions, total


def question_data(question: Question, *, moderator: bool) -> dict:
    """What a board's live update says about a question: everything for moderators, and for everyone
    else the public fields of a question on the board, or only that it is not (no text, no name)."""
    on_board = question.state in SHOWN_STATES and question.merged_into_id is None
    if not (moderator or on_board):
        return {"id": question.id, "state": "hidden" if question.merged_into_id else question.state}
    data = {"id": question.id, "body": question.body, "name": question.shown_name, "votes": question.votes,
            "state": question.state, "pinned": question.pinned, "created": question.created_at.isoformat()}
    if moderator:
        data["merged_into"] = question.merged_into_id
        if question.merged_into_id is not None:
            data["state"] = "merged"
    return data
