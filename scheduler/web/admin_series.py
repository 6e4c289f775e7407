"""Admin pages for series: the list, a new series from a rule, and one series' page (publish, cancel, its
occurrences with skip and cancel for one, a change of this and all following, its whole-series signups).
One occurrence is edited on its own event page, like any event. Routes on admin.bp."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from .. import clock
from ..domain import recurrence
from ..domain import series as series_rules
from ..domain.offsets import parse_offsets
from ..extensions import db
from ..forms import ConfirmForm, require_confirmation
from ..models import Event, Series, SeriesSubscription
from ..series_forms import FollowingForm, SeriesForm
from ..services import UnitOfWork
from .admin import bp
from .refusals import attempt, flash_back, show_on_form


def _series(series_id: int) -> Series:
    series = db.session.get(Series, series_id)
    if series is None:
        abort(404)
    return series


def _occurrence(series: Series, event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None or event.series_id != series.id:
        abort(404)
    return event


def _detail(series_id: int) -> str:
    return url_for("admin.series_detail", series_id=series_id)


@contextmanager
def _button(series_id: int) -> Iterator[UnitOfWork]:
    """A confirmed button of the series page: its unit of work, a refusal flashed back on that page."""
    require_confirmation()
    with attempt(refused=flash_back(_detail(series_id))) as uow:
        yield uow


def _done(series_id: int, message: str):
    flash(message, "success")
    return redirect(_detail(series_id), code=303)


@bp.get("/series")
def series_list():
    rows = list(db.session.scalars(select(Series).order_by(Series.status == "cancelled", Series.first_start)))
    counts = dict(db.session.execute(select(Event.series_id, func.count()).where(Event.series_id.is_not(None))
                                     .group_by(Event.series_id)).all())
    return render_template("admin/series_list.html", rows=rows, counts=counts, rule=recurrence.rrule_text)


def _form_page(form: SeriesForm, status: int = 200):
    return render_template("admin/series_form.html", form=form), status


@bp.route("/series/new", methods=["GET", "POST"])
def series_new():
    form = SeriesForm()
    form.field_names = {"reminder_offsets": "reminders", "first_start": "starts_on"}
    if request.method == "GET":
        form.double_opt_in.data = current_app.config["DOUBLE_OPT_IN_DEFAULT"]
    if form.validate_on_submit():
        with attempt(refused=show_on_form(form, lambda: _form_page(form, 422))) as uow:
            rule = recurrence.rule_fields(
                timezone=form.timezone.data, freq=form.freq.data, interval=form.interval.data,
                byday=form.byday.data or "", bymonthday=form.bymonthday.data, day=form.starts_on.data,
                start_time=form.start_time.data, count=form.count.data, until=form.until.data, now=uow.now)
            series = series_rules.create_series(
                uow.session, now=uow.now, title=form.title.data, slug=form.slug.data or None,
                summary=form.summary.data or "", description=form.description.data or "", kind=form.kind.data,
                venue=form.venue.data or "", join_url=form.join_url.data or "", capacity=form.capacity.data,
                reminder_offsets=parse_offsets(form.reminders.data or ""), double_opt_in=form.double_opt_in.data,
                tags=[t.strip() for t in (form.tags.data or "").split(",") if t.strip()],
                duration_minutes=form.duration_minutes.data, **rule)
            back = _detail(series.id)
        flash(_("Draft series created: check its rule, then publish it to plan its occurrences."), "success")
        return redirect(back, code=303)
    return _form_page(form, 422 if request.method == "POST" else 200)


@bp.get("/series/<int:series_id>")
def series_detail(series_id: int):
    series = _series(series_id)
    parts = series_rules.family(db.session, series.family_id)
    subscriptions = db.session.scalars(select(SeriesSubscription).where(
        SeriesSubscription.series_id == series.family_id).order_by(SeriesSubscription.id)).all()
    return render_template("admin/series_detail.html", series=series, parts=parts,
                           events=series_rules.occurrences(db.session, series.id), subscriptions=subscriptions,
                           rule=recurrence.rrule_text(series), action_form=ConfirmForm(),
                           following=FollowingForm(), now=clock.now())


@bp.post("/series/<int:series_id>/publish")
def series_publish(series_id: int):
    with _button(series_id) as uow:
        made = series_rules.publish_series(uow.session, _series(series_id), now=uow.now,
                                           secret=current_app.config["SECRET_KEY"])
    return _done(series_id, _("Published: %(n)d occurrences planned.", n=len(made)))


@bp.post("/series/<int:series_id>/cancel")
def series_cancel(series_id: int):
    with _button(series_id) as uow:
        series_rules.cancel_series(uow.session, _series(series_id), now=uow.now,
                                   reason=request.form.get("reason", ""))
    return _done(series_id, _("Series cancelled: every occurrence still to come is cancelled, and everyone is told."))


@bp.post("/series/<int:series_id>/occurrences/<int:event_id>/skip")
def series_skip(series_id: int, event_id: int):
    with _button(series_id) as uow:
        series_rules.skip_occurrence(uow.session, _occurrence(_series(series_id), event_id), now=uow.now)
    return _done(series_id, _("Date skipped: it is left out of the series."))


@bp.post("/series/<int:series_id>/occurrences/<int:event_id>/cancel")
def series_cancel_occurrence(series_id: int, event_id: int):
    with _button(series_id) as uow:
        series_rules.cancel_occurrence(uow.session, _occurrence(_series(series_id), event_id), now=uow.now)
    return _done(series_id, _("Occurrence cancelled: everyone registered is told."))


@bp.post("/series/<int:series_id>/occurrences/<int:event_id>/following")
def series_following(series_id: int, event_id: int):
    form = FollowingForm()
    if not form.validate_on_submit():
        flash(" ".join(str(m) for messages in form.errors.values() for m in messages), "error")
        return redirect(_detail(series_id), code=303)
    changes = {name: form[name].data for name in ("title", "venue", "join_url", "capacity") if form[name].data}
    with attempt(refused=flash_back(_detail(series_id))) as uow:
        target = series_rules.edit_following(uow.session, _occurrence(_series(series_id), event_id), now=uow.now,
                                             start_time=form.start_time.data,
                                             duration_minutes=form.duration_minutes.data, **changes)
        back = _detail(target.id)
    flash(_("This occurrence and every later one are changed; registrants are told."), "success")
    return redirect(back, code=303)
