"""Follow-up mail after the event: "thanks" with the recording and the answered questions to those who came,
"sorry we missed you" with the recording to confirmed no-shows. Rows are small (composed at delivery) and
keyed by event and registration, so each person gets one follow-up, whichever firing writes it first.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ..domain import follow_ups
from ..extensions import db
from ..languages import speaking
from ..models import Registration
from ..text import one_line, render_markdown
from ..timefmt import format_range
from ..urls import registration_url
from . import outbox
from .compose import render


def dedupe_key(event_id: int, registration_id: int) -> str:
    return f"follow-up:{event_id}:{registration_id}"


def follow_up_rows(session: Session, event, *, now: datetime) -> list[dict]:
    """One deferred row per attendee and per confirmed no-show (everyone confirmed counts as an attendee
    when the event had no door); `event` may be a snapshot."""
    return [dict(
        dedupe_key=dedupe_key(event.id, person.id), kind=follow_ups.ATTENDED if person.attended else follow_ups.MISSED,
        to_addr=person.email, to_name=one_line(person.name)[:200], event_id=event.id, registration_id=person.id,
        context={}, state="queued", attempts=0, next_attempt_at=now, created_at=now,
    ) for person in follow_ups.follow_up_recipients(session, event.id, doors=bool(event.join_url))]


@outbox.renders(follow_ups.ATTENDED, follow_ups.MISSED)
def compose(row) -> None:
    """The follow-up with the recording as it is now (a corrected link goes out corrected), in their language."""
    registration = db.session.get(Registration, row.registration_id) if row.registration_id else None
    if registration is None:
        raise LookupError("the registration no longer exists")
    event = registration.event
    questions = []
    if row.kind == follow_ups.ATTENDED:
        questions = [{"name": q.shown_name, "text": q.body, "votes": q.votes}
                     for q in follow_ups.answered_questions(db.session, event.id)]
    with speaking(registration.language):
        row.subject, row.body_text, row.body_html = render(
            row.kind, event=event, name=registration.name, recording_url=event.recording_url,
            summary=event.recording_summary, summary_html=render_markdown(event.recording_summary),
            questions=questions, feedback_url=registration_url("feedback.form", registration),
            manage_url=registration_url("signup.manage", registration),
            when=format_range(event.starts_at, event.ends_at, registration.timezone or event.timezone))
