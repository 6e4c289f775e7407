"""Public pages: the event list and each event's page."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request, send_from_directory
from sqlalchemy import select

from .. import clock
from ..domain import queries, seats
from ..extensions import db
from ..models import Event
from .converters import row_id

bp = Blueprint("public", __name__)
PAGE_SIZE = 20


def _page() -> int:
    page = row_id(request.args.get("page", "1")) or 1
    return page if page < 10_000 else 1


@bp.get("/")
def index():
    page = _page()
    found = queries.upcoming(db.session, now=clock.now(), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_template("events/list.html", events=found[:PAGE_SIZE], page=page,
                           has_next=len(found) > PAGE_SIZE, heading="Upcoming events", past=False,
                           counts=queries.counts(db.session, [e.id for e in found]))


@bp.get("/favicon.ico")
def favicon():
    """The site icon where browsers look for it without a <link rel="icon">."""
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml")


@bp.get("/past")
def past():
    page = _page()
    found = queries.past(db.session, now=clock.now(), limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_template("events/list.html", events=found[:PAGE_SIZE], page=page,
                           has_next=len(found) > PAGE_SIZE, heading="Past events", past=True,
                           counts=queries.counts(db.session, [e.id for e in found]))


def published_event(slug: str) -> Event:
    """The public event with this slug (published or cancelled), or 404."""
    event = db.session.scalar(select(Event).where(Event.slug == slug))
    if event is None or event.status == "draft":
        abort(404)
    return event


@bp.get("/events/<slug>")
def event(slug: str):
    event = published_event(slug)
    return render_template("events/detail.html", event=event, seats_left=seats.seats_left(event), now=clock.now())
