"""Server-Sent Events for open boards: one hub per process reads each change once and passes it on.

The hub hears of a change through scheduler/live.py (a LISTEN connection on PostgreSQL, the writing
session's commit on SQLite), reads the questions it names in one query, and queues the same few bytes
for every open stream of that event: one text for moderators, one for everyone else (who never see
a pending or hidden question's text). A stream starts with the whole board (the snapshot), so a
reconnecting browser has nothing to catch up on, and ends after MAX_SECONDS; the browser reconnects
within RETRY_MS.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

from flask import Flask, Response
from sqlalchemy import select

from .. import live
from ..database import read_only
from ..domain import board as board_rules
from ..extensions import db
from ..models import Question

log = logging.getLogger(__name__)
#: A comment line this often keeps proxies from closing an idle stream (and finds closed ones).
KEEPALIVE_SECONDS = 15.0
#: A stream ends after this long; the browser opens a new one at once (a fresh snapshot).
MAX_SECONDS = 600.0
RETRY_MS = 1000
#: A stream this far behind (a stalled client) is ended; it gets a snapshot when it comes back.
MAX_QUEUED = 256
#: At most one round of changes per this long: a change after a quiet spell goes out at once, and while
#: votes keep coming each open board gets one write per round, carrying every change since the last one
#: (writes per board, not changes, are what a process with many open boards spends its time on).
ROUND_SECONDS = 0.25


def encode(kind: str, data: dict) -> bytes:
    """One SSE message: `event: kind` and the JSON on one data line."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def snapshot(session, event_id: int, *, moderator: bool) -> list[dict]:
    """Every question of the board that this audience sees, as the live messages describe them."""
    query = select(Question).where(Question.event_id == event_id)
    if not moderator:
        query = query.where(Question.state.in_(board_rules.SHOWN_STATES), Question.merged_into_id.is_(None))
    return [board_rules.question_data(q, moderator=moderator) for q in board_rules.order(session.scalars(query))]


class Stream:
    """One open board (an EventSource in a browser) of one event."""

    def __init__(self, event_id: int, moderator: bool):
        self.event_id = event_id
        self.moderator = moderator
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=MAX_QUEUED)

    def push(self, chunk: bytes | None) -> None:
        try:
            self.queue.put_nowait(chunk)
        except queue.Full:
            self.end()

    def end(self) -> None:
        """Make the stream stop at its next read (None is the end mark; a full queue is emptied for it)."""
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except queue.Full:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    pass


