"""The unit of work: where a request, job or command's transaction is committed or rolled back.

Domain functions flush and never commit; whoever calls them does it here, so a change is kept whole
or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from . import clock
from .extensions import db


@dataclass(frozen=True)
class UnitOfWork:
    #: The app's session; its transaction began with its first statement (before the block or in it).
    session: Session
    #: One moment, by the app's clock, for everything the block does.
    now: datetime


@contextmanager
def unit_of_work() -> Iterator[UnitOfWork]:
    """Commit when the block ends; on any exception, roll back and re-raise."""
    session = db.session()
    try:
        yield UnitOfWork(session, clock.now())
        session.commit()
    except BaseException:
        session.rollback()
        raise
