"""Organiser pages for people and mail: registrants per event, CSV export, promote/remove, the outbox."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import func, select

from ..domain import queries, registrants, signups
from ..extensions import db
from ..forms import ConfirmForm, require_confirmation
from ..mail import outbox
from ..models import OutboxMessage, Registration
from ..models.registrations import REGISTRATION_STATES
from ..services import unit_of_work
from ..text import csv_cell, slugify
from .admin import bp, get_event
from .converters import row_id
from .pages import page_arg, search_arg
from .refusals import attempt, flash_back

OUTBOX_STATES = ("queued", "sending", "sent", "failed")
CSV_COLUMNS = ("name", "email", "state", "waitlist_position", "question", "timezone", "reminders",
               "registered_at", "confirmed_at", "cancelled_at")
OUTBOX_PAGE = 50


def _state_arg() -> str | None:
    state = request.args.get("state") or None
    return state if state in REGISTRATION_STATES else None


def _list_args() -> dict:
    """Where the organiser is in the list (state, search, page): kept by the links and actions on it."""
    state, search, number = _state_arg(), search_arg(), page_arg()
    return {"state": state, "q": search or None, "page": number if number > 1 else None}


@bp.get("/events/<int:event_id>/registrations")
def registrations(event_id: int):
    """One page of the registrants, PAGE_SIZE at a time, by state and searched by name or email."""
    event = get_event(event_id)
    state, search, number = _state_arg(), search_arg(), page_arg()
    counts = queries.counts(db.session, [event.id])[event.id]
    if search:
        total = registrants.matching(db.session, event.id, state=state, search=search)
    else:  # the counts above tell without another query
        total = counts.get(state, 0) if state else sum(counts.values())
    pages = max(1, -(-total // registrants.PAGE_SIZE))
    if number > pages:  # e.g. the last row of the last page was just removed from this state
        return redirect(url_for("admin.registrations", event_id=event.id, state=state, q=search or None,
                                page=pages if pages > 1 else None))
    rows = registrants.page(db.session, event.id, state=state, search=search, number=number)
    positions = registrants.waitlist_ranks(db.session, event.id, [r.id for r in rows if r.state == "waitlisted"])
    return render_template(
        "admin/registrations.html", event=event, registrations=rows, state=state, states=REGISTRATION_STATES,
        search=search, page=number, pages=pages, total=total, first=(number - 1) * registrants.PAGE_SIZE + 1,
        positions=positions, counts=counts, seats_taken=event.seats_taken, action_form=ConfirmForm(),
        filters={"state": state, "q": search or None},
    )


@bp.get("/events/<int:event_id>/registrations.csv")
def registrations_csv(event_id: int):
    """Every registrant (in a state, if asked) as CSV, streamed: read and sent a batch at a time."""
    event = get_event(event_id)
    batches = registrants.export_batches(db.session, event.id, state=_state_arg())
    filename = f"{slugify(event.slug)}-registrations.csv"
    return Response(stream_with_context(_csv_chunks(batches)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_chunks(batches):
    """The byte-order mark and header, then one chunk of CSV text per batch of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(CSV_COLUMNS)
    for batch in batches:
        for r in batch:
            writer.writerow([csv_cell(v) for v in (
                r.name, r.email, r.state, r.waitlist_position or "", r.question, r.timezone,
                "off" if r.reminders_opt_out else "on", _iso(r.created_at), _iso(r.confirmed_at),
                _iso(r.cancelled_at),
            )])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # no rows at all: the header alone
        yield buffer.getvalue()


def _iso(moment) -> str:
    return moment.isoformat() if moment else ""


def _registration(registration_id: int) -> Registration:
    registration = db.session.get(Registration, registration_id)
    if registration is None:
        abort(404)
    require_confirmation()
    return registration


def _registration_action(registration_id: int, action, done: str):
    """Run `action(uow, registration)`; flash `done` (with the name) or the refusal, back to the list."""
    registration = _registration(registration_id)
    back = url_for("admin.registrations", event_id=registration.event_id, **_list_args())
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


def _id_arg(name: str) -> int | None:
    """A message id given to page from, None when not given; anything but an id is a 404."""
    text = request.args.get(name, "")
    if text == "":
        return None
    found = row_id(text)
    if found is None:
        abort(404)
    return found


@bp.get("/outbox", endpoint="outbox")
def outbox_page():
    """The outbox newest first, OUTBOX_PAGE messages a page: `before=<id>` pages to older ones, `after=<id>`
    back to newer ones (by id, so a page does not shift while new mail is queued)."""
    state = request.args.get("state") or None
    state = state if state in OUTBOX_STATES else None
    before, after = _id_arg("before"), _id_arg("after")
    query = select(OutboxMessage)
    if state:
        query = query.where(OutboxMessage.state == state)
    newest_first = query.order_by(OutboxMessage.id.desc()).limit(OUTBOX_PAGE + 1)
    if after is not None:
        found = list(db.session.scalars(query.where(OutboxMessage.id > after)
                                        .order_by(OutboxMessage.id).limit(OUTBOX_PAGE + 1)))
        has_newer = len(found) > OUTBOX_PAGE
        if not has_newer:  # fewer than a page is newer: that is the first page
            after = None
            found = list(db.session.scalars(newest_first))
            messages, has_older = found[:OUTBOX_PAGE], len(found) > OUTBOX_PAGE
        else:
            messages = found[:OUTBOX_PAGE][::-1]
            has_older = True
    else:
        found = list(db.session.scalars(newest_first.where(OutboxMessage.id < before) if before else newest_first))
        messages, has_older = found[:OUTBOX_PAGE], len(found) > OUTBOX_PAGE
        has_newer = bool(before and messages and db.session.scalar(
            select(query.where(OutboxMessage.id > messages[0].id).exists())))
    totals = dict(db.session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all())
    return render_template("admin/outbox.html", messages=messages, state=state, states=OUTBOX_STATES,
                           totals=totals, action_form=ConfirmForm(), page_size=OUTBOX_PAGE,
                           older=messages[-1].id if has_older and messages else None,
                           newer=messages[0].id if has_newer and messages else None, paged=bool(before or after),
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
    require_confirmation()
    with unit_of_work() as uow:
        outbox.retry_now(uow.session, message, now=uow.now)
        queued = message.state == "queued"
    flash(_("The message is queued again.") if queued else _("Only failed messages can be retried."),
          "success" if queued else "error")
    return redirect(url_for("admin.outbox", state=request.args.get("state"), before=request.args.get("before"),
                            after=request.args.get("after")), code=303)
