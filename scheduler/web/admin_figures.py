"""What the admin's event page shows after the event and beside each speaker: read-only, no routes
(admin.py imports it; admin_follow_ups.py adds the actions)."""

from __future__ import annotations

from flask import current_app

from ..domain import feedback, follow_ups, reminders, speaker_feeds
from ..extensions import db
from ..follow_up_forms import RecordingForm
from ..models import Event
from ..tokens import feed_token
from ..urls import external_url, webcal_url

#: Questions listed on the event page at most; the CSV has them all.
QUESTIONS_SHOWN = 50


def after_event(event: Event) -> dict:
    """The recording form, attendance, feedback, the board's questions and the follow-up job, for the page."""
    form = RecordingForm(formdata=None, recording_url=event.recording_url or None,
                         recording_summary=event.recording_summary)
    answers, average = feedback.figures(db.session, event.id)
    job = next((j for j in reminders.event_jobs(db.session, event.id) if j.kind == "follow_up"), None)
    return {"recording_form": form, "turnout": follow_ups.attendance(db.session, event.id),
            "feedback_count": answers, "feedback_average": average,
            "feedback_comments": feedback.comments(db.session, event.id, limit=20),
            "board_figures": follow_ups.question_figures(db.session, event.id),
            "board_questions": list(follow_ups.all_questions(db.session, event.id, limit=QUESTIONS_SHOWN)),
            "follow_up_job": job}


def speaker_feed_links(event: Event) -> dict[int, str | None]:
    """Speaker id -> their calendar feed's address (webcal://), None while they have none (derived, no write)."""
    secret = current_app.config["SECRET_KEY"]
    links = {}
    for link in event.speakers:
        token = feed_token(secret, link.speaker, kind=speaker_feeds.PURPOSE)
        links[link.speaker_id] = webcal_url(external_url("feeds.speaker_feed", token=token)) if token else None
    return links
