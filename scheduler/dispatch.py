"""Firing planned jobs: claim the row, fan out to the outbox in committed chunks, mark it done.

Every chunk commits its outbox rows together with the job's progress, under the job's claim:
a process killed mid fan-out leaves a 'running' row whose claim goes stale, and whoever takes it
next resumes; the dedupe keys make the rows already queued a no-op. The first chunk is small so
delivery can start within milliseconds of the due time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import Session

from .database import read_only
from .domain import reminders
from .domain.queries import CLAIM_TIMEOUT, lock_event
from .mail import follow_ups as follow_up_mail
from .mail import outbox
from .mail import reminders as job_mail
from .models import Event

log = logging.getLogger(__name__)
FIRST_CHUNK = 1
CHUNK = 500


@dataclass
class Firing:
    job_id: int
    #: done, skipped, more (call resume() with `after`), released (clean shutdown),
    #: lost (taken away meanwhile), or busy (not claimable).
    outcome: str
    queued: int = 0
    reason: str | None = None
    #: For "more": the last registration id handled.
    after: int = 0


def fire(session: Session, job_id: int, *, worker: str, clock: Callable[[], datetime],
         lease: timedelta = reminders.DEFAULT_LEASE, timeout: timedelta = CLAIM_TIMEOUT,
         on_chunk: Callable[[], None] | None = None, stopping: Callable[[], bool] | None = None,
         chunks: int | None = None) -> Firing:
    """Run one planned job if it is due and free by `clock()`; `on_chunk()` is called after each committed chunk.

    With `chunks`, a reminder stops after that many chunks with outcome "more": the caller queues
    resume() behind the other due jobs, so a hundred reminders due in the same second each get
    their first messages out before any of them sends its thousandth.
    """
    now = clock()
    job = reminders.claim_job(session, job_id, worker=worker, now=now, lease=lease, timeout=timeout)
    session.commit()
    if job is None:
        return Firing(job_id, "busy")
    kind, offset, key, event_id = job.kind, job.offset_seconds, reminders.job_key(job), job.event_id
    event = _snapshot(session, event_id)
    reason = reminders.skip_reason(job, event, now=now)
    if reason is not None:
        reminders.finish_job(session, job_id, worker=worker, now=now, state="skipped", reason=reason)
        session.commit()
        log.info("job %s (%s of event %s) skipped: %s", job_id, kind, event_id, reason)
        return Firing(job_id, "skipped", reason=reason)
    if kind == "reminder":
        with read_only():
            done = reminders.queued_registration_ids(session, event.id, key) if job.messages_queued else set()
            session.commit()
        return _fan_out(session, job_id, key, offset, event, job.due_at, worker=worker, clock=clock,
                        on_chunk=on_chunk, stopping=stopping, chunks=chunks, done=done, after=0, size=FIRST_CHUNK)
    # A follow-up's rows, like a speaker job's, are all written in one transaction with the job's end.
    rows = (follow_up_mail.follow_up_rows(session, event, now=now) if kind == "follow_up"
            else job_mail.speaker_rows(session, job, event, now=now))
    added = outbox.insert_rows(session, rows)
    if not reminders.keep_claim(session, job_id, worker=worker, now=now, added=added):
        session.rollback()
        return Firing(job_id, "lost")
    reminders.finish_job(session, job_id, worker=worker, now=now)
    session.commit()
    if added and on_chunk:
        on_chunk()
    return Firing(job_id, "done", queued=added)


def resume(session: Session, job_id: int, *, after: int, worker: str, clock: Callable[[], datetime],
           on_chunk: Callable[[], None] | None = None, stopping: Callable[[], bool] | None = None,
           chunks: int | None = None) -> Firing:
    """Go on with a reminder this worker claimed, after registration id `after`."""
    with read_only():
        job = reminders.held_job(session, job_id, worker=worker)
        if job is None:
            session.commit()
            return Firing(job_id, "lost")
        key, offset, event = reminders.job_key(job), job.offset_seconds, _snapshot(session, job.event_id)
        due, handled = job.due_at, job.messages_queued
        session.commit()
    return _fan_out(session, job_id, key, offset, event, due, worker=worker, clock=clock, on_chunk=on_chunk,
                    stopping=stopping, chunks=chunks, done=set(), after=after, size=CHUNK, handled=handled)


def _fan_out(session: Session, job_id: int, key: str, offset: int, event: SimpleNamespace, due: datetime, *,
             worker: str, clock, on_chunk, stopping, chunks: int | None, done: set[int], after: int, size: int,
             handled: int = 0) -> Firing:
    total = 0
    while True:
        if stopping is not None and stopping():
            reminders.release_job(session, job_id, worker=worker, now=clock())
            session.commit()
            return Firing(job_id, "released", queued=total)
        if chunks is not None and chunks <= 0:
            return Firing(job_id, "more", queued=total, after=after)
        # Read and render outside the write transaction: on SQLite the write lock is held only
        # for the insert itself, so delivery can mark rows sent in between.
        with read_only():
            recipients = reminders.reminder_recipients(session, event.id, after_id=after, limit=size)
            session.commit()
        if not recipients:
            break
        after, size = recipients[-1].id, CHUNK
        now = clock()
        if now >= event.starts_at:
            reason = "stopped: the event started during the fan-out"
            reminders.finish_job(session, job_id, worker=worker, now=now, reason=reason)
            session.commit()
            return Firing(job_id, "done", queued=total, reason=reason)
        rows = _interleaved(job_mail.reminder_rows(key, event, [r for r in recipients if r.id not in done],
                                                   offset=offset, now=now), due, handled + total)
        added = outbox.insert_rows(session, rows)
        if not reminders.keep_claim(session, job_id, worker=worker, now=now, added=added):
            session.rollback()  # moved, cancelled, or our lease ran out and someone else took over
            return Firing(job_id, "lost", queued=total)
        session.commit()
        total += added
        if chunks is not None:
            chunks -= 1
        if added and on_chunk:
            on_chunk()
    # The sweep, under the event's lock that every signup takes: whoever was confirmed during the
    # fan-out and not reached by it (a signup whose row got a lower id but committed later) gets
    # this reminder now; anyone confirmed after this commit sees the job done and gets "starting soon".
    now = clock()
    lock_event(session, event.id)
    missed = reminders.missed_recipients(session, event.id, key)
    added = outbox.insert_rows(session, _interleaved(
        job_mail.reminder_rows(key, event, missed, offset=offset, now=now), due, handled + total)) if missed else 0
    if not reminders.keep_claim(session, job_id, worker=worker, now=now, added=added):
        session.rollback()
        return Firing(job_id, "lost", queued=total)
    reminders.finish_job(session, job_id, worker=worker, now=now)
    session.commit()
    total += added
    if added and on_chunk:
        on_chunk()
    log.info("job %s (reminder of event %s) finished", job_id, event.id)
    return Firing(job_id, "done", queued=total)


#: Reminder rows are due from this long before the job's due time, one microsecond apart per recipient.
INTERLEAVE_BASE = timedelta(seconds=60)


def _interleaved(rows: list[dict], due: datetime, first: int) -> list[dict]:
    """Give the n-th recipient of a firing the same place in the delivery queue (which runs by
    next_attempt_at) as the n-th recipient of every other reminder due at that time: a hundred events
    due in the same second then each get their first messages out before any of them its hundredth."""
    start = due - INTERLEAVE_BASE
    for n, row in enumerate(rows, start=first):
        row["next_attempt_at"] = start + timedelta(microseconds=n)
    return rows


def _snapshot(session: Session, event_id: int) -> SimpleNamespace:
    """The event's values as a plain object: templates read it between commits without reloading,
    and the caller's own Event instance (if any) is left alone."""
    event = session.scalar(select(Event).where(Event.id == event_id).execution_options(populate_existing=True))
    view = SimpleNamespace(**{attr.key: getattr(event, attr.key) for attr in Event.__mapper__.column_attrs})
    view.speakers = [
        SimpleNamespace(role=link.role, speaker_id=link.speaker_id, speaker=SimpleNamespace(
            id=link.speaker.id, name=link.speaker.name, email=link.speaker.email, language=link.speaker.language))
        for link in event.speakers
    ]
    return view
