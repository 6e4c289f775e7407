"""Firing planned jobs: claim the row, fan out to the outbox in committed chunks, mark it done.

Every chunk commits its outbox rows together with the job's progress, under the job's claim:
a process killed mid fan-out leaves a 'running' row whose claim goes stale, and whoever takes it
next resumes; the dedupe keys make the rows already queued a no-op. The first chunk is small so
delivery can start within milliseconds of the due time, and the last page is queued together with
the sweep that ends the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from .database import read_only
from .domain import reminders
from .domain.queries import CLAIM_TIMEOUT, lock_events
from .mail import follow_ups as follow_up_mail
from .mail import outbox
from .mail import reminders as job_mail
from .models import Event

log = logging.getLogger(__name__)
#: An event with fewer recipients than this is done in one pass; a larger one gets this many out first.
FIRST_CHUNK = 50
CHUNK = 500
#: Reminders due together have their first pages queued this many events per transaction.
FIRST_GROUP = 20


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


@dataclass
class _Reminder:
    """A reminder firing in hand: what its pages are rendered from, and its first page."""
    job_id: int
    key: str
    offset: int
    event: SimpleNamespace
    due: datetime
    #: Messages queued by earlier holders of the job (a resumed firing), and the registrations they reached.
    handled: int = 0
    done: set[int] = field(default_factory=set)
    page: list = field(default_factory=list)
    #: Messages queued by this firing's head pass (see _heads).
    head: int = 0
    #: Renderings by language, zone and lead, shared by this firing's pages (mail.reminders.reminder_rows).
    templates: dict = field(default_factory=dict)


def fire(session: Session, job_id: int, *, worker: str, clock: Callable[[], datetime],
         lease: timedelta = reminders.DEFAULT_LEASE, timeout: timedelta = CLAIM_TIMEOUT,
         on_chunk: Callable[[], None] | None = None, stopping: Callable[[], bool] | None = None,
         chunks: int | None = None) -> Firing:
    """Run one planned job if it is due and free by `clock()` (see fire_many)."""
    return fire_many(session, [job_id], worker=worker, clock=clock, lease=lease, timeout=timeout,
                     on_chunk=on_chunk, stopping=stopping, chunks=chunks)[0]


def fire_many(session: Session, job_ids: list[int], *, worker: str, clock: Callable[[], datetime],
              lease: timedelta = reminders.DEFAULT_LEASE, timeout: timedelta = CLAIM_TIMEOUT,
              on_chunk: Callable[[], None] | None = None, stopping: Callable[[], bool] | None = None,
              chunks: int | None = None) -> list[Firing]:
    """Run the planned jobs of `job_ids` that are due and free by `clock()`; one Firing each, in order.

    Reminders due together are claimed and read together; when they are more than a group, each
    one's first recipient is queued in one transaction for all (_heads); then their first pages are
    queued a group of events per transaction, and an event smaller than a page is done in it. A
    hundred events due in the same second thus have their first messages queued within a few
    hundred milliseconds, and delivery interleaves them (see _interleaved).
    With `chunks`, a larger reminder stops after that many chunks with outcome "more": the caller
    queues resume() behind the other due jobs. `on_chunk()` is called after each committed chunk.
    """
    now = clock()
    jobs = reminders.claim_jobs(session, job_ids, worker=worker, now=now, lease=lease, timeout=timeout)
    for job in jobs:
        session.expunge(job)  # its values stay as claimed: the commit does not expire them into a reload
    session.commit()
    firings = {job_id: Firing(job_id, "busy") for job_id in job_ids}
    if not jobs:
        return list(firings.values())
    with read_only():
        events = _snapshots(session, {job.event_id for job in jobs})
        session.commit()
    due: list[_Reminder] = []
    for job in jobs:
        event = events[job.event_id]
        reason = reminders.skip_reason(job, event, now=now)
        if reason is not None:
            reminders.finish_job(session, job.id, worker=worker, now=now, state="skipped", reason=reason)
            session.commit()
            log.info("job %s (%s of event %s) skipped: %s", job.id, job.kind, job.event_id, reason)
            firings[job.id] = Firing(job.id, "skipped", reason=reason)
        elif job.kind == "reminder":
            due.append(_Reminder(job.id, reminders.job_key(job), job.offset_seconds, event, job.due_at,
                                 handled=job.messages_queued))
        else:
            firings[job.id] = _fire_one_transaction(session, job, event, worker=worker, now=now, on_chunk=on_chunk)
    resumed = [reminder for reminder in due if reminder.handled]
    if resumed:
        with read_only():
            for reminder in resumed:
                reminder.done = reminders.queued_registration_ids(session, reminder.event.id, reminder.key)
            session.commit()
    if len(due) > FIRST_GROUP:
        _heads(session, due, worker=worker, clock=clock, on_chunk=on_chunk, stopping=stopping)
    # In groups, each committed on its own: delivery starts on the first while the next is rendered.
    pages = [firing for n in range(0, len(due), FIRST_GROUP) for firing in _first_pages(
        session, due[n:n + FIRST_GROUP], worker=worker, clock=clock, on_chunk=on_chunk, stopping=stopping)]
    for firing in pages:
        if firing.outcome == "more" and (chunks is None or chunks > 1):
            reminder = next(r for r in due if r.job_id == firing.job_id)
            firing = _fan_out(session, reminder, worker=worker, clock=clock, on_chunk=on_chunk, stopping=stopping,
                              chunks=None if chunks is None else chunks - 1, after=firing.after, total=firing.queued)
        firings[firing.job_id] = firing
    return list(firings.values())


def _fire_one_transaction(session: Session, job, event: SimpleNamespace, *, worker: str, now: datetime,
                          on_chunk) -> Firing:
    """A follow-up's rows, like a speaker job's, are all written in one transaction with the job's end."""
    rows = (follow_up_mail.follow_up_rows(session, event, now=now) if job.kind == "follow_up"
            else job_mail.speaker_rows(session, job, event, now=now))
    added = outbox.insert_rows(session, rows)
    if not reminders.keep_claim(session, job.id, worker=worker, now=now, added=added):
        session.rollback()
        return Firing(job.id, "lost")
    reminders.finish_job(session, job.id, worker=worker, now=now)
    session.commit()
    if added and on_chunk:
        on_chunk()
    return Firing(job.id, "done", queued=added)


