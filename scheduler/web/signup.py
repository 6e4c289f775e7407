"""Attendee pages: the signup form, confirming an address, and the private manage page."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import bindparam, select

from ..domain import signups
from ..errors import DomainError
from ..extensions import csrf, db, limiter
from ..forms import ConfirmForm, QuestionForm, SignupForm
from ..models import Event, Registration, utcnow
from ..tokens import looks_like_token

bp = Blueprint("signup", __name__)


def signup_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT"]


def _hold_hours() -> float:
    return float(current_app.config["HOLD_EXPIRY_HOURS"])


@bp.route("/events/<slug>/signup", methods=["GET", "POST"])
@limiter.limit(signup_limit, methods=["POST"])
def form(slug: str):
    now = utcnow()
    form = SignupForm()
    posted = request.method == "POST"
    if posted and not form.website.data and form.validate():
        # Signed up by slug: the event is read by the statement that takes the seat, and only a
        # refusal reads it again, for the page that explains it. On a Core connection: a new
        # address needs no ORM session, whose set-up and commit cost as much as a statement.
        try:
            with db.engine.connect() as connection:
                result = signups.sign_up(connection, slug, name=form.name.data, email=form.email.data,
                                         question=form.question.data or "", timezone=form.timezone.data, now=now,
                                         secret=current_app.config["SECRET_KEY"], hold_hours=_hold_hours())
                connection.commit()
        except DomainError as exc:  # the connection has rolled back on leaving the block
            event = _public_event(slug)
            return render_template("signup/closed.html", event=event, message=exc.message), exc.status
        # Fresh signup or repeat, the page is the same: it must not tell whether the address was known.
        # result.event is a returned row, or a detached object: nothing in it expires with the commit.
        return render_template("signup/thanks.html", event=result.event, email=form.email.data)
    event = _public_event(slug)
    try:
        signups.check_open(event, now=now)
    except DomainError as exc:
        return render_template("signup/closed.html", event=event, message=exc.message), (
            exc.status if posted else 200)
    if not posted:
        form.timezone.data = event.timezone
        return _form_page(event, form)
    if form.website.data:
        # A bot filled the hidden field: it sees the usual page, nothing is stored or sent.
        return render_template("signup/thanks.html", event=event, email=form.email.data or "")
    return _form_page(event, form), 422


_SIGNUP_COLUMNS = [Event.__table__.c[name] for name in (
    "id", "slug", "title", "status", "timezone", "starts_at", "ends_at", "signup_opens_at", "signup_closes_at", "capacity",
    "seats_taken", "double_opt_in")]
_SIGNUP_EVENT = select(*_SIGNUP_COLUMNS).where(Event.__table__.c.slug == bindparam("slug"))


def _public_event(slug: str):
    """What the signup pages need of a published or cancelled event, as a plain row (no ORM object to expire)."""
    event = db.session.connection().execute(_SIGNUP_EVENT, {"slug": slug}).first()
    if event is None or event.status == "draft":
        abort(404)
    return event


def _form_page(event, form: SignupForm) -> str:
    return render_template("signup/form.html", event=event, form=form, seats_left=signups.seats_left(event))


def registration_for(token: str) -> Registration:
    """The registration behind a private link, or 404."""
    registration = signups.find_by_token(db.session, token) if looks_like_token(token) else None
    if registration is None:
        abort(404)
    return registration


def _manage_page(registration: Registration, token: str, question_form: QuestionForm) -> str:
    return render_template(
        "signup/manage.html", registration=registration, event=registration.event, token=token,
        position=signups.waitlist_position(db.session, registration), action_form=ConfirmForm(),
        question_form=question_form,
    )


@bp.get("/r/<token>")
def manage(token: str):
    registration = registration_for(token)
    return _manage_page(registration, token, QuestionForm(question=registration.question))


def _back(token: str):
    return redirect(url_for("signup.manage", token=token), code=303)


def _change(token: str, action) -> object:
    """Run one state change for the registration behind `token`; flash the domain's message on refusal."""
    registration = registration_for(token)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        message = action(registration, utcnow())
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(token)
    if message:
        flash(message, "success")
    return _back(token)


@bp.route("/r/<token>/confirm", methods=["GET", "POST"])
def confirm(token: str):
    """GET shows a button (mail scanners follow links); POST confirms."""
    registration = registration_for(token)
    if request.method == "GET":
        return render_template("signup/confirm.html", registration=registration, event=registration.event,
                               token=token, action_form=ConfirmForm())

    def do(reg, now):
        state = signups.confirm_email(db.session, reg, now=now, hold_hours=_hold_hours())
        return {"confirmed": "Your place is confirmed. The calendar invitation is on its way.",
                "waitlisted": "Thanks, your email address is confirmed. You keep your place on the waitlist.",
                "pending": "Your seat is held until you confirm."}.get(state, "Thanks.")

    return _change(token, do)


@bp.post("/r/<token>/cancel")
def cancel(token: str):
    def do(reg, now):
        signups.cancel_registration(db.session, reg, now=now, hold_hours=_hold_hours())
        return "Your registration is cancelled. Thanks for letting us know."

    return _change(token, do)


@bp.post("/r/<token>/reminders")
def reminders(token: str):
    opt_out = request.form.get("opt_out") == "1"

    def do(reg, now):
        signups.set_reminders(db.session, reg, opt_out=opt_out, now=now)
        return "You will not get reminders for this event." if opt_out else "Reminders are on again."

    return _change(token, do)


@bp.post("/r/<token>/question")
def question(token: str):
    registration = registration_for(token)
    form = QuestionForm()
    if not form.validate_on_submit():
        return _manage_page(registration, token, form), 422
    try:
        signups.update_question(db.session, registration, question=form.question.data or "", now=utcnow())
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(token)
    flash("Your question is saved.", "success")
    return _back(token)


@bp.route("/r/<token>/unsubscribe", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    """RFC 8058 one-click unsubscribe: mail clients POST here without a session; the token is the key."""
    registration = registration_for(token)
    if request.method == "GET":
        return render_template("signup/unsubscribe.html", registration=registration, event=registration.event,
                               token=token)
    signups.set_reminders(db.session, registration, opt_out=True, now=utcnow())
    db.session.commit()
    return render_template("signup/unsubscribed.html", registration=registration, event=registration.event,
                           token=token)
