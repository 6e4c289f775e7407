"""Mail of planned jobs: attendee reminders, "starting soon", and the speaker briefing, nudge and thank-you.

Builds outbox rows (rendered, with their dedupe keys) for scheduler.dispatch to insert in bulk,
and connects the late-registrant receiver: imported by create_app through scheduler.jobs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import signals
from ..domain import board, follow_ups, reminders, speaker_feeds
from ..labels import role_in_text
from ..languages import known, speaking
from ..models import Event, EventSpeaker, PlannedJob, Registration, Speaker
from ..text import one_line
from ..timefmt import format_duration, format_lead, format_range, format_short
from ..tokens import manage_token
from ..urls import door_url, external_url, speaker_door_url, webcal_url
from . import outbox

SPEAKER_TEMPLATES = {"briefing": "speaker_briefing", "nudge": "speaker_nudge", "thanks": "speaker_thanks"}


def lead_seconds(event: Event, *, now: datetime, nominal: int | None = None) -> int:
    """The planned offset when on time, else the real time left, to the minute (hours, days when long)."""
    left = (event.starts_at - now).total_seconds()
    if nominal is not None and abs(left - nominal) < 60:
        return nominal
    minutes = max(1, round(left / 60))
    if minutes % 1440 == 0 or minutes >= 2 * 1440:
        return round(minutes / 1440) * 86400
    if minutes % 60 == 0 or minutes >= 180:
        return round(minutes / 60) * 3600
    return minutes * 60


def starts_in(event: Event, *, now: datetime, nominal: int | None = None) -> str:
    """"in 1 hour", "in 1 Stunde": the time left as a phrase, in the current locale."""
    return format_lead(lead_seconds(event, now=now, nominal=nominal))


def attendee_links(secret: str, registration) -> tuple[str, str]:
    """(manage URL, one-click unsubscribe URL) for a registration or a row with id and token_nonce."""
    token = manage_token(secret, registration)
    return external_url("signup.manage", token=token), external_url("signup.unsubscribe", token=token)


#: Stand-ins rendered once per zone and replaced per recipient (here and in announcements). Control characters
#: never occur in names (one_line strips them) nor in URLs, so a recipient's own text cannot contain one.
#: SUB (\x1a), not \x1c-\x1f, which str.strip() takes for whitespace: a body that begins with the name
#: (Chinese puts it before the greeting) keeps its stand-in whole.
NAME, MANAGE, UNSUBSCRIBE = "\x1aN\x1a", "\x1aM\x1a", "\x1aU\x1a"
#: The recipient's own door link (urls.door_url), the only join link a reminder carries.
_DOOR = "\x1aD\x1a"
#: The event's time in the recipient's zone: a reminder is rendered once per language, and put in per zone.
_WHEN = "\x1aW\x1a"


def put_in(text: str, html: str, values) -> tuple[str, str]:
    """A rendering's stand-ins replaced by the recipient's (mark, value) pairs, escaped in the HTML."""
    for mark, value in values:
        text = text.replace(mark, value)
        html = html.replace(mark, escape(value))
    return text, html


def reminder_rows(job_key: str, event: Event, recipients, *, offset: int, now: datetime,
                  templates: dict | None = None) -> list[dict]:
    """One rendered reminder per recipient (plain rows: id, name, email, timezone, token_nonce).

    The templates are rendered once per language with stand-ins for the time, the name and the links;
    the time is put in once per recipient zone, the rest per recipient (escaped for HTML): far cheaper
    than rendering each message, and the output is the same (tested). `templates` keeps those
    renderings for the next call with the same event (the pages of one firing).
    """
    secret = current_app.config["SECRET_KEY"]
    lead = lead_seconds(event, now=now, nominal=offset)
    rendered = {} if templates is None else templates  # (language, lead) and (zone, language, lead) -> row
    rows = []
    for person in recipients:
        zone, language = reader_zone(person.timezone, event.timezone), known(getattr(person, "language", None))
        template = rendered.get((zone, language, lead))
        if template is None:
            with speaking(language):
                base = rendered.get((language, lead))
                if base is None:
                    base = rendered[language, lead] = outbox.message_row(
                        kind="reminder", to_addr="", dedupe_key="", now=now, event_id=event.id, event=event,
                        name=NAME, when=_WHEN, starts_in=format_lead(lead), manage_url=MANAGE,
                        unsubscribe_url=UNSUBSCRIBE, door_url=_DOOR if event.join_url else "")
                when = format_range(event.starts_at, event.ends_at, zone)
            text, html = put_in(base["body_text"], base["body_html"], ((_WHEN, when),))
            template = rendered[zone, language, lead] = base | dict(
                subject=base["subject"].replace(_WHEN, when), body_text=text, body_html=html)
        manage_url, unsubscribe_url = attendee_links(secret, person)
        text, html = put_in(template["body_text"], template["body_html"], (
            (NAME, person.name), (MANAGE, manage_url), (UNSUBSCRIBE, unsubscribe_url), (_DOOR, door_url(person))))
        rows.append(template | dict(
            dedupe_key=f"{job_key}:{person.id}"[:200], to_addr=person.email, to_name=one_line(person.name)[:200],
            registration_id=person.id, unsubscribe_url=unsubscribe_url, body_text=text, body_html=html,
            created_at=now, next_attempt_at=now))
    return rows


def speaker_rows(session: Session, job: PlannedJob, event: Event, *, now: datetime) -> list[dict]:
    """One message per speaker with an email address, for a briefing, nudge or thank-you job, in their language."""
    kind = SPEAKER_TEMPLATES[job.kind]
    figures = reminders.event_figures(session, event)
    context: dict = dict(event=event, figures=figures)
    if job.kind == "briefing":
        top, total = board.top_questions(session, event)
        context.update(questions=[{"name": q.shown_name, "text": q.body, "votes": q.votes} for q in top],
                       questions_total=total)
    elif job.kind == "thanks":
        context.update(attendance=follow_ups.attendance(session, event.id),
                       board_figures=follow_ups.question_figures(session, event.id))
    key = reminders.job_key(job)
    # Each speaker's own door (`event` may be a snapshot without the rows its door links are made of).
    doors = {row.speaker_id: speaker_door_url(row) for row in session.scalars(
        select(EventSpeaker).where(EventSpeaker.event_id == event.id))} if event.join_url else {}
    rows = []
    for link in event.speakers:
        speaker = link.speaker
        if not speaker.email:
            continue
        # The feed first: issuing its nonce also fixes the token of the speaker's moderation link.
        feed = {"feed_url": speaker_feed_link(session, link.speaker_id)} if job.kind in ("briefing", "nudge") else {}
        extra = board_links(session, event, link) if job.kind in ("briefing", "nudge") else {}
        extra["door_url"] = doors.get(link.speaker_id, "")
        extra.update(feed)
        with speaking(getattr(speaker, "language", None)):
            worded = dict(when=format_range(event.starts_at, event.ends_at, event.timezone))
            if job.kind == "briefing":
                worded.update(run_of_show=run_of_show(event))
            elif job.kind == "nudge":
                worded.update(starts_in=starts_in(event, now=now, nominal=job.offset_seconds))
            rows.append(outbox.message_row(
                kind=kind, to_addr=speaker.email, to_name=speaker.name, dedupe_key=f"{key}:s{speaker.id}", now=now,
                event_id=event.id, name=speaker.name, role=role_in_text(link.role), **context, **worded, **extra,
            ))
    return rows


def speaker_feed_link(session: Session, speaker_id: int) -> str:
    """The speaker's calendar feed (webcal://), issued on first use (the job's transaction keeps it)."""
    speaker = session.get(Speaker, speaker_id)
    token = speaker_feeds.feed_token(session, speaker, secret=current_app.config["SECRET_KEY"])
    return webcal_url(external_url("feeds.speaker_feed", token=token))


def board_links(session: Session, event, link) -> dict:
    """The question board as this speaker can open it, and its presenter view: their own moderation link
    (host, moderator), else the public board when visitors may read it; None when neither. `event` and
    `link` may be plain snapshots."""
    moderates = link.role in board.MODERATOR_ROLES
    if moderates:
        row = session.scalar(select(EventSpeaker).where(EventSpeaker.event_id == event.id,
                                                        EventSpeaker.speaker_id == link.speaker_id))
        if row is not None:
            token = board.moderator_token(current_app.config["SECRET_KEY"], row, row.speaker)
            return dict(board_url=external_url("board.speaker", link_id=row.id, token=token), moderates=True,
                        presenter_url=external_url("board.speaker_presenter", link_id=row.id, token=token))
    if event.board_public:
        return dict(board_url=external_url("board.public", slug=event.slug), moderates=False,
                    presenter_url=external_url("board.public_presenter", slug=event.slug))
    return dict(board_url=None, moderates=moderates, presenter_url=None)


def run_of_show(event: Event) -> list[dict]:
    """What happens when, in the event's zone and the current language: reminders, the nudge, the live part,
    the thank-you."""
    items = [(event.starts_at - timedelta(seconds=s),
              _("Attendees get their %(offset)s reminder", offset=format_duration(s)))
             for s in event.reminder_offsets or []]
    if event.nudge_enabled:
        items.append((event.starts_at - timedelta(seconds=event.nudge_offset),
                      _("You get the go-live nudge with the join link")))
    people = ", ".join(f"{link.speaker.name} ({role_in_text(link.role)})" for link in event.speakers)
    items.append((event.starts_at, _("Live: %(people)s", people=people) if people else _("Live")))
    items.append((event.ends_at, _("End")))
    if event.thanks_enabled:
        items.append((event.ends_at + timedelta(seconds=event.thanks_offset),
                      _("Thank-you with attendance figures")))
    items.sort(key=lambda item: item[0])
    return [{"time": format_short(moment, event.timezone), "what": what} for moment, what in items]


def reader_zone(name: str | None, fallback: str) -> str:
    """The recipient's zone when it is a real one, else the event's."""
    try:
        ZoneInfo(name or fallback)
    except (KeyError, ValueError):
        return fallback
    return name or fallback


@signals.registration_confirmed.connect
@signals.registration_promoted.connect
def on_late_registration(registration: Registration, *, session: Session, now: datetime, **_) -> None:
    """Registered after the last reminder went out but before the start: one "starting soon" message."""
    if not reminders.needs_starting_soon(session, registration, now=now):
        return
    manage_url, unsubscribe_url = attendee_links(current_app.config["SECRET_KEY"], registration)
    event = registration.event
    with speaking(registration.language):
        outbox.queue(
            session, kind="starting_soon", to_addr=registration.email, to_name=registration.name,
            dedupe_key=f"starting-soon:{event.id}:{int(event.starts_at.timestamp())}:{registration.id}", now=now,
            event_id=event.id, registration_id=registration.id, unsubscribe_url=unsubscribe_url, event=event,
            name=registration.name, when=format_range(event.starts_at, event.ends_at,
                                                      reader_zone(registration.timezone, event.timezone)),
            starts_in=starts_in(event, now=now), manage_url=manage_url,
            door_url=door_url(registration) if event.join_url else "",
        )
