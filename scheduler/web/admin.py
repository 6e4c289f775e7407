"""Organiser pages: login, dashboard, event editor, speakers, publish and cancel."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from markupsafe import Markup
from sqlalchemy import func, select

from ..charts import TimelineItem, cumulative, signups_svg, timeline_svg
from ..domain import events as event_rules
from ..domain import reminders
from ..domain.offsets import describe_offset
from ..errors import DomainError, InvalidInput
from ..extensions import db, limiter
from ..forms import ConfirmForm, EventForm, LoginForm, SpeakerForm
from ..models import Event, Registration, Speaker, User, utcnow

bp = Blueprint("admin", __name__, url_prefix="/admin")
PUBLIC_ENDPOINTS = {"admin.login"}


@bp.before_request
def require_login():
    """Every admin page and action refuses anyone not logged in."""
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        from ..extensions import login_manager

        return login_manager.unauthorized()
    return None


def get_event(event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None:
        abort(404)
    return event


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(func.lower(User.email) == form.email.data.strip().lower()))
        if user is not None and user.active and user.check_password(form.password.data):
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors = ["Wrong email or password."]
        return render_template("admin/login.html", form=form), 401
    return render_template("admin/login.html", form=form), (422 if form.errors else 200)


@bp.post("/logout")
@login_required
def logout():
    if ConfirmForm().validate_on_submit():
        logout_user()
    return redirect(url_for("public.index"))


@bp.get("/")
def dashboard():
    now = utcnow()
    events = list(db.session.scalars(
        select(Event).where(Event.ends_at >= now).order_by(Event.starts_at).limit(100)
    ))
    return render_template("admin/dashboard.html", events=events,
                           counts=event_rules.counts(db.session, [e.id for e in events]),
                           next_jobs=reminders.next_due(db.session, now=now))


@bp.route("/events/new", methods=["GET", "POST"])
def event_new():
    form = EventForm()
    if request.method == "GET":
        form.double_opt_in.data = current_app.config["DOUBLE_OPT_IN_DEFAULT"]
    if form.validate_on_submit():
        try:
            event = event_rules.create_event(db.session, now=utcnow(), tags=form.tag_names(),
                                             **form.domain_fields())
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            _show_domain_error(form, exc)
        else:
            flash(f"Draft “{event.title}” created. Add speakers, then publish.", "success")
            return redirect(url_for("admin.event_detail", event_id=event.id))
    return render_template("admin/event_form.html", form=form, event=None), (422 if form.errors else 200)


@bp.route("/events/<int:event_id>/edit", methods=["GET", "POST"])
def event_edit(event_id: int):
    event = get_event(event_id)
    form = EventForm()
    if request.method == "GET":
        form.fill_from(event)
    elif form.validate_on_submit():
        try:
            changed = event_rules.update_event(db.session, event, now=utcnow(), tags=form.tag_names(),
                                               hold_hours=float(current_app.config["HOLD_EXPIRY_HOURS"]),
                                               **form.domain_fields())
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            _show_domain_error(form, exc)
        else:
            if changed & set(event_rules.CALENDAR_FIELDS) and event.status == "published":
                flash("Saved. Registrants and speakers will get an updated invitation.", "success")
            else:
                flash("Saved." if changed else "Nothing changed.", "success")
            return redirect(url_for("admin.event_detail", event_id=event.id))
    return render_template("admin/event_form.html", form=form, event=event), (422 if form.errors else 200)


def _show_domain_error(form: EventForm, exc: DomainError) -> None:
    if isinstance(exc, InvalidInput) and exc.fields:
        form.show_errors(exc.fields)
    elif exc.field:
        form.show_errors({exc.field: [exc.message]})
    else:
        form.form_errors.append(exc.message)


@bp.get("/events/<int:event_id>")
def event_detail(event_id: int):
    event = get_event(event_id)
    jobs = reminders.event_jobs(db.session, event.id)
    return render_template(
        "admin/event_detail.html", event=event, counts=event_rules.counts(db.session, [event.id])[event.id],
        jobs=jobs, speaker_form=SpeakerForm(), action_form=ConfirmForm(),
        speakers=db.session.scalars(select(Speaker).order_by(Speaker.name)).all(),
        sent_log=reminders.sent_log(db.session, event.id),
        **_event_pictures(event, jobs, now=utcnow()),
    )


def _event_pictures(event: Event, jobs: list, *, now) -> dict:
    """The signups-over-time chart and the jobs timeline, as inline SVG."""
    times = list(db.session.scalars(select(Registration.created_at).where(Registration.event_id == event.id)))
    chart = signups_svg(cumulative(times), zone=event.timezone, start=event.created_at,
                        end=min(now, event.ends_at), title=f"Signups over time for {event.title}") if times else None
    items = [TimelineItem(f"{job.kind.capitalize()} {describe_offset(job.offset_seconds)} "
                          f"{'after' if job.kind == 'thanks' else 'before'}", job.due_at, job.state) for job in jobs]
    timeline = timeline_svg(items, starts_at=event.starts_at, ends_at=event.ends_at, now=now, zone=event.timezone,
                            title=f"Jobs timeline for {event.title}")
    return {"signups_chart": Markup(chart) if chart else None, "jobs_timeline": Markup(timeline)}


@bp.post("/events/<int:event_id>/publish")
def event_publish(event_id: int):
    event = get_event(event_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        event_rules.publish_event(db.session, event, now=utcnow())
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.event_detail", event_id=event_id)), 303
    flash("Published. Reminders and speaker jobs are planned.", "success")
    return redirect(url_for("admin.event_detail", event_id=event_id))


@bp.post("/events/<int:event_id>/cancel")
def event_cancel(event_id: int):
    event = get_event(event_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    reason = (request.form.get("reason") or "")[:500]
    try:
        event_rules.cancel_event(db.session, event, now=utcnow(), reason=reason)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash("Cancelled. Everyone registered will be told, and pending jobs are removed.", "success")
    return redirect(url_for("admin.event_detail", event_id=event_id))


@bp.post("/events/<int:event_id>/speakers")
def speaker_add(event_id: int):
    event = get_event(event_id)
    existing_id = request.form.get("speaker_id", "")
    now = utcnow()
    if existing_id.isascii() and existing_id.isdigit():
        speaker = db.session.get(Speaker, int(existing_id))
        form = ConfirmForm()
        role = request.form.get("role", "speaker")
        if speaker is None or not form.validate_on_submit():
            abort(400 if speaker else 404)
    else:
        form = SpeakerForm()
        if not form.validate_on_submit():
            for field, messages in form.errors.items():
                flash(f"{getattr(form, field).label.text if hasattr(form, field) else field}: "
                      f"{' '.join(messages)}", "error")
            return redirect(url_for("admin.event_detail", event_id=event_id)), 303
        role = form.role.data
        speaker = None
    try:
        if speaker is None:
            speaker = event_rules.create_speaker(db.session, now=now, **{
                k: getattr(form, k).data for k in ("name", "email", "affiliation", "bio", "photo_url")})
        event_rules.add_speaker(db.session, event, speaker, role=role, now=now)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.event_detail", event_id=event_id)), 303
    flash(f"{speaker.name} added as {role}.", "success")
    return redirect(url_for("admin.event_detail", event_id=event_id))


@bp.post("/events/<int:event_id>/speakers/<int:speaker_id>/remove")
def speaker_remove(event_id: int, speaker_id: int):
    event = get_event(event_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    event_rules.remove_speaker(db.session, event, speaker_id, now=utcnow())
    db.session.commit()
    flash("Speaker removed from this event.", "success")
    return redirect(url_for("admin.event_detail", event_id=event_id))
