"""Organiser pages: login, dashboard, event editor, speakers, publish and cancel."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from markupsafe import Markup
from sqlalchemy import func, or_, select

from .. import clock
from ..charts import TimelineItem, cumulative_bins, signups_svg, timeline_svg
from ..domain import accounts, door, queries, registrants, reminders
from ..domain import events as event_rules
from ..extensions import db, limiter, login_manager
from ..forms import ConfirmForm, EventForm, LoginForm, SpeakerForm, require_confirmation
from ..labels import job_name, role_in_text
from ..models import Event, Speaker
from ..services import unit_of_work
from ..timefmt import format_day_month, format_duration
from ..urls import local_path
from .admin_figures import after_event, speaker_feed_links
from .converters import row_id
from .pages import page_arg, search_arg
from .refusals import attempt, flash_back, show_on_form

bp = Blueprint("admin", __name__, url_prefix="/admin")
PUBLIC_ENDPOINTS = {"admin.login"}


@bp.before_request
def require_login():
    """Every admin page and action refuses anyone not logged in."""
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def get_event(event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None:
        abort(404)
    return event


def _detail_url(event_id: int) -> str:
    return url_for("admin.event_detail", event_id=event_id)


def _safe_next(target: str | None) -> str:
    return local_path(target, url_for("admin.dashboard"))


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _account_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"]


def _login_account() -> str:
    """The account a login names: its failures count together from every address (behind a proxy, too)."""
    return "login-account:" + (request.form.get("email") or "").strip().lower()[:320]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_account_limit, methods=["POST"], key_func=_login_account,
               deduct_when=lambda response: response.status_code == 401)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(db.session, form.email.data, form.password.data)
        if user is not None:
            _new_csrf_token()
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors = [_("Wrong email or password.")]
        return render_template("admin/login.html", form=form), 401
    return render_template("admin/login.html", form=form), (422 if form.errors else 200)


def _new_csrf_token() -> None:
    """Forms after this point get a CSRF token that no page shown before it carried."""
    name = current_app.config["WTF_CSRF_FIELD_NAME"]
    session.pop(name, None)  # Flask-WTF keeps the raw token there and signs it for each page
    g.pop(name, None)  # and caches the signed one for the rest of the request


@bp.post("/logout")
@login_required
def logout():
    """Log out here and everywhere: every session cookie signed in so far stops working."""
    if ConfirmForm().validate_on_submit():
        with unit_of_work() as uow:
            accounts.end_sessions(uow.session, current_user.id)
        logout_user()
    return redirect(url_for("public.index"))


#: Upcoming events per dashboard page.
DASHBOARD_PAGE = 50


@bp.get("/")
def dashboard():
    now = clock.now()
    number = page_arg()
    rows = registrants.upcoming_with_counts(db.session, now=now, limit=DASHBOARD_PAGE + 1,
                                            offset=(number - 1) * DASHBOARD_PAGE)
    if number > 1 and not rows:
        abort(404)
    return render_template("admin/dashboard.html", events=rows[:DASHBOARD_PAGE], page=number,
                           has_next=len(rows) > DASHBOARD_PAGE, next_jobs=reminders.next_due(db.session, now=now))


def _event_form_page(form: EventForm, event: Event | None):
    return render_template("admin/event_form.html", form=form, event=event), (422 if form.errors else 200)


@bp.route("/events/new", methods=["GET", "POST"])
def event_new():
    form = EventForm()
    if request.method == "GET":
        form.double_opt_in.data = current_app.config["DOUBLE_OPT_IN_DEFAULT"]
    if form.validate_on_submit():
        with attempt(refused=show_on_form(form, lambda: _event_form_page(form, None))) as uow:
            event = event_rules.create_event(uow.session, now=uow.now, tags=form.tag_names(), **form.domain_fields())
            done = _("Draft “%(title)s” created. Add speakers, then publish.", title=event.title)
            back = _detail_url(event.id)
        flash(done, "success")
        return redirect(back)
    return _event_form_page(form, None)


@bp.route("/events/<int:event_id>/edit", methods=["GET", "POST"])
def event_edit(event_id: int):
    event = get_event(event_id)
    form = EventForm()
    if request.method == "GET":
        form.fill_from(event)
    elif form.validate_on_submit():
        with attempt(refused=show_on_form(form, lambda: _event_form_page(form, event))) as uow:
            changed = event_rules.update_event(uow.session, event, now=uow.now, tags=form.tag_names(),
                                               hold_hours=float(current_app.config["HOLD_EXPIRY_HOURS"]),
                                               **form.domain_fields())
            if changed & set(event_rules.CALENDAR_FIELDS) and event.status == "published":
                done = _("Saved. Registrants and speakers will get an updated invitation.")
            else:
                done = _("Saved.") if changed else _("Nothing changed.")
        flash(done, "success")
        return redirect(_detail_url(event_id))
    return _event_form_page(form, event)


#: Existing speakers offered on an event page at most; a search finds the others.
SPEAKER_CHOICES = 100


@bp.get("/events/<int:event_id>")
def event_detail(event_id: int):
    event = get_event(event_id)
    jobs = reminders.event_jobs(db.session, event.id)
    return render_template(
        "admin/event_detail.html", event=event, counts=queries.counts(db.session, [event.id])[event.id],
        jobs=jobs, speaker_form=SpeakerForm(), action_form=ConfirmForm(),
        sent_log=reminders.sent_log(db.session, event.id), attendance=door.attendance(db.session, event),
        speaker_feeds=speaker_feed_links(event), **after_event(event),
        **_speaker_choices(search_arg("find")), **_event_pictures(event, jobs, now=clock.now()),
    )


def _speaker_choices(find: str) -> dict:
    """Speakers to pick from, by name: all when there are few, else the latest added or those matching `find`."""
    query = select(Speaker)
    if find:
        query = query.where(or_(Speaker.name.icontains(find, autoescape=True),
                                Speaker.email.icontains(find, autoescape=True)))
    found = list(db.session.scalars(query.order_by(Speaker.id.desc()).limit(SPEAKER_CHOICES + 1)))
    more = len(found) > SPEAKER_CHOICES
    total = db.session.scalar(select(func.count()).select_from(Speaker)) if more or find else len(found)
    return {"speakers": sorted(found[:SPEAKER_CHOICES], key=lambda s: (s.name, s.id)), "speakers_more": more,
            "speakers_total": total, "speaker_find": find}


def _job_label(job) -> str:
    """"Reminder 1 day before", in the admin's language."""
    if job.kind == "follow_up":
        return _("Follow-up")
    kind, offset = job_name(job.kind), format_duration(job.offset_seconds)
    if job.kind == "thanks":
        return _("%(kind)s %(offset)s after", kind=kind, offset=offset)
    return _("%(kind)s %(offset)s before", kind=kind, offset=offset)


