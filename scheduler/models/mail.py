"""The outbox: every email is a row first, written with the change that causes it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import JSONDict, UTCDateTime, utcnow

OUTBOX_STATES = ("queued", "sending", "sent", "failed")


class OutboxMessage(db.Model):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
        Index("ix_outbox_state_id", "state", "id"),  # the admin's outbox page, filtered by state, newest first
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: One logical message, e.g. "reminder:7:3600:42"; queuing it twice is a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    #: Template name: confirmed, reminder, update, ...
    kind: Mapped[str] = mapped_column(String(40))
    to_addr: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str] = mapped_column(String(200), default="")
    #: The rendered message. None until delivery for a message composed then (see `context`).
    subject: Mapped[str | None] = mapped_column(String(300), nullable=True)
    body_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: For a message composed at delivery: what its renderer needs beside the rows it names.
    context: Mapped[dict | None] = mapped_column(JSONDict, nullable=True)
    #: An iCalendar invitation to attach, with its METHOD (REQUEST or CANCEL).
    ics: Mapped[str | None] = mapped_column(Text, nullable=True)
    ics_method: Mapped[str | None] = mapped_column(String(10), nullable=True)
    #: Absolute one-click unsubscribe URL (RFC 8058), for reminders and announcements.
    unsubscribe_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"), nullable=True, index=True)
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("registrations.id", ondelete="SET NULL"), nullable=True
    )
    state: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Who claimed it and when: a claim older than the lease is taken as lost.
    #: The deliverer holding the row while it is sent; on a sent row, the scheduler that sent it.
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
