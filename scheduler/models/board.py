"""The question board: questions people ask during an event, and their votes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .events import Event
from .registrations import Registration
from .types import UTCDateTime, utcnow

BOARD_MODES = ("open", "moderated")
#: pending: waits for a moderator (moderated boards); hidden: taken off the board (also when merged).
QUESTION_STATES = ("pending", "visible", "hidden", "answered")


class Question(db.Model):
    __tablename__ = "questions"
    __table_args__ = (
        Index("ix_questions_event_state", "event_id", "state"),
        # At most one "now answering" question per event, whoever pins at the same moment.
        Index("uq_questions_one_pinned_per_event", "event_id", unique=True,
              sqlite_where=text("pinned"), postgresql_where=text("pinned")),
        Index("ix_questions_registration_created", "registration_id", "created_at"),
        CheckConstraint("votes >= 0", name="votes_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    #: Who asked; None for a question a moderator (speaker or organiser) put on the board.
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("registrations.id", ondelete="SET NULL"), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    #: The name shown, chosen when asking; empty means "Anonymous".
    display_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(20), default="visible")
    #: The question being answered now; one per event at most.
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    #: A duplicate folded into that question (its votes moved there); it is off the board.
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("questions.id", ondelete="SET NULL"), nullable=True)
    #: The number of rows in question_votes for this question, changed in the same transaction as they are.
    votes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    event: Mapped[Event] = relationship(lazy="raise")
    registration: Mapped[Registration | None] = relationship(lazy="raise")

    @property
    def shown_name(self) -> str:
        return self.display_name or "Anonymous"

    def __repr__(self) -> str:
        return f"<Question {self.id} {self.state}{' pinned' if self.pinned else ''} event={self.event_id}>"


class Vote(db.Model):
    """One registrant's vote for one question: the pair is the key, so nobody votes twice."""

    __tablename__ = "question_votes"

    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True)
    registration_id: Mapped[int] = mapped_column(
        ForeignKey("registrations.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
