"""Registrations: one person's place (or place in line) at one event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .events import Event
from .types import UTCDateTime, utcnow

REGISTRATION_STATES = ("pending", "confirmed", "waitlisted", "cancelled", "expired")
#: The states that hold a seat or a place in line.
ACTIVE_STATES = ("pending", "confirmed", "waitlisted")


class Registration(db.Model):
    __tablename__ = "registrations"
    __table_args__ = (
        UniqueConstraint("event_id", "email_key"),
        Index("ix_registrations_event_state", "event_id", "state"),
        # Who came through their door, by state: the event page's attendance counts read this, not every row.
        Index("ix_registrations_came", "event_id", "state", sqlite_where=text("door_first_at IS NOT NULL"),
              postgresql_where=text("door_first_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    #: The whole-series signup that holds this place, if any (scheduler/models/series.py).
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("series_subscriptions.id", ondelete="SET NULL"),
                                                        nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Normalised by email-validator, as the person typed it otherwise.
    email: Mapped[str] = mapped_column(String(320))
    #: Lower-cased email: one registration per address per event.
    email_key: Mapped[str] = mapped_column(String(320))
    question: Mapped[str] = mapped_column(Text, default="")
    #: The attendee's IANA zone: times in their mail are shown in it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: The Babel code of the language their mail is written in (scheduler/languages.py).
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    state: Mapped[str] = mapped_column(String(20), default="pending")
    #: Order in the waitlist; smaller is earlier. Positions shown are ranks among waitlisted.
    waitlist_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Manage token = HMAC(SECRET_KEY, id + nonce) (see tokens.py); only its sha256 is kept.
    token_nonce: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    #: Personal calendar feed token, likewise; both None when revoked.
    feed_nonce: Mapped[str | None] = mapped_column(String(32), nullable=True)
    feed_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    reminders_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A pending hold lapses at this time unless confirmed.
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Last ICS SEQUENCE sent to this person (cancelling one registration sends a higher one).
    ics_sequence: Mapped[int] = mapped_column(Integer, default=0)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set when the person clicked the confirmation link (double opt-in) or none was needed.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Attendance: the first and the latest time this person came through their open door (domain/door.py).
    door_first_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    door_last_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    event: Mapped[Event] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<Registration {self.id} {self.state} event={self.event_id}>"
