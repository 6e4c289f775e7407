"""Planned work: reminders and speaker jobs as rows with a due time and a state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .events import Event
from .types import UTCDateTime, utcnow

JOB_KINDS = ("reminder", "briefing", "nudge", "thanks", "follow_up")
#: Kinds due after the event's end (the rest are due before its start).
AFTER_END_KINDS = ("thanks", "follow_up")
JOB_STATES = ("planned", "running", "done", "skipped", "cancelled")


class PlannedJob(db.Model):
    __tablename__ = "planned_jobs"
    __table_args__ = (
        UniqueConstraint("event_id", "kind", "offset_seconds"),
        Index("ix_planned_jobs_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    #: Seconds before the start (after the end, for thanks; 0 for the follow-up, due when the recording is given).
    offset_seconds: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(20), default="planned")
    #: Why it was skipped or cancelled.
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    messages_queued: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[Event] = relationship(lazy="joined")


class SchedulerHeartbeat(db.Model):
    __tablename__ = "scheduler_heartbeats"

    #: host:pid:random — one row per scheduler process.
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    mode: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
