"""Events, tags, speakers and who speaks where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import JSONList, UTCDateTime, utcnow

EVENT_KINDS = ("talk", "panel", "live discussion", "workshop", "meetup")
EVENT_STATUSES = ("draft", "published", "cancelled")
SPEAKER_ROLES = ("host", "moderator", "panelist", "speaker")
DEFAULT_REMINDERS = [86400, 3600]  # 1d, 1h

event_tags = Table(
    "event_tags",
    db.metadata,
    Column("event_id", ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120))


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("seats_taken >= 0", name="seats_taken_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    #: Markdown source; rendered and sanitised on display.
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20), default="talk")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: IANA zone the organiser thinks in; times are stored in UTC.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    venue: Mapped[str] = mapped_column(String(300), default="")
    #: Private: only confirmed registrants and speakers ever see it.
    join_url: Mapped[str] = mapped_column(String(500), default="")
    #: None means unlimited.
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signup_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    signup_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    #: Attendee reminder offsets before the start, in seconds, largest first.
    reminder_offsets: Mapped[list[int]] = mapped_column(JSONList, default=lambda: list(DEFAULT_REMINDERS))
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    briefing_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Seconds before the start.
    briefing_offset: Mapped[int] = mapped_column(Integer, default=3 * 86400)
    nudge_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Seconds before the start.
    nudge_offset: Mapped[int] = mapped_column(Integer, default=15 * 60)
    thanks_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Seconds after the end.
    thanks_offset: Mapped[int] = mapped_column(Integer, default=3600)
    #: ICS SEQUENCE; bumped on every change of time, place or join URL.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    #: Seats held (confirmed plus pending), changed with every registration that takes or frees one,
    #: so a signup takes its seat with one conditional UPDATE instead of counting rows under a lock.
    seats_taken: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The last waitlist number handed out; numbers only grow, positions are ranks among them.
    waitlist_last: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    tags: Mapped[list[Tag]] = relationship(secondary=event_tags, order_by="Tag.slug", lazy="selectin")
    speakers: Mapped[list[EventSpeaker]] = relationship(
        back_populates="event", cascade="all, delete-orphan", order_by="EventSpeaker.position", lazy="selectin"
    )

    def __repr__(self) -> str:
        return f"<Event {self.slug!r} {self.status}>"


class Speaker(db.Model):
    __tablename__ = "speakers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), default="", index=True)
    affiliation: Mapped[str] = mapped_column(String(200), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    photo_url: Mapped[str] = mapped_column(String(500), default="")
    #: Speaker feed token = HMAC(SECRET_KEY, id + nonce); only its sha256 is kept. None when revoked.
    feed_nonce: Mapped[str | None] = mapped_column(String(32), nullable=True)
    feed_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    appearances: Mapped[list[EventSpeaker]] = relationship(back_populates="speaker")


class EventSpeaker(db.Model):
    __tablename__ = "event_speakers"
    __table_args__ = (UniqueConstraint("event_id", "speaker_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    speaker_id: Mapped[int] = mapped_column(ForeignKey("speakers.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="speaker")
    position: Mapped[int] = mapped_column(Integer, default=0)

    event: Mapped[Event] = relationship(back_populates="speakers")
    speaker: Mapped[Speaker] = relationship(back_populates="appearances", lazy="joined")
