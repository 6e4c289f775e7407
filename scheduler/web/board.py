"""The question board's pages: read it, ask and vote by a registrant's private link, moderate, present, stream.

One board, reached four ways, each deciding who is looking (an `Actor`):
    /events/<slug>/questions                   visitors, when the organiser lets them read it
    /r/<token>/questions                       a registrant: ask and vote
    /s/<link id>/<token>/questions             a host or moderator speaker, by their private link
    /admin/events/<event id>/questions         the organiser, signed in
each with /presenter (the pinned question large, the next five) and /live (Server-Sent Events).
Forms POST and answer 303 back to the board; a refusal shows the board again with its message and
status (422, 403, 404, 409, 429), nothing changed. board.js, where it runs, updates the lists live and
sends votes without reloading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from sqlalchemy import select
from wtforms import IntegerField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from .. import clock
from ..domain import board as rules
from ..errors import DomainError
from ..extensions import db
from ..forms import ConfirmForm, Form, require_confirmation
from ..models import Event
from ..services import UnitOfWork, unit_of_work
from . import board_stream
from .refusals import fields_of, message_of, refusal_json, status_of

bp = Blueprint("board", __name__)
# The hub is made with the app (its thread starts with the first open board): it needs the app itself.
bp.record_once(lambda state: board_stream.install(state.app))

class AskForm(Form):
    body = TextAreaField(_l("Your question"), validators=[
        DataRequired(message=_l("Write your question first.")),
        Length(max=rules.MAX_LENGTH, message=_l("Keep your question to %(num)s characters.", num=rules.MAX_LENGTH))])
    shown_as = RadioField(_l("Show it under"), choices=[SelectChoice("name", _l("My name")),
                                                        SelectChoice("anonymous", _l("Anonymous"))], default="name")
    #: A moderator's question: the name it goes up under ("From the chat"), Anonymous when empty.
    display_name = StringField(_l("Shown as"), validators=[Optional(), Length(max=200)],
                               description=_l("Such as “From the chat”; Anonymous when empty."))


class MergeForm(Form):
    into = IntegerField(_l("Merge into question number"), validators=[
        InputRequired(message=_l("Give the number of the question to keep.")),
        NumberRange(min=1, message=_l("Give the number of the question to keep."))])


@dataclass
class Place:
    """Where the board was reached from: the event, who is looking, and the addresses of its actions."""

    event: Event
    actor: rules.Actor
    #: "public", "registrant", "speaker" or "organiser".
    kind: str
    #: The endpoint prefix's arguments (token, link id and token, event id, or slug).
    args: dict

    def url(self, what: str, **values) -> str:
        return url_for(f"board.{self.kind}{'_' + what if what else ''}", **self.args, **values)

    @property
    def moderator(self) -> bool:
        return self.actor.moderator


# --- who is looking --------------------------------------------------------------------------------

def public_place(slug: str) -> Place:
    event = db.session.scalar(select(Event).where(Event.slug == slug))
    if event is None or event.status == "draft":
        abort(404)
    place = Place(event, rules.VISITOR, "public", {"slug": slug})
    if not rules.can_read(event, place.actor):
        abort(make_response(render_template("board/members_only.html", event=event), 403))
    return place


def registrant_place(token: str) -> Place:
    registration = rules.find_registrant(db.session, token)
    if registration is None:  # a wrong or revoked link
        abort(404)
    place = Place(registration.event, rules.Actor(registration=registration), "registrant", {"token": token})
    if not rules.can_read(place.event, place.actor):
        abort(make_response(render_template("board/members_only.html", event=place.event,
                                            registration=registration, token=token), 403))
    return place


def speaker_place(link_id: int, token: str) -> Place:
    link = rules.find_speaker_link(db.session, link_id, token, secret=current_app.config["SECRET_KEY"])
    if link is None:
        abort(404)
    return Place(link.event, rules.Actor(speaker_link=link), "speaker", {"link_id": link_id, "token": token})


def organiser_place(event_id: int) -> Place:
    event = db.session.get(Event, event_id)
    if event is None:
        abort(404)
    return Place(event, rules.Actor(organiser=True), "organiser", {"event_id": event_id})


# --- pages -----------------------------------------------------------------------------------------

def board_page(place: Place, *, ask_form: AskForm | None = None, merge_form: MergeForm | None = None,
               status: int = 200, message: str | None = None):
    now = clock.now()
    shown = rules.read_board(db.session, place.event, place.actor, now=now)
    may_ask = place.actor.registrant or place.moderator
    if ask_form is None and may_ask:
        ask_form = AskForm()
    page = render_template("board/board.html", place=place, board=shown, event=place.event, ask_form=ask_form,
                           merge_form=merge_form or MergeForm(), action_form=ConfirmForm(), message=message,
                           max_length=rules.MAX_LENGTH)
    return page, status


def presenter_page(place: Place):
    shown = rules.read_board(db.session, place.event, place.actor, now=clock.now())
    return render_template("board/presenter.html", place=place, board=shown, event=place.event)


def wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def change(place: Place, action: Callable[[UnitOfWork], str | dict | None], *, anchor: str = "",
           ask_form: AskForm | None = None, merge_form: MergeForm | None = None):
    """Run a change on the board: 303 back with its message, or the board again with the refusal."""
    require_confirmation()
    try:
        with unit_of_work() as uow:
            done = action(uow)
    except DomainError as exc:
        if wants_json():
            return refusal_json(exc)
        if ask_form is not None and exc.fields:
            ask_form.show_errors(fields_of(exc))
        elif merge_form is not None and exc.fields:
            merge_form.show_errors(fields_of(exc))
        return board_page(place, ask_form=ask_form, merge_form=merge_form, status=status_of(exc),
                          message=message_of(exc))
    if isinstance(done, dict):  # a vote sent by board.js
        return jsonify(done)
    if done:
        flash(done, "success")
    return redirect(place.url("") + anchor, code=303)


def ask(place: Place):
    form = AskForm()
    if not form.validate_on_submit():
        return board_page(place, ask_form=form, status=422)

    def act(uow):
        question = rules.ask(uow.session, place.event, place.actor, body=form.body.data or "",
                             anonymous=form.shown_as.data == "anonymous", display_name=form.display_name.data or "",
                             now=uow.now)
        if question.state == "pending":
            return _("Thanks: your question waits for a moderator's approval.")
        return _("Your question is on the board.")

    return change(place, act, anchor="#board-ask", ask_form=form)


def vote(place: Place, question_id: int):
    wanted = request.form.get("up")
    up = {"1": True, "0": False}.get(wanted or "")

    def act(uow):
        question, voted = rules.vote(uow.session, place.event, place.actor, question_id, up=up, now=uow.now)
        if wants_json():
            return {"id": question.id, "votes": question.votes, "voted": voted}
        return None

    return change(place, act, anchor=f"#q{question_id}")


MODERATION = ("approve", "hide", "answered", "pin", "unpin", "merge")


def moderate(place: Place, question_id: int, action: str):
    if action not in MODERATION:
        abort(404)
    form = MergeForm() if action == "merge" else None
    if form is not None and not form.validate_on_submit():
        return board_page(place, merge_form=form, status=422,
                          message=" ".join(str(m) for messages in form.errors.values() for m in messages))

    def act(uow):
        if action == "merge":
            kept = rules.merge(uow.session, place.event, place.actor, question_id, form.into.data, now=uow.now)
            return _("Question %(merged)s is merged into question %(kept)s.", merged=question_id, kept=kept.id)
        rules.ACTIONS[action](uow.session, place.event, place.actor, question_id, now=uow.now)
        return {"approve": _("Approved."), "hide": _("Hidden."), "answered": _("Marked answered."),
                "pin": _("Pinned: now answering."), "unpin": _("Unpinned.")}[action]

    return change(place, act, anchor=f"#q{question_id}", merge_form=form)


def stream(place: Place):
    return board_stream.respond(board_stream.hub_of(current_app), place.event.id, moderator=place.moderator)


@bp.app_template_global("board_shows")
def shows(expr: str, question, board: rules.Board) -> bool:
    """Whether a control marked data-show=`expr` applies to `question` (board.js decides the same way live)."""
    flags = {"merged" if question.merged_into_id else question.state, "pinned" if question.pinned else "unpinned",
             "own" if question.id in board.own else "others", "voted" if question.id in board.voted else "unvoted"}
    return any(all(term in flags for term in option.split("+")) for option in expr.split())


# --- the URL table ---------------------------------------------------------------------------------

@bp.get("/events/<slug>/questions")
def public(slug: str):
    return board_page(public_place(slug))


@bp.get("/events/<slug>/questions/presenter")
def public_presenter(slug: str):
    return presenter_page(public_place(slug))


@bp.get("/events/<slug>/questions/live")
def public_live(slug: str):
    return stream(public_place(slug))


@bp.route("/r/<token>/questions", methods=["GET", "POST"])
def registrant(token: str):
    place = registrant_place(token)
    return ask(place) if request.method == "POST" else board_page(place)


@bp.post("/r/<token>/questions/<int:question_id>/vote")
def registrant_vote(token: str, question_id: int):
    return vote(registrant_place(token), question_id)


@bp.get("/r/<token>/questions/live")
def registrant_live(token: str):
    return stream(registrant_place(token))


@bp.route("/s/<int:link_id>/<token>/questions", methods=["GET", "POST"])
def speaker(link_id: int, token: str):
    place = speaker_place(link_id, token)
    return ask(place) if request.method == "POST" else board_page(place)


@bp.post("/s/<int:link_id>/<token>/questions/<int:question_id>/<action>")
def speaker_moderate(link_id: int, token: str, question_id: int, action: str):
    return moderate(speaker_place(link_id, token), question_id, action)


@bp.get("/s/<int:link_id>/<token>/questions/presenter")
def speaker_presenter(link_id: int, token: str):
    return presenter_page(speaker_place(link_id, token))


@bp.get("/s/<int:link_id>/<token>/questions/live")
def speaker_live(link_id: int, token: str):
    return stream(speaker_place(link_id, token))


@bp.route("/admin/events/<int:event_id>/questions", methods=["GET", "POST"])
@login_required
def organiser(event_id: int):
    place = organiser_place(event_id)
    return ask(place) if request.method == "POST" else board_page(place)


@bp.post("/admin/events/<int:event_id>/questions/<int:question_id>/<action>")
@login_required
def organiser_moderate(event_id: int, question_id: int, action: str):
    return moderate(organiser_place(event_id), question_id, action)


@bp.get("/admin/events/<int:event_id>/questions/presenter")
@login_required
def organiser_presenter(event_id: int):
    return presenter_page(organiser_place(event_id))


@bp.get("/admin/events/<int:event_id>/questions/live")
@login_required
def organiser_live(event_id: int):
    return stream(organiser_place(event_id))


@bp.after_request
def private(response):
    """A speaker's private pages are never stored by a cache (the registrant's and organiser's already aren't)."""
    if request.path.startswith("/s/"):
        response.headers["Cache-Control"] = "no-store"
    return response

