"""The question board in the API: its questions (public fields) for anyone who may read it, and moderation
with a write token.

Moderation runs the same domain functions as the board's moderation forms (domain/board.py), so every
open board hears of the change the same way (scheduler/live.py). The token acts as the organiser. The
operations are recorded here and routed by api.py with the others.
"""

from __future__ import annotations

from flask import jsonify

from .. import clock
from ..domain import board as rules
from ..errors import NotFound
from ..extensions import db
from ..models import Event, Question
from ..services import unit_of_work
from . import api_schemas as s
from .api_input import ApiError, find_event, parse_body
from .api_registry import operation

ORGANISER = rules.Actor(organiser=True)


def _public(question: Question) -> s.QuestionPublic:
    return s.QuestionPublic(
        id=question.id, text=question.body, name=question.shown_name, votes=question.votes, state=question.state,
        pinned=question.pinned, answered=question.state == "answered", answered_at=question.answered_at,
        created_at=question.created_at)


def _moderated(question: Question) -> s.QuestionModerated:
    return s.QuestionModerated(
        id=question.id, text=question.body, name=question.shown_name, votes=question.votes, state=question.state,
        pinned=question.pinned, answered=question.state == "answered", answered_at=question.answered_at,
        created_at=question.created_at, merged_into=question.merged_into_id)


def _listed(event: Event, actor: rules.Actor) -> tuple[dict, list[Question]]:
    """The board's fields, and its questions as the board shows them: the pinned one, the open ones by votes,
    the answered ones, then (moderators only) those waiting and those taken off."""
    board = rules.read_board(db.session, event, actor, now=clock.now())
    shown = [board.pinned] if board.pinned else []
    shown += board.open + board.answered + board.pending + board.hidden
    fields = {"event": event.slug, "mode": event.board_mode, "readable_by_visitors": bool(event.board_public),
              "open": board.closed is None, "closed_reason": board.closed}
    return fields, shown


@operation("GET", "/events/<slug>/questions", summary="The questions on an event's board, as visitors see them",
           ok={200: s.BoardPublic}, errors=(403, 404), tag="board")
def questions(slug: str):
    event = find_event(slug)
    if event.status == "draft":
        raise NotFound("No event with that slug.")
    if not rules.can_read(event, rules.VISITOR):
        raise ApiError(403, "members_only", "The organiser keeps this board for registrants: it is not public.")
    fields, shown = _listed(event, rules.VISITOR)
    return jsonify(s.BoardPublic(**fields, questions=[_public(q) for q in shown]).model_dump(mode="json"))


@operation("GET", "/events/<slug>/questions/all", summary="Every question of the board, for moderators",
           ok={200: s.BoardModerated}, scope="write", errors=(404,), tag="board")
def questions_all(slug: str):
    fields, shown = _listed(find_event(slug), ORGANISER)
    return jsonify(s.BoardModerated(**fields, questions=[_moderated(q) for q in shown]).model_dump(mode="json"))


def _moderation(action: str, summary: str):
    """The operation that runs rules.ACTIONS[action] on one question and answers the question as changed."""

    def view(slug: str, question_id: int):
        with unit_of_work() as uow:
            event = find_event(slug)
            question = rules.ACTIONS[action](uow.session, event, ORGANISER, question_id, now=uow.now)
        return jsonify(_moderated(question).model_dump(mode="json"))

    view.__name__ = view.__qualname__ = f"question_{action}"
    operation("POST", f"/events/<slug>/questions/<int:question_id>/{action}", summary=summary,
              ok={200: s.QuestionModerated}, scope="write", errors=(404,), tag="board")(view)


_moderation("approve", "Put a waiting (or hidden) question on the board")
_moderation("hide", "Take a question off the board (moderators still see it)")
_moderation("answered", "Mark a question answered (it is unpinned)")
_moderation("pin", "Pin a question as the one being answered now (the one pinned before is unpinned)")
_moderation("unpin", "Unpin a question")


@operation("POST", "/events/<slug>/questions/<int:question_id>/merge",
           summary="Merge a duplicate into another question: its votes move there; answers the question kept",
           ok={200: s.QuestionModerated}, scope="write", body=s.MergeRequest, errors=(404,), tag="board")
def question_merge(slug: str, question_id: int):
    with unit_of_work() as uow:
        event = find_event(slug)
        data = parse_body(s.MergeRequest)
        kept = rules.merge(uow.session, event, ORGANISER, question_id, data.into, now=uow.now)
    return jsonify(_moderated(kept).model_dump(mode="json"))
