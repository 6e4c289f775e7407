"""After the event: the recording and summary, who came and who did not, and the figures the organiser sees.

Giving the recording plans the event's "follow_up" job (reminders.desired_jobs), due at the end or at
once if the event is over; when it fires, each attendee gets "thanks" and each confirmed no-show
"sorry we missed you", one message per registration whatever the job's later moves (the dedupe key
names only the event and the registration).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput
from ..models import Event, Question, Registration
from ..text import strip_controls
from . import reminders
from .door import attendee_filter

MAX_SUMMARY = 5000
MAX_URL = 500
_URL = re.compile(r"^https?://\S+$")
#: Outbox kinds, by whether the registrant came through the door.
ATTENDED, MISSED = "follow_up_attended", "follow_up_missed"


def set_recording(session: Session, event: Event, *, url: str, summary: str = "", now: datetime) -> Event:
    """Give (or correct) the recording link and summary; the first one plans the follow-up mail."""
    url = (url or "").strip()
    summary = strip_controls(summary or "").strip()
    errors: dict[str, list[str]] = {}
    if not _URL.fullmatch(url) or len(url) > MAX_URL or url != strip_controls(url, keep_newlines=False):
        errors["recording_url"] = [f"Use a full http:// or https:// link of at most {MAX_URL} characters."]
    if len(summary) > MAX_SUMMARY:
        errors["recording_summary"] = [f"Keep the summary to {MAX_SUMMARY:,} characters."]
    if errors:
        raise InvalidInput("Some fields are not valid.", fields=errors)
    if event.status != "published":
        raise Conflict("Only a published event has a recording to send." if event.status == "draft"
                       else "This event was cancelled: there is no recording to send.")
    event.recording_url, event.recording_summary = url, summary
    if event.recording_added_at is None:
        event.recording_added_at = now
    event.updated_at = now
    session.flush()
    reminders.plan_event_jobs(session, event, now=now)
    return event


def follow_up_recipients(session: Session, event_id: int, *, doors: bool = True) -> list:
    """Plain rows (id, name, email, attended) of everyone the follow-up goes to, in id order.

    Without `doors` (an event with no online join link, so no door to count people at), every
    confirmed registrant counts as having come: nobody is told they were missed on a guess.
    """
    came = Registration.door_first_at.is_not(None) if doors else Registration.state.in_(("confirmed",))
    return list(session.execute(
        select(Registration.id, Registration.name, Registration.email, came.label("attended"))
        .where(Registration.event_id == event_id,
               (Registration.door_first_at.is_not(None)) | (Registration.state == "confirmed"))
        .order_by(Registration.id)))


@dataclass(frozen=True)
class Attendance:
    came: int
    #: Confirmed and never came through the door.
    missed: int

    @property
    def expected(self) -> int:
        return self.came + self.missed

    @property
    def rate(self) -> float | None:
        """Share of those expected who came, 0 to 1; None when nobody was expected."""
        return self.came / self.expected if self.expected else None


def attendance(session: Session, event_id: int) -> Attendance:
    """Counted from two indexes (those who came, by state; everyone by state), not from every registration:
    the same at 100,000 signups as at 100."""
    came = dict(session.execute(select(Registration.state, func.count()).where(*attendee_filter(event_id))
                                .group_by(Registration.state)).all())
    confirmed = session.scalar(select(func.count()).select_from(Registration).where(
        Registration.event_id == event_id, Registration.state == "confirmed"))
    return Attendance(came=sum(came.values()), missed=(confirmed or 0) - came.get("confirmed", 0))


@dataclass(frozen=True)
class QuestionFigures:
    asked: int
    answered: int
    votes: int


def question_figures(session: Session, event_id: int) -> QuestionFigures:
    """Questions on the board (merged duplicates not counted twice), answered ones, and votes cast."""
    asked, answered, votes = session.execute(select(
        func.count(Question.id), func.count(case((Question.state == "answered", 1))),
        func.coalesce(func.sum(Question.votes), 0),
    ).where(Question.event_id == event_id, Question.merged_into_id.is_(None))).one()
    return QuestionFigures(asked=asked or 0, answered=answered or 0, votes=int(votes or 0))


def answered_questions(session: Session, event_id: int, *, limit: int = 50) -> list[Question]:
    """The questions marked answered, most voted first."""
    return list(session.scalars(
        select(Question).where(Question.event_id == event_id, Question.state == "answered")
        .order_by(Question.votes.desc(), Question.answered_at, Question.id).limit(limit)))


def all_questions(session: Session, event_id: int, *, limit: int | None = None):
    """Every question of the board, most voted first (for the admin page and its CSV)."""
    query = (select(Question).where(Question.event_id == event_id)
             .order_by(Question.votes.desc(), Question.created_at, Question.id))
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query.execution_options(yield_per=500))
