"""Organiser pages for people and mail: registrants per event, CSV export, promote/remove, the outbox."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import case, func, select

from ..domain import queries, signups
from ..extensions import db
from ..forms import ConfirmForm
from ..mail import outbox
from ..models import OutboxMessage, Registration
from ..models.registrations import REGISTRATION_STATES
from ..services import unit_of_work
from ..text import csv_cell, slugify
from .admin import bp, get_event
from .refusals import attempt, flash_back

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
        positions=_positions(everyone_waiting), counts=queries.counts(db.session, [event.id])[event.id],
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
    """Run `action(uow, registration)`; flash `done` (with the name) or the refusal, back to the list."""
    registration = _registration(registration_id)
    back = url_for("admin.registrations", event_id=registration.event_id, state=request.args.get("state"))
    with attempt(refused=flash_back(back)) as uow:
        action(uow, registration)
        message = done.format(name=registration.name)
    flash(message, "success")
    return redirect(back, code=303)


def _hold_hours() -> float:
    return float(current_app.config["HOLD_EXPIRY_HOURS"])


@bp.post("/registrations/<int:registration_id>/promote")
def registration_promote(registration_id: int):
    return _registration_action(
        registration_id, lambda uow, r: signups.promote(uow.session, r, now=uow.now, hold_hours=_hold_hours()),
        "{name} has a seat now and is told by email.")


@bp.post("/registrations/<int:registration_id>/remove")
def registration_remove(registration_id: int):
    return _registration_action(
        registration_id, lambda uow, r: signups.cancel_registration(uow.session, r, now=uow.now, by_organiser=True,
                                                                    hold_hours=_hold_hours()),
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
                           totals=totals, action_form=ConfirmForm(), page_size=OUTBOX_PAGE,
                           previews={m.id: _preview(m) for m in messages if m.subject is None})


@dataclass(frozen=True)
class Preview:
    """What a message composed at delivery will say: its subject, or why it cannot be composed."""

    subject: str | None = None
    error: str | None = None


def _preview(message: OutboxMessage) -> Preview:
    """Compose a copy of the row with the renderer delivery uses; the copy is never added or sent."""
    copy = OutboxMessage(**{column.key: getattr(message, column.key) for column in OutboxMessage.__table__.columns})
    try:
        return Preview(subject=outbox.fill(copy).subject)
    except Exception as exc:  # whatever stops delivery composing it, shown instead of a subject
        return Preview(error=str(exc) or type(exc).__name__)


@bp.post("/outbox/<int:message_id>/retry")
def outbox_retry(message_id: int):
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    with unit_of_work() as uow:
        outbox.retry_now(uow.session, message, now=uow.now)
        queued = message.state == "queued"
    flash("The message is queued again." if queued else "Only failed messages can be retried.",
          "success" if queued else "error")
    return redirect(url_for("admin.outbox", state=request.args.get("state")), code=303)
