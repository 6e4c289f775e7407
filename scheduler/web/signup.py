"""Attendee pages: the signup form, confirming an address, and the private manage page."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import clock
from ..domain import queries, seats, signups
from ..errors import DomainError
from ..extensions import csrf, db, limiter
from ..forms import ConfirmForm, QuestionForm, SignupForm, require_confirmation
from ..languages import LANGUAGES, speaking
from ..mail.compose import sender
from ..models import Event, Registration
from ..services import unit_of_work
from ..timefmt import current_locale
from ..tokens import looks_like_token
from .locale import remember
from .public import published_event
from .refusals import attempt, flash_back, message_of, status_of

bp = Blueprint("signup", __name__)


def signup_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT"]


def _hold_hours() -> float:
    return float(current_app.config["HOLD_EXPIRY_HOURS"])


@bp.route("/events/<slug>/signup", methods=["GET", "POST"])
@limiter.limit(signup_limit, methods=["POST"])
def form(slug: str):
    form = SignupForm()
    posted = request.method == "POST"
    if posted and not form.website.data and form.validate():
        # sign_up finds the event by its slug and locks it; a refusal reads it again for the page that
        # explains it (a 404 for an unknown slug or a draft).
        with attempt(refused=lambda exc: _closed_page(published_event(slug), exc, status_of(exc))) as uow:
            result = signups.sign_up(uow.session, slug, name=form.name.data, email=form.email.data,
                                     question=form.question.data or "", timezone=form.timezone.data, now=uow.now,
                                     secret=current_app.config["SECRET_KEY"], hold_hours=_hold_hours(),
                                     language=current_locale())
            # What the page shows, read before the commit expires the event: reading it again after
            # would begin another transaction (on SQLite, one holding the write lock) for a few values.
            shown = _shown(result.event, full=_full_before(result))
        # Fresh signup or repeat, the page is the same: it must not tell whether the address was known.
        return _thanks_page(shown, email=form.email.data, zone=form.timezone.data, now=uow.now)
    event = published_event(slug)
    try:
        signups.check_open(event, now=clock.now())
    except DomainError as exc:
        return _closed_page(event, exc, status_of(exc) if posted else 200)
    if not posted:
        form.timezone.data = event.timezone
        return _form_page(event, form)
    if form.website.data:
        # A bot filled the hidden field: it sees the usual page, nothing is stored or sent.
        shown = _shown(event, full=not seats.has_free_seat(event))
        return _thanks_page(shown, email=form.email.data or "", zone=event.timezone, now=clock.now())
    return _form_page(event, form), 422


def _full_before(result: signups.SignupResult) -> bool:
    """Whether the event was full when this signup reached it, under its lock.

    That is the same for a new address and a known one. The event as it is after the signup is
    not: a new address that took the last seat would turn the page to "full", where a known
    address would leave it as it was, and the page would tell them apart.
    """
    event = result.event
    # Only a new seat changed the count: a repeat changes nothing, a waitlist place takes no seat.
    taken_before = event.seats_taken - (1 if result.outcome in ("confirmed", "pending") else 0)
    return event.capacity is not None and taken_before >= event.capacity


def _shown(event: Event, *, full: bool) -> SimpleNamespace:
    """What the thanks page shows of the event: public fields only (never the join link)."""
    # No tags: loading them would add a query under the event's lock, so the page's calendar menu
    # offers the all-events feed but not the series ones.
    return SimpleNamespace(
        slug=event.slug, title=event.title, summary=event.summary, venue=event.venue, timezone=event.timezone,
        starts_at=event.starts_at, ends_at=event.ends_at, status=event.status, double_opt_in=event.double_opt_in,
        online=bool(event.join_url), reminder_offsets=list(event.reminder_offsets or ()), tags=(), full=full)


def _thanks_page(event: SimpleNamespace, *, email: str, zone: str, now: datetime) -> str:
    """The page after a signup: what happens next, calendar links, where the mail comes from.

    It depends on the event and the moment, never on whether the address was already registered.
    """
    reminders = [o for o in event.reminder_offsets if now < event.starts_at - timedelta(seconds=o)]
    held_until = min(now + timedelta(hours=_hold_hours()), event.starts_at)
    from_name, from_addr = sender(current_app.config)
    return render_template("signup/thanks.html", event=event, email=email, zone=zone, reminders=reminders,
                           held_until=held_until, from_name=from_name, from_addr=from_addr)


def _closed_page(event: Event, exc: DomainError, status: int):
    return render_template("signup/closed.html", event=event, message=message_of(exc)), status


def _form_page(event: Event, form: SignupForm) -> str:
    return render_template("signup/form.html", event=event, form=form, seats_left=seats.seats_left(event))


def registration_for(token: str) -> Registration:
    """The registration behind a private link, or 404."""
    registration = signups.find_by_token(db.session, token) if looks_like_token(token) else None
    if registration is None:
        abort(404)
    return registration


def _manage_page(registration: Registration, token: str, question_form: QuestionForm) -> str:
    return render_template(
        "signup/manage.html", registration=registration, event=registration.event, token=token,
        position=queries.waitlist_position(db.session, registration), action_form=ConfirmForm(),
        question_form=question_form,
    )


@bp.get("/r/<token>")
def manage(token: str):
    registration = registration_for(token)
    return _manage_page(registration, token, QuestionForm(question=registration.question))


def _manage_url(token: str) -> str:
    return url_for("signup.manage", token=token)


def _change(token: str, action) -> object:
    """Run `action(uow, registration)` for the registration behind `token`; flash what it returns, or the refusal."""
    registration = registration_for(token)
    require_confirmation()
    back = _manage_url(token)
    with attempt(refused=flash_back(back)) as uow:
        message = action(uow, registration)
    if message:
        flash(message, "success")
    return redirect(back, code=303)


@bp.route("/r/<token>/confirm", methods=["GET", "POST"])
def confirm(token: str):
    """GET shows a button (mail scanners follow links); POST confirms."""
    if request.method == "GET":
        registration = registration_for(token)
        return render_template("signup/confirm.html", registration=registration, event=registration.event,
                               token=token, action_form=ConfirmForm())

    def do(uow, registration):
        state = signups.confirm_email(uow.session, registration, now=uow.now, hold_hours=_hold_hours())
        return {"confirmed": _("Your place is confirmed. The calendar invitation is on its way."),
                "waitlisted": _("Thanks, your email address is confirmed. You keep your place on the waitlist."),
                "pending": _("Your seat is held until you confirm.")}.get(state, _("Thanks."))

    return _change(token, do)


@bp.route("/r/<token>/cancel", methods=["GET", "POST"])
def cancel(token: str):
    """GET asks "are you sure?" (the manage page's button leads here); only the POST cancels."""
    if request.method == "GET":
        registration = registration_for(token)
        return render_template("signup/cancel.html", registration=registration, event=registration.event,
                               token=token, action_form=ConfirmForm())

    def do(uow, registration):
        signups.cancel_registration(uow.session, registration, now=uow.now, hold_hours=_hold_hours())
        return _("Your registration is cancelled. Thanks for letting us know.")

    return _change(token, do)


@bp.post("/r/<token>/reminders")
def reminders(token: str):
    opt_out = request.form.get("opt_out") == "1"

    def do(uow, registration):
        signups.set_reminders(uow.session, registration, opt_out=opt_out, now=uow.now)
        return _("You will not get reminders for this event.") if opt_out else _("Reminders are on again.")

    return _change(token, do)


@bp.post("/r/<token>/question")
def question(token: str):
    registration = registration_for(token)
    form = QuestionForm()
    if not form.validate_on_submit():
        return _manage_page(registration, token, form), 422
    back = _manage_url(token)
    with attempt(refused=flash_back(back)) as uow:
        signups.update_question(uow.session, registration, question=form.question.data or "", now=uow.now)
    flash(_("Your question is saved."), "success")
    return redirect(back, code=303)


@bp.post("/r/<token>/language")
def language(token: str):
    """The language of their mail from now on; the pages follow it too (the cookie)."""
    code = request.form.get("language", "")

    def do(uow, registration):
        signups.set_language(uow.session, registration, language=code, now=uow.now)
        with speaking(code):
            return _("Your emails are now in %(language)s.", language=LANGUAGES[code])

    response = _change(token, do)
    return remember(response, code)


@bp.route("/r/<token>/unsubscribe", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    """RFC 8058 one-click unsubscribe: mail clients POST here without a session; the token is the key."""
    registration = registration_for(token)
    if request.method == "POST":
        with unit_of_work() as uow:
            signups.set_reminders(uow.session, registration, opt_out=True, now=uow.now)
    page = "signup/unsubscribed.html" if request.method == "POST" else "signup/unsubscribe.html"
    return render_template(page, registration=registration, event=registration.event, token=token)
