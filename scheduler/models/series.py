"""Series: a recurrence rule whose occurrences are events, skipped dates, and whole-series signups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .events import DEFAULT_REMINDERS
from .types import JSONList, UTCDateTime, utcnow

SERIES_FREQUENCIES = ("weekly", "monthly")
SERIES_STATUSES = ("draft", "published", "cancelled")
SUBSCRIPTION_STATES = ("pending", "active", "cancelled")


class Series(db.Model):
    """A rule (RFC 5545 RRULE parts) in the series' zone, and the template each new occurrence is made from."""

    __tablename__ = "series"
    __table_args__ = (
        CheckConstraint("interval >= 1", name="interval_positive"),
        CheckConstraint("duration_minutes > 0", name="duration_positive"),
        CheckConstraint("count IS NULL OR count >= 1", name="count_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(20), default="live discussion")
    #: IANA zone: every occurrence starts at the same wall-clock time in it, across DST changes.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    venue: Mapped[str] = mapped_column(String(300), default="")
    join_url: Mapped[str] = mapped_column(String(500), default="")
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reminder_offsets: Mapped[list[int]] = mapped_column(JSONList, default=lambda: list(DEFAULT_REMINDERS))
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Tag names each new occurrence gets.
    tags: Mapped[list[str]] = mapped_column(JSONList, default=list)
    #: [speaker id, role] pairs each new occurrence gets.
    speakers: Mapped[list[list]] = mapped_column(JSONList, default=list)
    #: "weekly" or "monthly" (RRULE FREQ).
    freq: Mapped[str] = mapped_column(String(10), default="weekly")
    interval: Mapped[int] = mapped_column(Integer, default=1)
    #: RRULE BYDAY: "WE", "MO,TH" (weekly) or "3WE", "-1FR" (monthly, the n-th weekday); "" for none.
    byday: Mapped[str] = mapped_column(String(40), default="")
    #: RRULE BYMONTHDAY for a monthly rule on a day of the month; None otherwise.
    bymonthday: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The first occurrence's start (DTSTART); its wall-clock time in `timezone` is every occurrence's.
    first_start: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)
    #: The last instant an occurrence may start at (RRULE UNTIL), or None.
    until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: How many occurrences (RRULE COUNT), or None.
    count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    #: The series this one was split from by a "this and all following" edit (the first of the chain):
    #: whole-series signups belong to it and follow every part.
    root_id: Mapped[int | None] = mapped_column(ForeignKey("series.id", ondelete="SET NULL"), nullable=True,
                                                index=True)
    #: Occurrences starting before this exist as events; later ones are made as the window rolls on.
    planned_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: ICS SEQUENCE of the series' master VEVENT; bumped with every change of its rule or template.
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    skips: Mapped[list[SeriesSkip]] = relationship(back_populates="series", cascade="all, delete-orphan",
                                                   order_by="SeriesSkip.recurrence_id", lazy="selectin")

    @property
    def family_id(self) -> int:
        """The series whose whole-series signups this one serves."""
        return self.root_id or self.id

    def __repr__(self) -> str:
        return f"<Series {self.slug!r} {self.status}>"


class SeriesSkip(db.Model):
    """A date left out of the rule (EXDATE): no occurrence there."""

    __tablename__ = "series_skips"
    __table_args__ = (UniqueConstraint("series_id", "recurrence_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    #: The start the rule gives the left-out occurrence.
    recurrence_id: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    series: Mapped[Series] = relationship(back_populates="skips")


class SeriesSubscription(db.Model):
    """Someone signed up for a whole series: a registration in each future occurrence, one manage link."""

    __tablename__ = "series_subscriptions"
    __table_args__ = (UniqueConstraint("series_id", "email_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The first series of the chain (Series.family_id).
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    #: The Babel code of the language their mail is written in; each place they get takes it too.
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    #: "pending" until the address is confirmed (double opt-in), "active", or "cancelled".
    state: Mapped[str] = mapped_column(String(20), default="pending")
    #: Manage token = HMAC(SECRET_KEY, id + nonce); only its sha256 is kept.
    token_nonce: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    reminders_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Last SEQUENCE sent in this person's series invitation.
    ics_sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    series: Mapped[Series] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<SeriesSubscription {self.id} {self.state} series={self.series_id}>"