def _heads(session: Session, due: list[_Reminder], *, worker: str, clock, on_chunk, stopping) -> None:
    """Queue each reminder's first recipient, all in one transaction, before any page.

    The pages of reminders due together are queued twenty events per transaction; with a hundred
    events due in the same second, the last group's first messages would wait for the four before it.
    With the heads first, every event's first message is queued within the time of one rendering per
    event, whichever group its page falls in; the pages then skip who has theirs.
    """
    if stopping is not None and stopping():
        return
    with read_only():
        firsts = reminders.first_recipients(session, [reminder.event.id for reminder in due], limit=1)
        session.commit()
    now = clock()
    heads = [_Page(reminder, _rows(reminder, [r for r in firsts[reminder.event.id] if r.id not in reminder.done],
                                   now=now), last=False) for reminder in due]
    held = reminders.keep_claims(session, [reminder.job_id for reminder in due], worker=worker, now=now)
    heads = [page for page in heads if page.reminder.job_id in held and page.rows]
    new = outbox.insert_rows_keyed(session, [row for page in heads for row in page.rows])
    for page in heads:
        page.reminder.head = sum(row["dedupe_key"] in new for row in page.rows)
        page.reminder.done.update(row["registration_id"] for row in page.rows)
    reminders.count_queued(session, [(page.reminder.job_id, page.reminder.head) for page in heads
                                     if page.reminder.head], worker=worker)
    session.commit()
    if on_chunk and new:
        on_chunk()


def _first_pages(session: Session, due: list[_Reminder], *, worker: str, clock, on_chunk, stopping) -> list[Firing]:
    """Queue the first page of every reminder in one transaction; the ones that fit in it are finished there."""
    if not due:
        return []
    with read_only():
        pages = reminders.first_recipients(session, [reminder.event.id for reminder in due], limit=FIRST_CHUNK)
        for reminder in due:
            reminder.page = pages[reminder.event.id]
        session.commit()
    now = clock()
    if stopping is not None and stopping():
        for reminder in due:
            reminders.release_job(session, reminder.job_id, worker=worker, now=now)
        session.commit()
        return [Firing(reminder.job_id, "released") for reminder in due]
    rendered = {reminder.job_id: _rows(reminder, [r for r in reminder.page if r.id not in reminder.done], now=now)
                for reminder in due}
    last = {reminder.job_id for reminder in due if len(reminder.page) < FIRST_CHUNK}
    lock_events(session, [reminder.event.id for reminder in due if reminder.job_id in last])
    # The claims first: a job taken away meanwhile (moved, cancelled) queues nothing.
    held = reminders.keep_claims(session, [reminder.job_id for reminder in due], worker=worker, now=now)
    kept = [reminder for reminder in due if reminder.job_id in held]
    added = dict(zip((reminder.job_id for reminder in kept), _queue(
        session, [_Page(reminder, rendered[reminder.job_id], reminder.job_id in last, reminder.head)
                  for reminder in kept], worker=worker, now=now), strict=True))
    firings = [Firing(reminder.job_id, "lost", queued=reminder.head) if reminder.job_id not in held else
               Firing(reminder.job_id, "done", queued=reminder.head + added[reminder.job_id])
               if reminder.job_id in last else
               Firing(reminder.job_id, "more", queued=reminder.head + added[reminder.job_id],
                      after=reminder.page[-1].id)
               for reminder in due]
    session.commit()
    if on_chunk and any(firing.queued for firing in firings):
        on_chunk()
    for firing in firings:
        if firing.outcome == "done":
            log.info("job %s (reminder) finished", firing.job_id)
    return firings


