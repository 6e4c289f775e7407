"""Public pages: upcoming and past events, a tag's events, and each event's page.

Each is served from the page cache (page_cache.py): one small query gives the ids and versions of
what the page shows, and the page is rendered only when no copy for those versions is stored.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request, send_from_directory
from flask_babel import gettext as _
from sqlalchemy import select

from .. import clock
from ..domain import seats
from ..extensions import db
from ..models import Event, Tag
from ..models.events import event_tags
from . import page_cache
from .converters import row_id

bp = Blueprint("public", __name__)
PAGE_SIZE = 20
PUBLIC = ("published", "cancelled")


def _page() -> int:
    page = row_id(request.args.get("page", "1")) or 1
    return page if page < 10_000 else 1


def _upcoming(now):
    """Published and cancelled events that have not ended, soonest first."""
    return (Event.status.in_(PUBLIC), Event.ends_at >= now), (Event.starts_at, Event.id)


def _past(now):
    """Published events that have ended, latest first."""
    return (Event.status == "published", Event.ends_at < now), (Event.starts_at.desc(), Event.id.desc())


def _listed(which, page: int, *where, joins=()) -> tuple[tuple[int, int], ...]:
    """(id, version) of the events on one page of a list, one more to tell whether a next page exists."""
    conditions, order = which(clock.now())
    query = select(Event.id, Event.version)
    for join in joins:
        query = query.join(*join)
    rows = db.session.execute(query.where(*conditions, *where).order_by(*order)
                              .limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE))
    return tuple((event_id, version) for event_id, version in rows)


def _events(rows) -> list[Event]:
    """The events of a list page, in its order, with their tags and speakers."""
    ids = [event_id for event_id, _ in rows[:PAGE_SIZE]]
    found = {e.id: e for e in db.session.scalars(select(Event).where(Event.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def _list_page(name: str, rows, page: int, **context):
    def render(**holes):
        return render_template("events/list.html", events=_events(rows), page=page,
                               has_next=len(rows) > PAGE_SIZE, **context, **holes)

    return page_cache.serve((name, page, rows, tuple(sorted(context.items()))), render)


@bp.get("/")
def index():
    page = _page()
    rows = page_cache.versions(("upcoming", page), lambda: _listed(_upcoming, page))
    return _list_page("upcoming", rows, page, heading=_("Upcoming events"), past=False)


@bp.get("/past")
def past():
    page = _page()
    rows = page_cache.versions(("past", page), lambda: _listed(_past, page))
    return _list_page("past", rows, page, heading=_("Past events"), past=True)


@bp.get("/tags/<slug>")
def tag(slug: str):
    """A series: its upcoming events, and its feed to subscribe to."""
    page = _page()

    def compute():
        found = db.session.execute(select(Tag.id, Tag.slug, Tag.name).where(Tag.slug == slug)).first()
        if found is None:
            return None
        joins = ((event_tags, event_tags.c.event_id == Event.id),)
        return tuple(found), _listed(_upcoming, page, event_tags.c.tag_id == found.id, joins=joins)

    answer = page_cache.versions(("tag", slug, page), compute)
    if answer is None:
        abort(404)
    (_tag_id, tag_slug, name), rows = answer
    return _list_page("tag", rows, page, heading=_("Upcoming: %(name)s", name=name), past=False, tag_slug=tag_slug)


@bp.get("/favicon.ico")
def favicon():
    """The site icon where browsers look for it without a <link rel="icon">."""
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml")


def published_event(slug: str) -> Event:
    """The public event with this slug (published or cancelled), or 404."""
    event = db.session.scalar(select(Event).where(Event.slug == slug))
    if event is None or event.status == "draft":
        abort(404)
    return event


@bp.get("/events/<slug>")
def event(slug: str):
    def compute():
        row = db.session.execute(select(Event.id, Event.version, Event.status, Event.ends_at)
                                 .where(Event.slug == slug)).first()
        return None if row is None else tuple(row)

    found = page_cache.versions(("event", slug), compute)
    if found is None or found[2] == "draft":
        abort(404)
    event_id, version, _, ends_at = found
    ended = ends_at < clock.now()

    def render(**holes):
        shown = db.session.get(Event, event_id)
        return render_template("events/detail.html", event=shown, seats_left=seats.seats_left(shown), ended=ended,
                               **holes)

    return page_cache.serve(("event", event_id, version, ended), render)
