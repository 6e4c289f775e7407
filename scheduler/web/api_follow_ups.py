"""Announcements and the after-the-event part of the API: write to registrants, give the recording, read the
figures. Recorded here and routed by api.py with the other operations."""

from __future__ import annotations

from flask import g, jsonify
from flask_login import current_user

from ..domain import announcements, feedback, follow_ups, reminders
from ..extensions import db
from ..models import Announcement, Event
from ..services import unit_of_work
from . import api_schemas as s
from .api_input import find_event, parse_body
from .api_registry import operation


def _announcement(event: Event, row: Announcement) -> s.AnnouncementOut:
    return s.AnnouncementOut(id=row.id, event=event.slug, subject=row.subject, body=row.body, audience=row.audience,
                             recipients=row.recipients, created_at=row.created_at)


def _sender() -> str:
    token = g.get("api_token")
    if token is not None:
        return f"API token {token.name}"
    return getattr(current_user, "email", "")


@operation("POST", "/events/<slug>/announcements",
           summary="Write to an event's confirmed, waitlisted or all registrants (once each, through the outbox)",
           ok={201: s.AnnouncementOut}, scope="write", body=s.AnnouncementCreate, errors=(404,),
           tag="announcements")
def announcement_create(slug: str):
    with unit_of_work() as uow:
        event = find_event(slug)
        data = parse_body(s.AnnouncementCreate)
        sent = announcements.send_announcement(uow.session, event, subject=data.subject, body=data.body,
                                               audience=data.audience, now=uow.now, sent_by=_sender())
    return jsonify(_announcement(event, sent).model_dump(mode="json")), 201


@operation("GET", "/events/<slug>/announcements", summary="The announcements sent for an event, newest first",
           ok={200: s.AnnouncementList}, scope="read", errors=(404,), tag="announcements")
def announcement_list(slug: str):
    event = find_event(slug)
    rows = announcements.event_announcements(db.session, event.id)
    return jsonify(s.AnnouncementList(announcements=[_announcement(event, a) for a in rows]).model_dump(mode="json"))


def _follow_up(event: Event) -> s.FollowUpOut:
    seen = follow_ups.attendance(db.session, event.id)
    answers, average = feedback.figures(db.session, event.id)
    board = follow_ups.question_figures(db.session, event.id)
    job = next((j for j in reminders.event_jobs(db.session, event.id) if j.kind == "follow_up"), None)
    return s.FollowUpOut(
        event=event.slug, recording_url=event.recording_url, recording_summary=event.recording_summary,
        follow_up_state=job.state if job else None, attended=seen.came, missed=seen.missed,
        attendance_rate=seen.rate, feedback_count=answers, feedback_average=average, questions_asked=board.asked,
        questions_answered=board.answered, votes=board.votes)


@operation("PUT", "/events/<slug>/recording",
           summary="Give the recording (and a summary): attendees and no-shows get their follow-up after the end",
           ok={200: s.FollowUpOut}, scope="write", body=s.RecordingSet, errors=(404,), tag="after the event")
def recording_set(slug: str):
    with unit_of_work() as uow:
        event = find_event(slug)
        data = parse_body(s.RecordingSet)
        follow_ups.set_recording(uow.session, event, url=data.recording_url, summary=data.recording_summary,
                                 now=uow.now)
    return jsonify(_follow_up(event).model_dump(mode="json"))


@operation("GET", "/events/<slug>/follow-up",
           summary="After the event: recording, attendance, feedback and question figures",
           ok={200: s.FollowUpOut}, scope="read", errors=(404,), tag="after the event")
def follow_up(slug: str):
    return jsonify(_follow_up(find_event(slug)).model_dump(mode="json"))