def resume(session: Session, job_id: int, *, after: int, worker: str, clock: Callable[[], datetime],
           on_chunk: Callable[[], None] | None = None, stopping: Callable[[], bool] | None = None,
           chunks: int | None = None) -> Firing:
    """Go on with a reminder this worker claimed, after registration id `after`."""
    with read_only():
        job = reminders.held_job(session, job_id, worker=worker)
        if job is None:
            session.commit()
            return Firing(job_id, "lost")
        reminder = _Reminder(job_id, reminders.job_key(job), job.offset_seconds,
                             _snapshots(session, {job.event_id})[job.event_id], job.due_at, handled=job.messages_queued)
        session.commit()
    return _fan_out(session, reminder, worker=worker, clock=clock, on_chunk=on_chunk, stopping=stopping,
                    chunks=chunks, after=after)


def _fan_out(session: Session, reminder: _Reminder, *, worker: str, clock, on_chunk, stopping, chunks: int | None,
             after: int, total: int = 0) -> Firing:
    """The pages after registration id `after`, a chunk per transaction; the last one with the sweep."""
    job_id, event = reminder.job_id, reminder.event
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
            recipients = reminders.reminder_recipients(session, event.id, after_id=after, limit=CHUNK)
            session.commit()
        now = clock()
        if now >= event.starts_at:
            reason = "stopped: the event started during the fan-out"
            reminders.finish_job(session, job_id, worker=worker, now=now, reason=reason)
            session.commit()
            return Firing(job_id, "done", queued=total, reason=reason)
        rows = _rows(reminder, [r for r in recipients if r.id not in reminder.done], now=now,
                     first=reminder.handled + total)
        last = len(recipients) < CHUNK
        if last:
            lock_events(session, [event.id])
        if not reminders.keep_claim(session, job_id, worker=worker, now=now):
            session.rollback()  # moved, cancelled, or our lease ran out and someone else took over
            return Firing(job_id, "lost", queued=total)
        [added] = _queue(session, [_Page(reminder, rows, last, total)], worker=worker, now=now)
        session.commit()
        total += added
        if added and on_chunk:
            on_chunk()
        if last:
            log.info("job %s (reminder of event %s) finished", job_id, event.id)
            return Firing(job_id, "done", queued=total)
        after = recipients[-1].id
        if chunks is not None:
            chunks -= 1


@dataclass
class _Page:
    """Rendered rows of one reminder, to queue; `last` ends its job; `total` were queued by this firing before."""
    reminder: _Reminder
    rows: list[dict]
    last: bool
    total: int = 0


def _queue(session: Session, pages: list[_Page], *, worker: str, now: datetime) -> list[int]:
    """Insert the pages' rows and count them on their jobs; a last page ends its job with the sweep.
    A statement per page, and one for all the sweeps, the ends and the counts: how many rows were new, per page.

    The sweep runs under the event's lock that every signup takes (the caller holds it): whoever was
    confirmed during the fan-out and not reached by it (a signup whose row got a lower id but
    committed later) gets this reminder now; anyone confirmed after the commit sees the job done
    and gets "starting soon". The caller has renewed the claims.
    """
    added = [outbox.insert_rows(session, page.rows) for page in pages]
    last = [n for n, page in enumerate(pages) if page.last]
    sweeps = reminders.missed_recipients(session, [(pages[n].reminder.event.id, pages[n].reminder.key) for n in last])
    for n, missed in zip(last, sweeps, strict=True):
        if missed:
            reminder = pages[n].reminder
            added[n] += outbox.insert_rows(session, _rows(reminder, missed, now=now,
                                                          first=reminder.handled + pages[n].total + added[n]))
    reminders.finish_jobs(session, [(pages[n].reminder.job_id, added[n]) for n in last], worker=worker, now=now)
    reminders.count_queued(session, [(page.reminder.job_id, n) for page, n in zip(pages, added, strict=True)
                                     if not page.last and n], worker=worker)
    return added


def _rows(reminder: _Reminder, recipients: list, *, now: datetime, first: int | None = None) -> list[dict]:
    """Rendered rows, placed in the queue after the `first` (by default: all so far) of this firing's."""
    rows = job_mail.reminder_rows(reminder.key, reminder.event, recipients, offset=reminder.offset, now=now,
                                  templates=reminder.templates)
    return _interleaved(rows, reminder.due, reminder.handled + reminder.head if first is None else first)


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


def _snapshots(session: Session, event_ids: set[int]) -> dict[int, SimpleNamespace]:
    """The events' values as plain objects: templates read them between commits without reloading,
    and the caller's own Event instances (if any) are left alone."""
    events = session.scalars(select(Event).where(Event.id.in_(event_ids)).options(lazyload(Event.tags))
                             .execution_options(populate_existing=True))  # no mail of a job shows the tags
    return {event.id: _snapshot(event) for event in events}


def _snapshot(event: Event) -> SimpleNamespace:
    view = SimpleNamespace(**{attr.key: getattr(event, attr.key) for attr in Event.__mapper__.column_attrs})
    view.speakers = [
        SimpleNamespace(role=link.role, speaker_id=link.speaker_id, speaker=SimpleNamespace(
            id=link.speaker.id, name=link.speaker.name, email=link.speaker.email, language=link.speaker.language))
        for link in event.speakers
    ]
    return view
