"""The door: a registrant's or speaker's own join link, which sends them to the join URL only while it is open.

    /door/<registration id>/<token>     a registrant's door (sent in their mails, manage page and feed)
    /door/s/<link id>/<token>           a speaker's door to one event

Before the opening time a waiting page (countdown, board, calendar links); from then until the end a
302 to the event's join URL, recording attendance; after the end a page saying so. A cancelled or
lapsed registration, or a cancelled event, finds the door shut (410), a seat not confirmed yet too
(403); a wrong link finds nothing (404). The join URL is in no page and no redirect but the open door's.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from .. import clock
from ..database import writing
from ..domain import door as rules
from ..extensions import db
from ..models import Event
from ..services import unit_of_work
from ..timefmt import format_datetime, format_lead, format_range
from ..urls import door_url, speaker_door_url
from .feeds import google_calendar_url, outlook_calendar_url

bp = Blueprint("door", __name__)

#: A waiting page reloads itself at least this often (seconds), and exactly when the door opens if sooner.
REFRESH_AT_MOST = 3600
#: Shut doors: gone for good (410) or not yet (403).
SHUT_STATUS = {rules.CANCELLED_REGISTRATION: 410, rules.EVENT_CANCELLED: 410, rules.NOT_CONFIRMED: 403}


@bp.get("/door/<int:registration_id>/<token>")
def registrant(registration_id: int, token: str):
    registration = rules.find_registration(db.session, registration_id, token,
                                           secret=current_app.config["SECRET_KEY"])
    if registration is None:
        abort(404)
    event = registration.event
    return _door(event, registration, zone=registration.timezone or event.timezone,
                 shut=rules.shut_reason(event, registration), door_url=door_url(registration))


@bp.get("/door/s/<int:link_id>/<token>")
def speaker(link_id: int, token: str):
    link = rules.find_speaker_link(db.session, link_id, token, secret=current_app.config["SECRET_KEY"])
    if link is None:
        abort(404)
    return _door(link.event, link, zone=link.event.timezone, shut=rules.shut_reason(link.event),
                 door_url=speaker_door_url(link))


@bp.after_request
def private(response):
    """A door page names a person: no cache keeps it, no search engine lists it, and links out (the board,
    a calendar site) are not told the address it came from."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _door(event: Event, person, *, zone: str, shut: str | None, door_url: str):
    now = clock.now()
    if shut:
        return render_template("door/shut.html", event=event, reason=shut, **_links(event)), SHUT_STATUS[shut]
    state = rules.door_state(event, now=now)
    if state == rules.WAITING:
        return _waiting(event, zone=zone, now=now, door_url=door_url)
    if state == rules.ENDED:
        return render_template("door/ended.html", event=event, when=format_range(event.starts_at, event.ends_at, zone),
                               **_links(event))
    join_url = event.join_url
    if not join_url:
        return render_template("door/no_link.html", event=event, **_links(event))
    if request.method == "GET":  # a HEAD (a link checker) is not someone coming in
        _record(person, now=now)
    return redirect(join_url, code=302)


def _record(person, *, now: datetime) -> None:
    """Attendance, in a transaction of its own that writes from its start (BEGIN IMMEDIATE on SQLite)."""
    db.session.rollback()  # end the GET's read transaction: it cannot turn into a write on SQLite
    with writing(), unit_of_work() as uow:
        rules.record_pass(uow.session, person, now=now)


def _waiting(event: Event, *, zone: str, now: datetime, door_url: str):
    opens = rules.opens_at(event)
    left = max(1, int((opens - now).total_seconds()))
    page = render_template(
        "door/waiting.html", event=event, opens=format_datetime(opens, zone),
        when=format_range(event.starts_at, event.ends_at, zone), seconds_left=left, clock_left=_clock(left),
        in_words=_in_words(left),
        refresh=min(left, REFRESH_AT_MOST), door_url=door_url, **_links(event),
        google_url=google_calendar_url(event, join_url=door_url),
        outlook_url=outlook_calendar_url(event, join_url=door_url))
    return page


def _in_words(seconds: int) -> str:
    """"in 105 minutes", "in 5 hours", "in 3 days": never more than is left (Babel alone would round 1:45 up
    to "in 2 hours")."""
    minutes = -(-seconds // 60)
    if minutes < 120:
        return format_lead(minutes * 60)
    if minutes < 48 * 60:
        return format_lead(minutes // 60 * 3600)
    return format_lead(minutes // 1440 * 86400)


def _clock(seconds: int) -> str:
    """"2:03:04:05" (days, hours, minutes, seconds) or "03:04:05": what door.js counts down from."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    digits = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}:{digits}" if days else digits


def _links(event: Event) -> dict:
    """The event page, and the question board where anyone may read it. A registrant's own board link
    carries their manage token, which a forwarded door link must not give away: the door shows the
    public board only."""
    board = url_for("board.public", slug=event.slug) if event.board_public and event.status != "draft" else None
    return dict(event_url=url_for("public.event", slug=event.slug) if event.status != "draft" else None,
                board_url=board)
