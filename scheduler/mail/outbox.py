"""The outbox: queue in the caller's transaction, claim row by row, deliver, mark.

Claiming uses FOR UPDATE SKIP LOCKED on PostgreSQL and a conditional UPDATE inside BEGIN
IMMEDIATE on SQLite, so any number of deliverers can share the table without sending a row twice.
A claim older than the lease is taken as lost (its deliverer died) and the row is sent again.

Most rows are rendered when queued. A message about one registration is queued as a small row
naming it (`queue_deferred`) and composed at delivery by the renderer registered for its kind:
the web request that signs someone up then writes a few hundred bytes instead of composing an
email with an invitation while it holds the event's seat counter.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid, parseaddr

from flask import Flask
from sqlalchemy import and_, bindparam, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ..database import read_only
from ..models import OutboxMessage, utcnow
from ..text import one_line
from .compose import prepare, render
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
_renderers: dict[str, Callable[[OutboxMessage], None]] = {}


def renders(*kinds: str):
    """Register the decorated function as the renderer of deferred messages of these kinds."""
    def register(function):
        for kind in kinds:
            _renderers[kind] = function
        return function
    return register


def fill(row: OutboxMessage) -> OutboxMessage:
    """Compose a deferred row in place (a row rendered when queued is left as it is); returns it."""
    if row.body_text is None:
        _renderers[row.kind](row)
    return row


_INSERT_OR_SKIP = {dialect: insert(OutboxMessage.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"])
                   for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))}


def insert_rows(session: Session, rows: list[dict]) -> int:
    """Insert outbox rows, skipping any whose dedupe key exists; returns how many were new."""
    if not rows:
        return 0
    statement = _INSERT_OR_SKIP[session.get_bind().dialect.name]
    # SQLAlchemy 2 reports -1 for an INSERT without preserve_rowcount; a list of rows is sent as an
    # executemany, which it batches into multi-row VALUES.
    result = session.execute(statement, rows if len(rows) > 1 else rows[0],
                             execution_options={"preserve_rowcount": True})
    return max(result.rowcount or 0, 0)


def claim(session: Session, *, worker: str, now: datetime, limit: int = 100,
          lease: timedelta = LEASE) -> list[OutboxMessage]:
    """Claim up to `limit` due rows for this worker and commit the claim."""
    due = or_(
        and_(OutboxMessage.state == "queued", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.state == "sending", OutboxMessage.claimed_at < now - lease),
    )
    query = select(OutboxMessage.id).where(due).order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        session.commit()
        return []
    # The WHERE repeats the condition: a row another worker took meanwhile is not taken again.
    session.execute(
        update(OutboxMessage).where(OutboxMessage.id.in_(ids), due)
        .values(state="sending", claimed_by=worker, claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return list(session.scalars(
        select(OutboxMessage).where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_by == worker,
                                    OutboxMessage.state == "sending")
        .order_by(OutboxMessage.id)
    ))


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
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed


def deliver(session: Session, transport_factory, app: Flask, *, worker: str, clock=utcnow, limit: int = 200,
            on_sent=None) -> DeliveryReport:
    """Claim a batch and send it over one connection; mark each row sent, retried or failed.

    `transport_factory()` returns a context manager with .send(message). `on_sent(row)` is called
    after each hand-over (benchmarks and tests time the first message with it). Messages are
    composed on a helper thread one step ahead, so composing overlaps waiting for the server.
    """
    report = DeliveryReport()
    config = app.config
    lease = timedelta(seconds=float(config["OUTBOX_LEASE_SECONDS"]))
    rows = claim(session, worker=worker, now=clock(), limit=limit, lease=lease)
    if not rows:
        return report
    max_attempts = int(config["OUTBOX_MAX_ATTEMPTS"])
    retry_base = float(config["OUTBOX_RETRY_BASE_SECONDS"])
    domain = parseaddr(config["MAIL_FROM"])[1].rpartition("@")[2] or None
    for row in rows:  # plain objects from here on: marks are single UPDATEs, no reloads
        session.expunge(row)
        row.message_id = row.message_id or make_msgid(idstring=f"outbox{row.id}", domain=domain)
    sent: list[dict] = []  # marks of sent rows, written together: one executemany per commit
    done = 0

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

    composer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="townhall-compose")
    try:
        with transport_factory() as transport:
            ready = composer.map(compose, rows)
            last_commit = time.monotonic()
            for row, message in zip(rows, ready, strict=True):
                now = clock()
                try:
                    if isinstance(message, ComposeError):
                        raise message
                    transport.send(message)
                except ConnectionLost:
                    raise
                except PermanentError as exc:
                    _mark(session, row, state="failed", error=str(exc))
                    session.commit()  # at once: no write transaction stays open while the next is sent
                    report.failed += 1
                except TransientError as exc:
                    _retry(session, row, str(exc), now, max_attempts, retry_base, report)
                    session.commit()
                else:
                    row.attempts += 1
                    sent.append({"row_id": row.id, "attempts": row.attempts, "message_id": row.message_id,
                                 "sent_at": now, "subject": row.subject, "ics": row.ics})
                    report.sent += 1
                    if on_sent:
                        on_sent(row)
                done += 1
                # Marks are committed every fraction of a second: a crash re-sends at most those in flight.
                if len(sent) >= MARK_EVERY or time.monotonic() - last_commit >= MARK_SECONDS:
                    _mark_sent(session, sent)
                    session.commit()
                    last_commit = time.monotonic()
    except TransientError as exc:
        now = clock()
        for row in rows[done:]:
            _retry(session, row, str(exc), now, max_attempts, retry_base, report)
        report.errors.append(str(exc))
        log.warning("mail delivery interrupted, %d message(s) will be retried: %s", len(rows) - done, exc)
    finally:
        composer.shutdown(wait=True, cancel_futures=True)
    _mark_sent(session, sent)
    session.commit()
    return report


#: Sent marks are committed after this many messages or this many seconds, whichever comes first.
MARK_EVERY = 100
MARK_SECONDS = 0.2


_table = OutboxMessage.__table__
_SENT = (update(_table).where(_table.c.id == bindparam("row_id"))
         .values(state="sent", attempts=bindparam("attempts"), message_id=bindparam("message_id"),
                 sent_at=bindparam("sent_at"), subject=bindparam("subject"), ics=bindparam("ics"), last_error=None,
                 claimed_by=None))


def _mark_sent(session: Session, marks: list[dict]) -> None:
    if marks:
        if session.get_bind().dialect.name == "postgresql":
            # A mark lost to a server crash only means that message is sent again, the same
            # bound as a crash in flight: no need to wait for the WAL flush at every commit.
            session.execute(_ASYNC_COMMIT)
        session.execute(_SENT, marks)
        marks.clear()


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def _mark(session: Session, row: OutboxMessage, **values) -> None:
    row.attempts += 1
    if "error" in values:
        values["last_error"] = values.pop("error")[:2000]
    elif values.get("state") == "sent":
        values["last_error"] = None
    values.update(attempts=row.attempts, message_id=row.message_id, subject=row.subject, ics=row.ics, claimed_by=None)
    session.execute(
        update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values)
        .execution_options(synchronize_session=False)
    )


def _retry(session: Session, row: OutboxMessage, error: str, now: datetime, max_attempts: int, base: float,
           report: DeliveryReport) -> None:
    if row.attempts + 1 >= max_attempts:
        _mark(session, row, state="failed", error=f"gave up after {row.attempts + 1} attempts: {error}")
        report.failed += 1
    else:
        _mark(session, row, state="queued", error=error, next_attempt_at=now + backoff(row.attempts + 1, base))
        report.retried += 1


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
