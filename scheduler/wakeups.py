"""Waking a scheduler when work is queued: in this process when the transaction commits, and in every
other process through PostgreSQL's LISTEN/NOTIFY (sent by the server at commit, never for a rollback).

Without a wake-up a scheduler finds new mail at its next poll (up to OUTBOX_POLL_SECONDS later) and a
job planned to fire within seconds at its next load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from . import listening

log = logging.getLogger(__name__)
#: Mail was queued; a job was planned (or moved) to fall due soon.
MAIL, JOBS = "townhall_mail", "townhall_jobs"
_INFO_KEY = "townhall.wake"
_NOTIFY = text("SELECT pg_notify(:channel, '')")
_subscribers: dict[str, list[Callable[[], None]]] = {MAIL: [], JOBS: []}
_lock = threading.Lock()


def announce(session: Session, channel: str) -> None:
    """Wake the schedulers on `channel` once this session's transaction commits."""
    pending = session.info.setdefault(_INFO_KEY, set())
    if channel in pending:
        return
    pending.add(channel)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": channel})


def subscribe(channel: str, callback: Callable[[], None]) -> None:
    with _lock:
        _subscribers[channel].append(callback)


def unsubscribe(channel: str, callback: Callable[[], None]) -> None:
    with _lock:
        if callback in _subscribers[channel]:
            _subscribers[channel].remove(callback)


def wake(channel: str) -> None:
    """Call this process's subscribers of `channel` (they only set timers; none waits for work)."""
    with _lock:
        callbacks = list(_subscribers[channel])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a wake-up is a shortcut: the next poll finds the work anyway
            log.exception("wake-up on %s failed", channel)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for channel in session.info.pop(_INFO_KEY, ()):
        wake(channel)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_INFO_KEY, None)


class Listener(listening.Listener):
    """LISTEN on both channels; each notification wakes this process's subscribers."""

    def __init__(self, url: URL, stop: threading.Event):
        super().__init__(url, (MAIL, JOBS), lambda channel, _payload: wake(channel), stop, name="townhall-listen")