class Hub:
    """This process's open streams, and the one thread that feeds them."""

    def __init__(self, app: Flask):
        self.app = app
        # Made with the app, which gunicorn may load before its gevent worker patches threading: the
        # queue, events and threads are made when the first board opens (see start), in the worker.
        self.lock = threading.Lock()
        self.streams: dict[int, set[Stream]] = {}
        self.inbox: queue.Queue[tuple[int | None, frozenset[int]]] | None = None
        self.stopping: threading.Event | None = None
        self.started = False
        self.listener: live.Listener | None = None
        self.key: str | None = None
        #: Turns true when this process is told to stop (see end_streams_when).
        self.closing: Callable[[], bool] | None = None

    # --- the change side ---

    def start(self) -> None:
        with self.lock:  # the first open board starts it, once
            if self.started:
                return
            self.started = True
            self.inbox = queue.Queue()
            self.stopping = threading.Event()
        with self.app.app_context():
            url, dialect = db.engine.url, db.engine.dialect.name
        if dialect == "postgresql":
            self.listener = live.Listener(url, self.notify, self.stopping, on_listening=self.resync)
            self.listener.start()
        else:
            self.key = live.database_key(url)
            live.subscribe(self.key, self.notify)
        threading.Thread(target=self.run, name="townhall-board-hub", daemon=True).start()

    def stop(self) -> None:
        if not self.started:
            return
        self.stopping.set()
        if self.key is not None:
            live.unsubscribe(self.key, self.notify)
        self.end_streams()
        if self.listener is not None:
            self.listener.join(timeout=5)

    def end_streams(self) -> None:
        """End every open stream; each browser opens a new one within RETRY_MS, wherever it is served."""
        with self.lock:
            streams = [s for group in self.streams.values() for s in group]
        for stream in streams:
            stream.end()

    def notify(self, event_id: int, question_ids: frozenset[int]) -> None:
        self.inbox.put((event_id, question_ids))

    def resync(self) -> None:
        """Changes may have been missed (the LISTEN connection was down): every stream gets the whole board."""
        self.inbox.put((None, frozenset()))

    def run(self) -> None:
        last_round = -ROUND_SECONDS
        while not self.stopping.is_set():
            if self.closing is not None and self.closing():
                self.end_streams()  # and any opened since, at the next turn
            try:
                first = self.inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            wait = last_round + ROUND_SECONDS - time.monotonic()
            if wait > 0 and self.stopping.wait(wait):
                return
            last_round = time.monotonic()
            changed: dict[int, set[int]] = {}
            resync = False
            item: tuple[int | None, frozenset[int]] | None = first
            while item is not None:  # what arrived meanwhile goes out in the same round
                event_id, ids = item
                if event_id is None:
                    resync = True
                else:
                    changed.setdefault(event_id, set()).update(ids)
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    item = None
            try:
                self.send(changed, resync=resync)
            except Exception:  # the database may be away for a moment: the streams stay open
                log.exception("could not pass board changes on")

    def send(self, changed: dict[int, set[int]], *, resync: bool = False) -> None:
        with self.lock:
            streams = {event_id: list(group) for event_id, group in self.streams.items()
                       if group and (resync or event_id in changed)}
        if not streams:
            return
        with self.app.app_context(), read_only():
            chunks: dict[tuple[int, bool], bytes] = {}
            if resync:
                for event_id in streams:
                    for moderator in (False, True):
                        chunks[event_id, moderator] = encode("snapshot", {"questions": snapshot(
                            db.session, event_id, moderator=moderator)})
            else:
                questions = db.session.scalars(select(Question).where(
                    Question.id.in_({i for event_id in streams for i in changed[event_id]}))).all()
                for event_id in streams:
                    mine = [q for q in questions if q.event_id == event_id]
                    for moderator in (False, True):
                        chunks[event_id, moderator] = encode("change", {"questions": [
                            board_rules.question_data(q, moderator=moderator) for q in mine]})
            db.session.remove()
        for event_id, group in streams.items():
            for stream in group:
                stream.push(chunks[event_id, stream.moderator])

    # --- the stream side ---

    def subscribe(self, event_id: int, *, moderator: bool) -> Stream:
        self.start()
        stream = Stream(event_id, moderator)
        with self.lock:
            self.streams.setdefault(event_id, set()).add(stream)
        return stream

    def unsubscribe(self, stream: Stream) -> None:
        with self.lock:
            group = self.streams.get(stream.event_id)
            if group is not None:
                group.discard(stream)
                if not group:
                    del self.streams[stream.event_id]


def install(app: Flask) -> None:
    """Give the app its hub (nothing runs until a board is opened)."""
    app.extensions["townhall.board_hub"] = Hub(app)


def hub_of(app: Flask) -> Hub:
    return app.extensions["townhall.board_hub"]


def end_streams_when(app: Flask, closing: Callable[[], bool]) -> None:
    """End this app's open streams (if it has a hub) within a second of `closing()` turning true.

    A server told to stop (gunicorn's worker on SIGTERM) waits for its open requests, and an open
    board would hold it for the whole graceful timeout, only to be cut then.
    """
    hub = app.extensions.get("townhall.board_hub")
    if hub is not None:
        hub.closing = closing


def stop(app: Flask) -> None:
    """Stop this app's hub, if it has one (tests; a process ending stops it anyway)."""
    hub = app.extensions.pop("townhall.board_hub", None)
    if hub is not None:
        hub.stop()


def respond(hub: Hub, event_id: int, *, moderator: bool) -> Response:
    """The SSE response for one board: subscribe first, then read the snapshot, so no change falls between."""
    stream = hub.subscribe(event_id, moderator=moderator)
    try:
        first = (f"retry: {RETRY_MS}\n".encode()
                 + encode("snapshot", {"questions": snapshot(db.session, event_id, moderator=moderator)}))
    except BaseException:
        hub.unsubscribe(stream)
        raise
    db.session.remove()  # the stream holds no database connection while it is open

    def body() -> Iterator[bytes]:
        try:
            yield first
            deadline = time.monotonic() + MAX_SECONDS
            while time.monotonic() < deadline:
                try:
                    chunk = stream.queue.get(timeout=min(KEEPALIVE_SECONDS, max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    chunk = b": keepalive\n\n"
                if chunk is None:
                    return
                # A reader that fell behind gets what waits in one write, not one write each.
                while not stream.queue.empty():
                    more = stream.queue.get_nowait()
                    if more is None:
                        yield chunk
                        return
                    chunk += more
                yield chunk
        finally:
            hub.unsubscribe(stream)

    response = Response(body(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx passes each message on at once
    response.call_on_close(lambda: hub.unsubscribe(stream))
    return response