def _event_pictures(event: Event, jobs: list, *, now) -> dict:
    """The signups-over-time chart and the jobs timeline, as inline SVG."""
    # The chart counts whom the page's figures count (confirmed, pending, waitlisted), and the
    # confirmed among them apart; cancelled and expired signups are left out, and the caption says so.
    # The database counts them into bins: the picture has as many steps at 10,000 signups as at 200.
    start, end = event.created_at, min(now, event.ends_at)
    bins = registrants.signup_bins(db.session, event.id, start=start, end=end)
    chart = signups_svg(cumulative_bins(bins.registered), confirmed=cumulative_bins(bins.confirmed),
                        zone=event.timezone, start=start, end=end,
                        title=_("Signups over time for %(title)s", title=event.title)) if bins.registered else None
    items = [TimelineItem(_job_label(job), job.due_at, job.state) for job in jobs]
    timeline = timeline_svg(items, starts_at=event.starts_at, ends_at=event.ends_at, now=now, zone=event.timezone,
                            title=_("Jobs timeline for %(title)s", title=event.title))
    return {"signups_chart": Markup(chart) if chart else None, "jobs_timeline": Markup(timeline),
            "signups_left_out": bins.left_out}


@bp.app_template_filter("short_when")
def short_when(moment: datetime, zone: str = "UTC", with_zone: bool = False) -> str:
    """"2 Nov 12:00" in the zone (and "CET" after it if asked), with the year only when it is not this one."""
    local = moment.astimezone(ZoneInfo(zone))
    year = local.year != clock.now().astimezone(ZoneInfo(zone)).year
    return f"{format_day_month(local, year=year)} {local:%H:%M}" + (f" {local.tzname()}" if with_zone else "")


@bp.post("/events/<int:event_id>/publish")
def event_publish(event_id: int):
    event = get_event(event_id)
    require_confirmation()
    with attempt(refused=flash_back(_detail_url(event_id))) as uow:
        event_rules.publish_event(uow.session, event, now=uow.now)
    flash(_("Published. Reminders and speaker jobs are planned."), "success")
    return redirect(_detail_url(event_id))


@bp.post("/events/<int:event_id>/cancel")
def event_cancel(event_id: int):
    event = get_event(event_id)
    require_confirmation()
    reason = (request.form.get("reason") or "")[:500]
    with attempt(refused=flash_back(_detail_url(event_id), code=302)) as uow:
        event_rules.cancel_event(uow.session, event, now=uow.now, reason=reason)
    flash(_("Cancelled. Everyone registered will be told, and pending jobs are removed."), "success")
    return redirect(_detail_url(event_id))


@bp.post("/events/<int:event_id>/speakers")
def speaker_add(event_id: int):
    """Link a speaker already known (by id) or a new person given by the form."""
    event = get_event(event_id)
    back = _detail_url(event_id)
    existing_id = request.form.get("speaker_id", "")
    if existing_id.isascii() and existing_id.isdigit():
        speaker = db.session.get(Speaker, row_id(existing_id) or 0)  # no row has id 0
        if speaker is None:
            abort(404)
        require_confirmation()
        role, person = request.form.get("role", "speaker"), None
    else:
        form = SpeakerForm()
        if not form.validate_on_submit():
            for field, messages in form.errors.items():
                flash(f"{form[field].label.text if field in form else field}: {' '.join(str(m) for m in messages)}", "error")
            return redirect(back, code=303)
        speaker, role = None, form.role.data
        person = {name: form[name].data for name in ("name", "email", "affiliation", "bio", "photo_url", "language")}
    with attempt(refused=flash_back(back)) as uow:
        if speaker is None:
            speaker = event_rules.create_speaker(uow.session, now=uow.now, **person)
        event_rules.add_speaker(uow.session, event, speaker, role=role, now=uow.now)
        done = _("%(name)s added as %(role)s.", name=speaker.name, role=role_in_text(role))
    flash(done, "success")
    return redirect(back)


@bp.post("/events/<int:event_id>/speakers/<int:speaker_id>/remove")
def speaker_remove(event_id: int, speaker_id: int):
    event = get_event(event_id)
    require_confirmation()
    with unit_of_work() as uow:
        event_rules.remove_speaker(uow.session, event, speaker_id, now=uow.now)
    flash(_("Speaker removed from this event."), "success")
    return redirect(_detail_url(event_id))
