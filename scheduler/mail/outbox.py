"""The outbox: queue in the caller's transaction, claim row by row, deliver, mark.

Claiming reads due rows FOR UPDATE SKIP LOCKED on PostgreSQL and inside BEGIN IMMEDIATE on SQLite,
then marks and reads them back in one UPDATE ... RETURNING, so any number of deliverers can share the
table without sending a row twice.
A claim older than the lease is taken as lost (its deliverer died) and the row is sent again.

Most rows are rendered when queued. A message about one registration is queued as a small row
naming it (`queue_deferred`) and composed at delivery by the renderer registered for its kind:
the web request that signs someone up then writes a few hundred bytes instead of composing an
email with an invitation while it holds the event's seat counter.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from queue import Empty, SimpleQueue
from types import SimpleNamespace

from flask import Flask, current_app
from sqlalchemy import and_, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .. import wakeups
from ..database import read_only, writing
from ..domain.queries import CLAIM_TIMEOUT, claim_lapsed
from ..models import OutboxMessage, utcnow
from ..text import one_line
from .compose import message_id_for, prepare, render
from .relay import NOT_SENT
from .transports import ConnectionLost, PermanentError, TransientError

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=5)


def queue(session: Session, *, kind: str, to_addr: str, dedupe_key: str, now: datetime, to_name: str = "",
          event_id: int | None = None, registration_id: int | None = None, ics: str | None = None,
          ics_method: str | None = None, unsubscribe_url: str | None = None, **context) -> bool:
    """Render the message and add it to the outbox in the caller's transaction.

    Returns False (and adds nothing) when a message with this dedupe key was already queued.
    """
    values = message_row(kind=kind, to_addr=to_addr, dedupe_key=dedupe_key, now=now, to_name=to_name,
                         event_id=event_id, registration_id=registration_id, ics=ics, ics_method=ics_method,
                         unsubscribe_url=unsubscribe_url, **context)
    return insert_rows(session, [values]) == 1


def message_row(*, kind: str, to_addr: str, dedupe_key: str, now: datetime, to_name: str = "",
                event_id: int | None = None, registration_id: int | None = None, ics: str | None = None,
                ics_method: str | None = None, unsubscribe_url: str | None = None, **context) -> dict:
    """One rendered outbox row as a dict, for queue() or for insert_rows() in bulk."""
    subject, text, html = render(kind, unsubscribe_url=unsubscribe_url, **context)
    return dict(
        dedupe_key=dedupe_key[:200], kind=kind, to_addr=to_addr, to_name=one_line(to_name)[:200], subject=subject,
        body_text=text, body_html=html, ics=ics, ics_method=ics_method, unsubscribe_url=unsubscribe_url,
        event_id=event_id, registration_id=registration_id, state="queued", attempts=0, next_attempt_at=now,
        created_at=now,
    )


def queue_deferred(session: Session, *, kind: str, to_addr: str, dedupe_key: str, now: datetime, to_name: str = "",
                   event_id: int | None = None, registration_id: int | None = None, ics_method: str | None = None,
                   context: dict | None = None) -> bool:
    """Add a message composed at delivery by the renderer registered for `kind` (see `renders`).

    `ics_method` says now that it will carry an invitation (REQUEST or CANCEL), composed with it.
    """
    if kind not in _renderers:
        raise ValueError(f"no renderer registered for {kind!r}")
    return insert_rows(session, [dict(
        dedupe_key=dedupe_key[:200], kind=kind, to_addr=to_addr, to_name=one_line(to_name)[:200],
        event_id=event_id, registration_id=registration_id, ics_method=ics_method, context=context or {},
        state="queued", attempts=0,
        next_attempt_at=now, created_at=now)]) == 1


#: kind -> function(row) that sets the row's subject, bodies and invitation from the rows it names.
_renderers: dict[str, Callable[[OutboxMessage | Claimed], None]] = {}


def renders(*kinds: str):
    """Register the decorated function as the renderer of deferred messages of these kinds."""
    def register(function):
        for kind in kinds:
            _renderers[kind] = function
        return function
    return register


def fill(row: OutboxMessage | Claimed) -> OutboxMessage | Claimed:
    """Compose a deferred row in place (a row rendered when queued is left as it is); returns it."""
    if row.body_text is None:
        _renderers[row.kind](row)
    return row


_table = OutboxMessage.__table__
_INSERT_OR_SKIP = {dialect: insert(_table).on_conflict_do_nothing(index_elements=["dedupe_key"])
                   for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))}


def insert_rows(session: Session, rows: list[dict]) -> int:
    """Insert outbox rows, skipping any whose dedupe key exists; returns how many were new.

    Each row's Message-ID is fixed here, from its dedupe key: every attempt sends the same one.
    """
    if not rows:
        return 0
    statement = _stamped(session, rows)
    # SQLAlchemy 2 reports -1 for an INSERT without preserve_rowcount; a list of rows is sent as an
    # executemany, which it batches into multi-row VALUES.
    result = session.execute(statement, rows if len(rows) > 1 else rows[0],
                             execution_options={"preserve_rowcount": True})
    added = max(result.rowcount or 0, 0)
    if added:
        wakeups.announce(session, wakeups.MAIL)
    return added


def insert_rows_keyed(session: Session, rows: list[dict]) -> set[str]:
    """insert_rows in one statement however many rows, answering which dedupe keys were new."""
    if not rows:
        return set()
    new = set(session.scalars(_stamped(session, rows).returning(_table.c.dedupe_key), rows))
    if new:
        wakeups.announce(session, wakeups.MAIL)
    return new


def _stamped(session: Session, rows: list[dict]):
    """Fix each row's Message-ID from its dedupe key (every attempt sends the same one); the insert for this database."""
    config = current_app.config
    for row in rows:
        row["message_id"] = message_id_for(row["dedupe_key"], config)
    return _INSERT_OR_SKIP[session.get_bind().dialect.name]


