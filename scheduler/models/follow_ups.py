"""What the organiser sends around an event: announcements, and the feedback the follow-up mail asks for."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .events import Event
from .registrations import Registration
from .types import UTCDateTime, utcnow

#: Who an announcement goes to: confirmed registrants, the waitlist, or both.
AUDIENCES = ("confirmed", "waitlisted", "all")


class Announcement(db.Model):
    """A message the organiser wrote to an event's registrants; one outbox row per recipient names it."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    #: Markdown source as written; `body_html` is its sanitised HTML, rendered once when saved.
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    audience: Mapped[str] = mapped_column(String(20))
    #: How many messages it was queued as.
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    #: Who sent it: an organiser's email or an API token's name, for the admin's list.
    sent_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[Event] = relationship(lazy="raise")


class Feedback(db.Model):
    """One registrant's answer to the follow-up's question: a rating and an optional comment, once."""

    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint("rating >= 1 AND rating <= 5", name="rating_1_to_5"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    #: Unique: one answer per registrant, whoever submits twice at the same moment.
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"), unique=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    registration: Mapped[Registration] = relationship(lazy="raise")
