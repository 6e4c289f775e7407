"""Organiser pages for people and mail: registrants per event, CSV export, promote/remove, the outbox."""

from __future__ import annotations

import csv
import io

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import case, func, select

from ..domain import events as event_rules
from ..domain import signups
from ..errors import DomainError
from ..extensions import db
from ..forms import ConfirmForm
from ..mail import outbox
from ..models import OutboxMessage, Registration, utcnow
from ..models.registrations import REGISTRATION_STATES
from ..text import csv_cell, slugify
from .admin import bp, get_event

OUTBOX_STATES = ("queued", "sending", "sent", "failed")
CSV_COLUMNS = ("name", "email", "state", "waitlist_position", "question", "timezone", "reminders",
               "registered_at", "confirmed_at", "cancelled_at")
OUTBOX_PAGE = 100


def _registrants(event_id: int, state: str | None) -> list[Registration]:
    # Waitlist in line order first within its state; everyone else by signup time.
    query = select(Registration).where(Registration.event_id == event_id)
    if state:
        query = query.where(Registration.state == state)
    order = case({s: i for i, s in enumerate(REGISTRATION_STATES)}, value=Registration.state)
    return list(db.session.scalars(query.order_by(order, Registration.waitlist_seq, Registration.created_at,
                                                  Registration.id)))


def _positions(registrations: list[Registration]) -> dict[int, int]:
    """Waitlist rank for each waitlisted registration id (1 = next to get a seat)."""
    waiting = sorted((r for r in registrations if r.state == "waitlisted"),
                     key=lambda r: (r.waitlist_seq or 0, r.id))
    return {r.id: rank for rank, r in enumerate(waiting, start=1)}


def _state_arg() -> str | None:
    state = request.args.get("state") or None
    return state if state in REGISTRATION_STATES else None


@bp.get("/events/<int:event_id>/registrations")
def registrations(event_id: int):
    event = get_event(event_id)
    state = _state_arg()
    rows = _registrants(event.id, state)
    everyone_waiting = rows if state in (None, "waitlisted") else _registrants(event.id, "waitlisted")
    return render_template(
        "admin/registrations.html", event=event, registrations=rows, state=state, states=REGISTRATION_STATES,
        positions=_positions(everyone_waiting), counts=event_rules.counts(db.session, [event.id])[event.id],
        seats_taken=event.seats_taken, action_form=ConfirmForm(),
    )


@bp.get("/events/<int:event_id>/registrations.csv")
def registrations_csv(event_id: int):
    event = get_event(event_id)
    rows = _registrants(event.id, _state_arg())
    positions = _positions(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([csv_cell(v) for v in (
            r.name, r.email, r.state, positions.get(r.id, ""), r.question, r.timezone,
            "off" if r.reminders_opt_out else "on", _iso(r.created_at), _iso(r.confirmed_at), _iso(r.cancelled_at),
        )])
    filename = f"{slugify(event.slug)}-registrations.csv"
    return Response("\ufeff" + buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _iso(moment) -> str:
    return moment.isoformat() if moment else ""


def _registration(registration_id: int) -> Registration:
    registration = db.session.get(Registration, registration_id)
    if registration is None:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return registration


def _registration_action(registration_id: int, action, done: str):
    registration = _registration(registration_id)
    event_id = registration.event_id
    try:
        action(registration)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(done.format(name=registration.name), "success")
    return redirect(url_for("admin.registrations", event_id=event_id, state=request.args.get("state")), code=303)


@bp.post("/registrations/<int:registration_id>/promote")
def registration_promote(registration_id: int):
    hold = float(current_app.config["HOLD_EXPIRY_HOURS"])
    return _registration_action(
        registration_id, lambda r: signups.promote(db.session, r, now=utcnow(), hold_hours=hold),
        "{name} has a seat now and is told by email.")


@bp.post("/registrations/<int:registration_id>/remove")
def registration_remove(registration_id: int):
    hold = float(current_app.config["HOLD_EXPIRY_HOURS"])
    return _registration_action(
        registration_id, lambda r: signups.cancel_registration(db.session, r, now=utcnow(), by_organiser=True,
                                                               hold_hours=hold),
        "{name} is removed and told by email; a freed seat went to the waitlist.")


@bp.get("/outbox", endpoint="outbox")
def outbox_page():
    state = request.args.get("state") or None
    query = select(OutboxMessage)
    if state in OUTBOX_STATES:
        query = query.where(OutboxMessage.state == state)
    else:
        state = None
    messages = db.session.scalars(query.order_by(OutboxMessage.id.desc()).limit(OUTBOX_PAGE)).all()
    totals = dict(db.session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all())
    return render_template("admin/outbox.html", messages=messages, state=state, states=OUTBOX_STATES,
                           totals=totals, action_form=ConfirmForm(), page_size=OUTBOX_PAGE)


@bp.post("/outbox/<int:message_id>/retry")
def outbox_retry(message_id: int):
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    outbox.retry_now(db.session, message, now=utcnow())
    db.session.commit()
    flash("The message is queued again." if message.state == "queued" else "Only failed messages can be retried.",
          "success" if message.state == "queued" else "error")
    return redirect(url_for("admin.outbox", state=request.args.get("state")), code=303)