def claim(session: Session, *, worker: str, now: datetime, limit: int = 100, lease: timedelta = LEASE,
          timeout: timedelta = CLAIM_TIMEOUT) -> list[Claimed]:
    """Claim up to `limit` due rows for this worker and commit the claim; the rows come back as plain objects.

    Rows claimed by a scheduler that stopped beating its heartbeat are taken over after `timeout`;
    rows claimed by a deliverer without a heartbeat (a one-off command) after the `lease`.
    """
    queued = and_(OutboxMessage.state == "queued", OutboxMessage.next_attempt_at <= now)
    lapsed = and_(OutboxMessage.state == "sending",
                  claim_lapsed(OutboxMessage.claimed_by, OutboxMessage.claimed_at, now=now, lease=lease, timeout=timeout))
    locking = session.get_bind().dialect.name == "postgresql"

    def first(condition, count: int) -> list[int]:
        query = select(OutboxMessage.id).where(condition).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        query = query.limit(count)
        return list(session.scalars(query.with_for_update(skip_locked=True) if locking else query))

    # Two reads, each along its own index (state, next_attempt_at) and (state, id): one read with OR
    # scanned and sorted the whole table, sent rows and all, at every claim. Lapsed claims first:
    # they are the oldest work. On SQLite the transaction takes the write lock as it begins.
    with writing():
        ids = first(lapsed, limit)
    if len(ids) < limit:
        ids += first(queued, limit - len(ids))
    if not ids:
        session.commit()
        return []
    # The rows just read are ours until the commit: locked FOR UPDATE on PostgreSQL, and on SQLite the
    # transaction has held the write lock since its BEGIN IMMEDIATE, so nobody takes one meanwhile.
    # Claimed and read back in one statement of the same transaction: a claim whose rows never reached
    # the caller (a connection cut in between) would stay with a live scheduler, whose heartbeat keeps
    # it from ever lapsing.
    claimed = session.execute(_CLAIM, {"ids": ids, "claimer": worker, "claimed": now})
    rows = sorted((Claimed(**values) for values in claimed.mappings()), key=lambda row: (row.next_attempt_at, row.id))
    session.commit()
    return rows


class Claimed(SimpleNamespace):
    """A claimed outbox row: OutboxMessage's columns as plain attributes, outside any session, so
    composing, sending and marking it never loads or flushes anything."""


_CLAIM = (update(_table).where(_table.c.id.in_(bindparam("ids", expanding=True)))
          .values(state="sending", claimed_by=bindparam("claimer"), claimed_at=bindparam("claimed"))
          .returning(*_table.c))


