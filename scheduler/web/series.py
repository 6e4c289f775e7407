"""Series pages: the public page of a series (its occurrences, signup for one or for all), and the one
private manage page of a whole-series signup (drop single occurrences, leave the series)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import clock
from ..domain import recurrence, series_signups, signups
from ..domain import series as series_rules
from ..extensions import db, limiter
from ..forms import ConfirmForm, SignupForm, require_confirmation
from ..models import Registration, Series
from ..services import UnitOfWork
from ..text import render_markdown
from ..timefmt import current_locale
from ..tokens import looks_like_token
from .refusals import attempt, flash_back

bp = Blueprint("series", __name__)


def _hold_hours() -> float:
    return float(current_app.config["HOLD_EXPIRY_HOURS"])


def _published(slug: str) -> Series:
    series = db.session.scalar(select(Series).where(Series.slug == slug, Series.status.in_(("published",
                                                                                            "cancelled"))))
    if series is None:
        abort(404)
    return series


def _upcoming(series: Series) -> list:
    now = clock.now()
    return [event for event in series_rules.family_events(db.session, series.family_id, after=now)
            if event.status in ("published", "cancelled")]


@bp.get("/series/<slug>")
def page(slug: str):
    series = _published(slug)
    return render_template("series/page.html", series=series, events=_upcoming(series), form=SignupForm(),
                           rule=recurrence.rrule_text(series), description=render_markdown(series.description))


@bp.post("/series/<slug>/signup")
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"])
def signup(slug: str):
    series = _published(slug)
    form = SignupForm()
    if form.website.data:  # a bot: a polite answer, nothing stored
        return render_template("series/thanks.html", series=series, outcome="pending")
    if not form.validate():
        return render_template("series/page.html", series=series, events=_upcoming(series), form=form,
                               rule=recurrence.rrule_text(series),
                               description=render_markdown(series.description)), 422
    with attempt(refused=flash_back(url_for("series.page", slug=slug))) as uow:
        _subscription, outcome = series_signups.subscribe(
            uow.session, series, name=form.name.data, email=form.email.data, timezone=form.timezone.data,
            now=uow.now, secret=current_app.config["SECRET_KEY"], hold_hours=_hold_hours(), language=current_locale())
    # A repeat looks like a fresh signup: the page must not tell whether the address was known.
    return render_template("series/thanks.html", series=series,
                           outcome="pending" if outcome == "repeat" else outcome)


def _subscription(token: str):
    found = series_signups.find_subscription(db.session, token) if looks_like_token(token) else None
    if found is None:
        abort(404)
    return found


@contextmanager
def _manage_button(token: str) -> Iterator[UnitOfWork]:
    """A confirmed button of the manage page: its unit of work, a refusal flashed back on that page."""
    require_confirmation()
    with attempt(refused=flash_back(url_for("series.manage", token=token))) as uow:
        yield uow


def _done(token: str, message: str):
    flash(message, "success")
    return redirect(url_for("series.manage", token=token), code=303)


@bp.get("/s/<token>")
def manage(token: str):
    subscription = _subscription(token)
    return render_template("series/manage.html", subscription=subscription, series=subscription.series,
                           places=series_signups.subscription_places(db.session, subscription), token=token,
                           action_form=ConfirmForm(), now=clock.now())


@bp.route("/s/<token>/confirm", methods=["GET", "POST"])
def confirm(token: str):
    subscription = _subscription(token)
    if request.method == "GET":  # a link scanner's GET changes nothing: the page asks for a click
        return render_template("series/confirm.html", subscription=subscription, token=token,
                               action_form=ConfirmForm())
    with _manage_button(token) as uow:
        series_signups.confirm_subscription(uow.session, subscription, now=uow.now,
                                            secret=current_app.config["SECRET_KEY"], hold_hours=_hold_hours())
    return _done(token, _("Confirmed: you have a place in each upcoming occurrence."))


@bp.post("/s/<token>/drop/<int:registration_id>")
def drop(token: str, registration_id: int):
    subscription = _subscription(token)
    registration = db.session.get(Registration, registration_id)
    if registration is None or registration.subscription_id != subscription.id:
        abort(404)
    with _manage_button(token) as uow:
        signups.cancel_registration(uow.session, registration, now=uow.now, hold_hours=_hold_hours())
    return _done(token, _("You gave up your place in this occurrence; the others stay."))


@bp.post("/s/<token>/reminders")
def reminders(token: str):
    subscription = _subscription(token)
    opt_out = request.form.get("reminders") == "off"
    with _manage_button(token) as uow:
        series_signups.set_subscription_reminders(uow.session, subscription, opt_out=opt_out, now=uow.now)
    return _done(token, _("No more reminders for this series.") if opt_out else _("You get reminders again."))


@bp.post("/s/<token>/cancel")
def cancel(token: str):
    subscription = _subscription(token)
    with _manage_button(token) as uow:
        series_signups.cancel_subscription(uow.session, subscription, now=uow.now)
    return _done(token, _("You left the series: your places in its upcoming occurrences are given up."))


def series_of(event) -> Series | None:
    """The public series an occurrence belongs to (for its event page), or None."""
    if event.series_id is None:
        return None
    series = db.session.get(Series, event.series_id)
    return series if series is not None and series.status != "draft" else None


@bp.record_once
def _template_helpers(state) -> None:
    state.app.jinja_env.globals.update(series_of=series_of)
