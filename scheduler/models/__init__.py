"""Typed SQLAlchemy models, one module per part of the domain."""

from .accounts import TOKEN_SCOPES, ApiToken, User
from .board import BOARD_MODES, QUESTION_STATES, Question, Vote
from .events import (
    DEFAULT_REMINDERS,
    EVENT_KINDS,
    EVENT_STATUSES,
    SPEAKER_ROLES,
    Event,
    EventSpeaker,
    Speaker,
    Tag,
)
from .follow_ups import AUDIENCES, Announcement, Feedback
from .jobs import JOB_KINDS, JOB_STATES, PlannedJob, SchedulerHeartbeat
from .mail import OUTBOX_STATES, OutboxMessage
from .registrations import ACTIVE_STATES, REGISTRATION_STATES, Registration
from .series import SERIES_FREQUENCIES, SUBSCRIPTION_STATES, Series, SeriesSkip, SeriesSubscription
from .types import MAX_ID, UTCDateTime, utcnow

__all__ = [
    "ACTIVE_STATES", "AUDIENCES", "Announcement", "ApiToken", "BOARD_MODES", "DEFAULT_REMINDERS", "EVENT_KINDS",
    "EVENT_STATUSES", "Event",
    "EventSpeaker", "Feedback", "JOB_KINDS", "JOB_STATES", "MAX_ID", "OUTBOX_STATES", "OutboxMessage", "PlannedJob",
    "QUESTION_STATES", "Question", "REGISTRATION_STATES", "Registration", "SPEAKER_ROLES", "SchedulerHeartbeat",
    "Speaker", "TOKEN_SCOPES", "Tag", "UTCDateTime", "User", "Vote", "utcnow",
    "SERIES_FREQUENCIES", "SUBSCRIPTION_STATES", "Series", "SeriesSkip", "SeriesSubscription",
]