def backoff(attempts: int, base: float) -> timedelta:
    """Exponential backoff with jitter: base, 2×base, 4×base ... capped at one hour."""
    delay = min(3600.0, base * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


class ComposeError(TransientError):
    """Composing one message failed: retried with backoff like a refused send, then failed."""


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed


#: A sent message's mark is committed within this many seconds of the server's acceptance, or after
#: this many messages, whichever comes first: a process killed mid-batch leaves only these unmarked.
MARK_SECONDS = 0.05
MARK_EVERY = 10
#: A mark that cannot be written (a connection cut, a locked database) is tried again on a new
#: connection for this long before the batch is given up (its claim then lapses and those few are re-sent).
MARK_RETRY_SECONDS = 60.0
_DONE = object()


def deliver(session: Session, transport_factory, app: Flask, *, worker: str, clock=utcnow, limit: int = 200,
            chunks: int | None = 1, on_sent=None, connections: int = 1, stopping: Callable[[], bool] | None = None,
            timeout: timedelta = CLAIM_TIMEOUT) -> DeliveryReport:
    """Claim due rows `limit` at a time and send them over up to `connections` connections; mark each
    row sent, retried or failed.

    The next `limit` rows are claimed while the senders are still busy with the last ones, `chunks`
    times at most (None: until nothing is due), so the wire never waits for a claim, and rows queued
    meanwhile ahead of the others (the first recipients of another reminder) go out in the next chunk.
    `transport_factory()` is called once per connection and returns a context manager with
    .send(message). `on_sent(row)` is called after each hand-over (benchmarks and tests time the
    first message with it). One thread composes the messages ahead of the senders, so composing
    overlaps waiting for the server. When `stopping()` turns true, each sender finishes the message
    in hand, and the rows nobody started are given back (queued again, no attempt counted).
    """
    report = DeliveryReport()
    config = app.config
    lease = timedelta(seconds=float(config["OUTBOX_LEASE_SECONDS"]))

    def claimed() -> list[Claimed]:
        rows = claim(session, worker=worker, now=clock(), limit=limit, lease=lease, timeout=timeout)
        for row in rows:
            row.message_id = row.message_id or message_id_for(row.dedupe_key, config)
        return rows

    rows = claimed()
    if not rows:
        return report
    max_attempts = int(config["OUTBOX_MAX_ATTEMPTS"])
    retry_base = float(config["OUTBOX_RETRY_BASE_SECONDS"])
    halted = threading.Event()  # set as deliver() returns or raises: no sender waits for a permit after that

    def stop() -> bool:
        return halted.is_set() or (stopping is not None and stopping())

    def compose(row):
        try:
            if row.body_text is None:
                # Its own app context, hence its own session; reading only, so it never waits for a writer.
                with app.app_context(), read_only():
                    fill(row)
            return prepare(row, config, now=clock())
        except Exception as exc:  # a message that cannot be composed is retried, then failed, not fatal
            log.exception("could not compose outbox message %s", row.id)
            return ComposeError(f"could not compose the message: {exc}")

    feed = _Feed(compose, stop)
    feed.add(rows)
    results: SimpleQueue = SimpleQueue()

    # A sender takes a permit before each message and the marking loop gives it back once the
    # message's outcome is committed: however slow the database, at most MARK_EVERY messages are
    # ever out without their mark (a process killed then sends only those again).
    unmarked = threading.BoundedSemaphore(MARK_EVERY)

    def take():
        while not unmarked.acquire(timeout=0.05):
            if stop():
                return None
        taken = feed.take()
        if taken is None:
            unmarked.release()
        return taken

    def hand_over(transport) -> None:
        """One connection that sends in order while we go on (a relay process): hand it what is ready,
        as far as the permits allow, until nothing is left, the connection fails, or we stop."""
        lost = threading.Event()

        def done(row, outcome) -> None:
            if outcome is NOT_SENT:  # behind a lost connection: never attempted, like the rows nobody took
                unmarked.release()
                return
            if isinstance(outcome, ConnectionLost):
                lost.set()
            results.put((row, outcome))

        try:
            while not lost.is_set() and (taken := take()) is not None:
                row, message = taken
                if isinstance(message, ComposeError):
                    results.put((row, message))
                else:
                    transport.submit(message, partial(done, row))
        finally:
            transport.drain()

    def send_all() -> None:
        """One connection: send what is ready until nothing is left, the connection fails, or we stop."""
        try:
            with transport_factory() as transport:
                if hasattr(transport, "submit"):
                    hand_over(transport)
                    return
                while (message := take()) is not None:
                    row, message = message
                    try:
                        if isinstance(message, ComposeError):
                            raise message
                        transport.send(message)
                    except ConnectionLost as exc:
                        results.put((row, exc))
                        return  # this connection is done; the others go on with the rest
                    except (PermanentError, TransientError) as exc:
                        results.put((row, exc))
                    else:
                        results.put((row, None))
        except Exception as exc:  # could not connect (or log in): the rows left wait for the next try
            results.put((None, exc))
        finally:
            results.put(_DONE)

    senders: list[threading.Thread] = []

    def more_senders() -> int:
        """Start a sender (a connection) per row to send, up to `connections`; how many were started."""
        started = 0
        while len(senders) < min(connections, len(rows)):
            sender = threading.Thread(target=send_all, name=f"townhall-send-{len(senders)}", daemon=True)
            senders.append(sender)
            sender.start()
            started += 1
        return started

    marks: list[dict] = []  # sent rows whose mark is not yet committed
    attempted: set[int] = set()
    problem: Exception | None = None
    unsure: Exception | None = None  # a claim failed: it may have been committed with its answer lost
    claims = 1
    try:
        running, oldest = more_senders(), 0.0
        while running:
            wait = max(0.0, MARK_SECONDS - (time.monotonic() - oldest)) if marks else None
            try:
                item = results.get(timeout=wait)
            except Empty:
                item = None
            if item is _DONE:
                running -= 1
            elif item is not None:
                row, outcome = item
                if row is None:
                    problem = outcome
                else:
                    attempted.add(row.id)
                    if outcome is None:
                        row.attempts += 1
                        if not marks:
                            oldest = time.monotonic()
                        marks.append({"row_id": row.id, "attempts": row.attempts, "message_id": row.message_id,
                                      "sent_at": clock(), "subject": row.subject, "ics": row.ics})
                        report.sent += 1
                        if on_sent:
                            on_sent(row)
                    else:
                        if isinstance(outcome, ConnectionLost):
                            problem = outcome
                        now = clock()
                        # At once: no write transaction stays open while the next messages are sent.
                        _count(report, [_write(session, lambda row=row, outcome=outcome, now=now: _settle(
                            session, row, outcome, now, max_attempts, retry_base))])
                        unmarked.release()
            # Half the permits: the senders go on with the other half while these are committed.
            if marks and (len(marks) >= MARK_EVERY // 2 or time.monotonic() - oldest >= MARK_SECONDS):
                _commit_marks(session, marks, unmarked)
            # The next chunk while half of this one is still to go: claimed after the marks, so a
            # claim's write never holds them up.
            if not feed.ended and feed.waiting() < max(1, limit // 2):
                more = []
                # After a lost connection or a failed one, the next delivery starts again with new ones.
                if not (stop() or problem is not None or claims == chunks):
                    try:
                        more = claimed()
                    except DBAPIError as exc:  # the rows in hand still go out and get their marks
                        session.rollback()
                        unsure = exc
                        log.warning("could not claim more outbox messages: %s", exc)
                claims += 1
                if more:
                    rows.extend(more)
                    feed.add(more)
                    running += more_senders()
                else:
                    feed.end()
        _commit_marks(session, marks, unmarked)
        left = [row for row in rows if row.id not in attempted]
        if left and stop():
            _write(session, lambda: _release(session, worker, left))
            report.released += len(left)
        elif left:
            error = str(problem or "the connections ended before the batch was sent")
            now = clock()
            _count(report, _write(session, lambda: [_retry(session, row, error, now, max_attempts, retry_base)
                                                    for row in left]))
            report.errors.append(error)
            log.warning("mail delivery interrupted, %d message(s) will be retried: %s", len(left), error)
        if unsure is not None:
            # Everything in hand is settled: whatever this worker still holds was claimed by the failed
            # claim, and its heartbeat would keep it from ever lapsing.
            report.released += _write(session, lambda: _release(session, worker))
    finally:
        halted.set()  # on the way out in any case; after an error, senders waiting for a permit would wait for ever
        feed.end()
        for sender in senders:
            sender.join()
        feed.close()
    return report


class _Feed:
    """Claimed rows in order, each composed ahead by one thread, for the senders to take one at a time."""

    def __init__(self, compose: Callable, stop: Callable[[], bool]):
        self.compose, self.stop = compose, stop
        self.composer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="townhall-compose")
        self.items: deque = deque()
        self.ended = False  # no row will be added
        self.changed = threading.Condition()

    def add(self, rows: list) -> None:
        with self.changed:
            self.items.extend((row, self.composer.submit(self.compose, row)) for row in rows)
            self.changed.notify_all()

    def end(self) -> None:
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def waiting(self) -> int:
        """Rows no sender has taken yet."""
        return len(self.items)

    def take(self):
        """The next (row, composed message), waiting for one; None when there will be none, or we stop."""
        with self.changed:
            while not self.items:
                if self.ended or self.stop():
                    return None
                self.changed.wait(0.05)
            if self.stop():
                return None
            row, composed = self.items.popleft()
        return row, composed.result()

    def close(self) -> None:
        self.composer.shutdown(wait=True, cancel_futures=True)


def _write(session: Session, write: Callable[[], object]):
    """Run `write` and commit at once, returning what it returns; on a database error, again on a new
    connection until it holds.

    A cut connection (a restarted server, pg_terminate_backend) or a busy SQLite file must not turn
    into a re-send of the whole batch: the marks stay in hand and are written when the database is back.
    """
    delay, deadline = 0.05, time.monotonic() + MARK_RETRY_SECONDS
    while True:
        try:
            result = write()
            session.commit()
            return result
        except DBAPIError as exc:
            session.rollback()  # the dead connection is discarded; the next statement takes a new one
            if time.monotonic() >= deadline:
                raise
            log.warning("could not write delivery marks, trying again in %.2f s: %s", delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


_SENT = (update(_table).where(_table.c.id == bindparam("row_id"))
         .values(state="sent", attempts=bindparam("attempts"), message_id=bindparam("message_id"),
                 sent_at=bindparam("sent_at"), subject=bindparam("subject"), ics=bindparam("ics"), last_error=None))
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def _mark_sent(session: Session, marks: list[dict]) -> None:
    if marks:
        if session.get_bind().dialect.name == "postgresql":
            # A mark lost to a server crash only means that message is sent again, the same
            # bound as a crash in flight: no need to wait for the WAL flush at every commit.
            session.execute(_ASYNC_COMMIT)
        session.execute(_SENT, marks)


def _mark(session: Session, row: OutboxMessage, **values) -> None:
    """Write one row's outcome; the row object is left as it is, so the write can be tried again."""
    if "error" in values:
        values["last_error"] = values.pop("error")[:2000]
    values.update(attempts=row.attempts + 1, message_id=row.message_id, subject=row.subject, ics=row.ics,
                  claimed_by=None)
    session.execute(
        update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values)
        .execution_options(synchronize_session=False)
    )


def _commit_marks(session: Session, marks: list[dict], unmarked: threading.BoundedSemaphore) -> None:
    """Commit the sent marks in hand, then let the senders send as many more."""
    if marks:
        _write(session, lambda: _mark_sent(session, marks))
        unmarked.release(len(marks))  # one call under the semaphore's lock, not one per message
        marks.clear()


def _settle(session: Session, row: OutboxMessage, outcome: Exception, now: datetime, max_attempts: int,
            retry_base: float) -> str:
    """A refused message: "failed" for good on a 5xx, else queued again with backoff ("retried")."""
    if isinstance(outcome, PermanentError):
        _mark(session, row, state="failed", error=str(outcome))
        return "failed"
    return _retry(session, row, str(outcome), now, max_attempts, retry_base)


def _retry(session: Session, row: OutboxMessage, error: str, now: datetime, max_attempts: int, base: float) -> str:
    if row.attempts + 1 >= max_attempts:
        _mark(session, row, state="failed", error=f"gave up after {row.attempts + 1} attempts: {error}")
        return "failed"
    _mark(session, row, state="queued", error=error, next_attempt_at=now + backoff(row.attempts + 1, base))
    return "retried"


def release_own(session: Session, *, worker: str) -> int:
    """Queue again every row `worker` holds claimed, and commit; how many. For a scheduler with no delivery
    running, after one that ended in an error (a database down for longer than marks are retried): its
    heartbeat would keep those claims from ever lapsing. As when a lapsed claim is taken over, no attempt
    is counted, and the few that went out unmarked go out again with their Message-ID."""
    released = _release(session, worker)
    session.commit()
    return released


def _release(session: Session, worker: str, rows: list[Claimed] | None = None) -> int:
    """Give rows claimed by `worker` back to the queue, no attempt counted, sent at once by anyone: `rows`
    (on a clean shutdown, those nobody started), else every one it holds. Returns how many."""
    held = [OutboxMessage.state == "sending", OutboxMessage.claimed_by == worker]
    if rows is not None:
        held.append(OutboxMessage.id.in_([row.id for row in rows]))
    result = session.execute(update(OutboxMessage).where(*held).values(state="queued", claimed_by=None)
                             .execution_options(synchronize_session=False))
    return max(result.rowcount or 0, 0)


def _count(report: DeliveryReport, outcomes) -> None:
    for outcome in outcomes:
        setattr(report, outcome, getattr(report, outcome) + 1)


def retry_now(session: Session, message: OutboxMessage, *, now: datetime) -> None:
    """The organiser asks for another try of a failed message."""
    if message.state != "failed":
        return
    message.state = "queued"
    message.next_attempt_at = now
    message.claimed_by = None
    session.flush()


def next_due_at(session: Session) -> datetime | None:
    return session.scalar(
        select(OutboxMessage.next_attempt_at).where(OutboxMessage.state == "queued")
        .order_by(OutboxMessage.next_attempt_at).limit(1)
    )
