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
    inspect,
    select,
    text,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, validates

from ..extensions import db
from ..text import render_markdown
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
        UniqueConstraint("series_id", "recurrence_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    #: Markdown source; `description_html` is its rendered, sanitised HTML, kept in step on every assignment.
    description: Mapped[str] = mapped_column(Text, default="")
    #: Written when the description is set (see _render_description), never per request.
    description_html: Mapped[str] = mapped_column(Text, default="", server_default="")
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
    #: Goes up with every change a public page or feed shows (the event, its tags, speakers, seats),
    #: in the transaction that makes it: cached pages are keyed by it (scheduler/web/page_cache.py).
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The question board: "open" (questions appear at once) or "moderated" (they wait for approval).
    board_mode: Mapped[str] = mapped_column(String(20), default="open", server_default="open")
    #: Whether visitors who are not registered may read the board (never ask or vote).
    board_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    #: Seconds before the start at which personal door links begin to lead to the join URL.
    door_offset: Mapped[int] = mapped_column(Integer, default=15 * 60, server_default="900")
    #: After the event: where its recording is, and the organiser's summary for the follow-up mail.
    recording_url: Mapped[str] = mapped_column(String(500), default="", server_default="")
    recording_summary: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: When the recording was first given: the follow-up mail is due then, or at the end if later.
    recording_added_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The series this event is an occurrence of (scheduler/models/series.py), if any.
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id", ondelete="SET NULL"), nullable=True,
                                                  index=True)
    #: The start the series' rule gave this occurrence (its RECURRENCE-ID), whatever it was moved to since.
    recurrence_id: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    tags: Mapped[list[Tag]] = relationship(secondary=event_tags, order_by="Tag.slug", lazy="selectin")
    speakers: Mapped[list[EventSpeaker]] = relationship(
        back_populates="event", cascade="all, delete-orphan", order_by="EventSpeaker.position", lazy="selectin"
    )

    @validates("description")
    def _render_description(self, _key, source):
        # Markdown and nh3 are a fifth of an uncached event page: pay for them once, when saved.
        self.description_html = render_markdown(source or "")
        return source

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
    #: The Babel code of the language their mail is written in (scheduler/languages.py).
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
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
    #: Attendance: the first and the latest time this speaker came through their door to this event.
    door_first_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    door_last_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    event: Mapped[Event] = relationship(back_populates="speakers")
    speaker: Mapped[Speaker] = relationship(back_populates="appearances", lazy="joined")


# --- versions: one listener sees every write ---------------------------------------------------

#: Columns no public page or feed shows: changing only these leaves the event's version alone
#: (waitlist_last moves with every waitlisted signup; the rest plan jobs).
PRIVATE_EVENT_FIELDS = frozenset({
    "version", "waitlist_last", "reminder_offsets", "double_opt_in", "briefing_enabled", "briefing_offset",
    "nudge_enabled", "nudge_offset", "thanks_enabled", "thanks_offset", "board_mode", "door_offset",
    "recording_url", "recording_summary", "recording_added_at",
})
#: A speaker's email and feed token are private; their name, affiliation, bio and photo are on event pages.
PRIVATE_SPEAKER_FIELDS = frozenset({"email", "feed_nonce", "feed_token_hash", "created_at", "updated_at",
                                    "appearances"})
#: Attendance is on no public page.
PRIVATE_EVENT_SPEAKER_FIELDS = frozenset({"door_first_at", "door_last_at"})


#: SET version = version + 1: atomic, so two writers never both land on the same number (built once).
NEXT_VERSION = Event.version + 1


def _changed(obj, private: frozenset) -> bool:
    """Whether a column or collection other than `private` ones really changed (not only set to the same value)."""
    state = inspect(obj)
    candidates = set(state.mapper.attrs.keys()) - state.unmodified - private
    return any(state.attrs[key].history.has_changes() for key in candidates)


@sa_event.listens_for(Session, "before_flush")
def bump_versions(session: Session, _flush_context, _instances) -> None:
    """Raise `Event.version` for every event whose public face a flush changes, in the same transaction.

    An event changed in memory gets `version = version + 1` in its own UPDATE (atomic, so two
    writers never both land on the same number); a speaker, tag or speaker link changed on its
    own raises every event it belongs to with one UPDATE. New events need nothing: no page shows
    them yet.
    """
    event_ids: set[int] = set()
    speaker_ids: set[int] = set()
    tag_ids: set[int] = set()
    for obj in session.dirty:
        if isinstance(obj, Event):
            if _changed(obj, PRIVATE_EVENT_FIELDS):
                obj.version = NEXT_VERSION
        elif isinstance(obj, Speaker):
            if _changed(obj, PRIVATE_SPEAKER_FIELDS):
                speaker_ids.add(obj.id)
        elif isinstance(obj, Tag):
            if _changed(obj, frozenset()):
                tag_ids.add(obj.id)
        elif isinstance(obj, EventSpeaker) and _changed(obj, PRIVATE_EVENT_SPEAKER_FIELDS):
            event_ids.add(obj.event_id)
    for obj in session.deleted:
        if isinstance(obj, Speaker):
            speaker_ids.add(obj.id)
        elif isinstance(obj, Tag):
            tag_ids.add(obj.id)
        elif isinstance(obj, EventSpeaker):
            event_ids.add(obj.event_id)
    for obj in session.new:
        # A link added through event.speakers changes the event itself (handled above); one added on
        # its own names its event by id.
        if isinstance(obj, EventSpeaker) and obj.event_id is not None:
            event_ids.add(obj.event_id)
    if not (event_ids or speaker_ids or tag_ids):
        return
    affected = Event.id.in_(event_ids - {None})
    if speaker_ids:
        affected |= Event.id.in_(select(EventSpeaker.event_id).where(EventSpeaker.speaker_id.in_(speaker_ids)))
    if tag_ids:
        affected |= Event.id.in_(select(event_tags.c.event_id).where(event_tags.c.tag_id.in_(tag_ids)))
    # Rows changed in memory are left alone (synchronize_session=False): their own UPDATE follows.
    session.execute(update(Event).where(affected).values(version=NEXT_VERSION)
                    .execution_options(synchronize_session=False))
