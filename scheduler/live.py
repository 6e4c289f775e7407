"""Question-board changes reach every process that shows a board, the way wakeups.py wakes schedulers.

On PostgreSQL the change's transaction sends NOTIFY (delivered by the server at commit, never for a
rollback) and every process LISTENs on a connection of its own (`Listener`): workers and machines
sharing the database all hear it. On SQLite, the embedded default of one process, this process's
subscribers are called once the writing session commits.

A notification says which event and which questions changed; each process reads them once and
passes them on to its open boards (scheduler/web/board_stream.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from . import listening

log = logging.getLogger(__name__)
CHANNEL = "townhall_board"
_INFO_KEY = "townhall.board"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")

#: callback(event_id, question_ids)
Callback = Callable[[int, frozenset[int]], None]
#: In-process subscribers per database (its URL): an app only hears about its own database's changes.
_subscribers: dict[str, list[Callback]] = {}
_lock = threading.Lock()


def database_key(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def announce(session: Session, event_id: int, question_ids: Iterable[int]) -> None:
    """Tell every board of `event_id` that these questions changed, once this transaction commits."""
    ids = {int(i) for i in question_ids}
    pending = session.info.setdefault(_INFO_KEY, {})
    known = pending.setdefault(event_id, set())
    if ids <= known and known:
        return
    known |= ids
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": CHANNEL, "payload": format_payload(event_id, ids)})


def format_payload(event_id: int, question_ids: Iterable[int]) -> str:
    return f"{event_id}:{','.join(str(i) for i in sorted(question_ids))}"


def parse_payload(payload: str) -> tuple[int, frozenset[int]] | None:
    """"7:12,13" -> (7, {12, 13}); None for anything else."""
    head, _, tail = payload.partition(":")
    try:
        return int(head), frozenset(int(i) for i in tail.split(",") if i)
    except ValueError:
        return None


def subscribe(key: str, callback: Callback) -> None:
    with _lock:
        _subscribers.setdefault(key, []).append(callback)


def unsubscribe(key: str, callback: Callback) -> None:
    with _lock:
        callbacks = _subscribers.get(key, [])
        if callback in callbacks:
            callbacks.remove(callback)


def _call(key: str, event_id: int, ids: frozenset[int]) -> None:
    with _lock:
        callbacks = list(_subscribers.get(key, ()))
    for callback in callbacks:
        try:
            callback(event_id, ids)
        except Exception:  # one broken board must not keep the change from the others
            log.exception("board notification for event %s failed", event_id)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_INFO_KEY, None)
    if not pending:
        return
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return  # the server delivers the NOTIFY to every Listener, this process's included
    key = database_key(bind.url)
    for event_id, ids in pending.items():
        _call(key, event_id, frozenset(ids))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_INFO_KEY, None)


class Listener(listening.Listener):
    """LISTEN on the board channel and pass each change to callback(event_id, question_ids); see
    listening.Listener for `on_listening`, called after every (re)connection."""

    def __init__(self, url: URL, callback: Callback, stop: threading.Event,
                 on_listening: Callable[[], None] = lambda: None):
        def handle(_channel: str, payload: str) -> None:
            parsed = parse_payload(payload)
            if parsed is not None:
                callback(*parsed)

        super().__init__(url, (CHANNEL,), handle, stop, name="townhall-board-listen", on_listening=on_listening)
