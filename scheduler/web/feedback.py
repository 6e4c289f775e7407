"""The registrant's feedback form, reached from the follow-up mail by their private link: one answer each."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from .. import clock
from ..domain import feedback, signups
from ..extensions import db
from ..follow_up_forms import FeedbackForm
from ..models import Registration
from ..tokens import looks_like_token
from .refusals import attempt, fields_of, message_of, status_of

bp = Blueprint("feedback", __name__)


def _registration(token: str) -> Registration:
    registration = signups.find_by_token(db.session, token) if looks_like_token(token) else None
    if registration is None:
        abort(404)
    return registration


def _page(registration: Registration, form: FeedbackForm, *, message: str | None = None, status: int = 200):
    return render_template("feedback/form.html", registration=registration, event=registration.event, form=form,
                           message=message), status


@bp.route("/r/<token>/feedback", methods=["GET", "POST"])
def form(token: str):
    """GET: the question (or why it cannot be answered). POST: the answer, taken once."""
    registration = _registration(token)
    form = FeedbackForm()
    given = feedback.existing(db.session, registration)
    if given is not None:
        return _page(registration, form, message="You have already given your feedback for this event. Thank you!",
                     status=409 if form.is_submitted() else 200)
    closed = feedback.closed_reason(registration, now=clock.now())
    if closed:
        return _page(registration, form, message=closed, status=409 if form.is_submitted() else 200)
    if not form.validate_on_submit():
        return _page(registration, form, status=422 if form.errors else 200)

    def refused(exc):
        if exc.fields:
            form.show_errors(fields_of(exc))
            return _page(registration, form, status=status_of(exc))
        return _page(registration, form, message=message_of(exc), status=status_of(exc))

    with attempt(refused=refused) as uow:
        feedback.give_feedback(uow.session, registration, rating=form.rating.data, comment=form.comment.data or "",
                               now=uow.now)
    return render_template("feedback/thanks.html", registration=registration, event=registration.event)
