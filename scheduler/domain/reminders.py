"""Planning: which reminders and speaker jobs an event has, and when each is due."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, and_, bindparam, cast, exists, func, literal, or_, select, union_all, update
from sqlalchemy.orm import Session, lazyload

from .. import wakeups
from ..models import ACTIVE_STATES, REGISTRATION_STATES, Event, OutboxMessage, PlannedJob, Registration
from ..models.jobs import AFTER_END_KINDS
from .queries import CLAIM_TIMEOUT, claim_lapsed
from .queries import counts as state_counts


def desired_jobs(event: Event) -> dict[tuple[str, int], datetime]:
    """(kind, offset seconds) -> due time, from the event's reminder plan and speaker settings."""
    jobs: dict[tuple[str, int], datetime] = {}
    for offset in event.reminder_offsets or []:
        jobs[("reminder", offset)] = event.starts_at - timedelta(seconds=offset)
    if event.briefing_enabled:
        jobs[("briefing", event.briefing_offset)] = event.starts_at - timedelta(seconds=event.briefing_offset)
    if event.nudge_enabled:
        jobs[("nudge", event.nudge_offset)] = event.starts_at - timedelta(seconds=event.nudge_offset)
    if event.thanks_enabled:
        jobs[("thanks", event.thanks_offset)] = event.ends_at + timedelta(seconds=event.thanks_offset)
    if event.recording_url and event.recording_added_at is not None:
        # Attendees and no-shows hear about the recording once it is given, and not before the end.
        jobs[("follow_up", 0)] = max(event.ends_at, event.recording_added_at)
    return jobs


def plan_event_jobs(session: Session, event: Event, *, now: datetime) -> list[PlannedJob]:
    """Create or move the event's job rows so they match its plan; returns the live ones.

    A job whose due time moved is planned again (a moved event gets its reminders again);
    one no longer in the plan is cancelled; one whose new time has already passed is skipped.
    """
    existing = {(j.kind, j.offset_seconds): j
                for j in session.scalars(select(PlannedJob).where(PlannedJob.event_id == event.id))}
    wanted = desired_jobs(event) if event.status == "published" else {}
    live = []
    for key, due in wanted.items():
        job = existing.pop(key, None)
        if job is None:
            job = PlannedJob(event_id=event.id, kind=key[0], offset_seconds=key[1], created_at=now)
            session.add(job)
        elif job.due_at == due and job.state != "cancelled":
            live.append(job)
            continue
        if job.state == "running":
            # The old firing finishes under its own dedupe keys; the new time gets its own run.
            job.claimed_by = None
        job.due_at = due
        job.updated_at = now
        job.messages_queued = 0
        job.fired_at = None
        if due < now and key[0] not in AFTER_END_KINDS:
            job.state, job.reason = "skipped", "its time had already passed when the event was planned"
        else:
            job.state, job.reason = "planned", None
        live.append(job)
    for job in existing.values():
        if job.state in ("planned", "running"):
            job.state, job.reason, job.updated_at = "cancelled", "no longer in the event's plan", now
    session.flush()
    if any(job.state == "planned" and job.due_at <= now + SOON for job in live):
        wakeups.announce(session, wakeups.JOBS)  # the schedulers time it now, not at their next load
    return live


#: A job planned to fall due within this wakes the schedulers (further ones are found by their next load).
SOON = timedelta(seconds=60)


def cancel_event_jobs(session: Session, event: Event, *, now: datetime, reason: str) -> int:
    """Cancel every job of the event that has not finished; returns how many.

    A fan-out in progress stops at its next chunk: its claim no longer matches.
    """
    jobs = session.scalars(
        select(PlannedJob).where(PlannedJob.event_id == event.id, PlannedJob.state.in_(("planned", "running")))
    ).all()
    for job in jobs:
        job.state, job.reason, job.updated_at, job.claimed_by = "cancelled", reason, now, None
    session.flush()
    return len(jobs)


def event_jobs(session: Session, event_id: int) -> list[PlannedJob]:
    return list(session.scalars(
        select(PlannedJob).where(PlannedJob.event_id == event_id).order_by(PlannedJob.due_at, PlannedJob.id)
    ))


def next_due(session: Session, *, now: datetime, limit: int = 10) -> list[PlannedJob]:
    return list(session.scalars(
        select(PlannedJob).where(PlannedJob.state == "planned", PlannedJob.due_at >= now - timedelta(hours=1))
        .order_by(PlannedJob.due_at).limit(limit)
    ))


# --- firing: claim a due row, decide, record progress ------------------------------------------

DEFAULT_LEASE = timedelta(seconds=60)
#: Speaker thank-yous and follow-ups later than this are not worth sending any more.
THANKS_TOO_LATE = timedelta(days=7)


def _abandoned(now: datetime, lease: timedelta, timeout: timedelta):
    """Running, but given back (no claim), or its claim lapsed (see claim_lapsed)."""
    return and_(PlannedJob.state == "running",
                or_(PlannedJob.claimed_at.is_(None),
                    claim_lapsed(PlannedJob.claimed_by, PlannedJob.claimed_at, now=now, lease=lease, timeout=timeout)))


def _claimable(now: datetime, lease: timedelta, timeout: timedelta):
    """Due and planned, or abandoned mid-way."""
    return or_(and_(PlannedJob.state == "planned", PlannedJob.due_at <= now), _abandoned(now, lease, timeout))


def work_due(session: Session, *, now: datetime, horizon: timedelta, lease: timedelta = DEFAULT_LEASE,
             timeout: timedelta = CLAIM_TIMEOUT) -> list[tuple[int, datetime]]:
    """(job id, when to fire) for work due before now + horizon, and for abandoned runs (fire now)."""
    rows = session.execute(
        select(PlannedJob.id, PlannedJob.due_at, PlannedJob.state).where(or_(
            and_(PlannedJob.state == "planned", PlannedJob.due_at <= now + horizon),
            _abandoned(now, lease, timeout),
        )).order_by(PlannedJob.due_at, PlannedJob.id)
    )
    return [(job_id, due if state == "planned" else now) for job_id, due, state in rows]


#: A claimed job's event is read by the caller as it needs it (dispatch takes a snapshot): not joined
#: in here with its tags and speakers.
_WITHOUT_EVENT = lazyload(PlannedJob.event)


def claim_jobs(session: Session, job_ids: list[int], *, worker: str, now: datetime,
               lease: timedelta = DEFAULT_LEASE, timeout: timedelta = CLAIM_TIMEOUT) -> list[PlannedJob]:
    """Take those of the jobs that are due and free for this worker; the caller commits at once.

    PostgreSQL: the rows are locked with FOR UPDATE SKIP LOCKED, so a second scheduler firing the
    same jobs at the same instant skips them instead of waiting. SQLite: the transaction began with
    BEGIN IMMEDIATE, and the UPDATE repeats the condition, so only one writer can flip the state.
    """
    due = _claimable(now, lease, timeout)
    ids = list(job_ids)
    if session.get_bind().dialect.name == "postgresql":
        ids = list(session.scalars(select(PlannedJob.id).where(PlannedJob.id.in_(ids), due)
                                   .order_by(PlannedJob.id).with_for_update(skip_locked=True)))
    if not ids:
        return []
    claimed = list(session.scalars(
        update(PlannedJob).where(PlannedJob.id.in_(ids), due)
        .values(state="running", claimed_by=worker, claimed_at=now, updated_at=now,
                fired_at=func.coalesce(PlannedJob.fired_at, now))
        .returning(PlannedJob.id).execution_options(synchronize_session=False)
    ))
    if not claimed:
        return []
    return list(session.scalars(select(PlannedJob).where(PlannedJob.id.in_(claimed)).options(_WITHOUT_EVENT)
                                .order_by(PlannedJob.due_at, PlannedJob.id).execution_options(populate_existing=True)))


def held_job(session: Session, job_id: int, *, worker: str) -> PlannedJob | None:
    """The job if this worker still holds its claim."""
    return session.scalar(
        select(PlannedJob).where(PlannedJob.id == job_id, PlannedJob.state == "running",
                                 PlannedJob.claimed_by == worker)
        .options(_WITHOUT_EVENT).execution_options(populate_existing=True)
    )


def keep_claim(session: Session, job_id: int, *, worker: str, now: datetime, added: int = 0) -> bool:
    """Renew the claim and count messages; False when the job was taken away (moved, cancelled, lease lost)."""
    result = session.execute(
        update(PlannedJob).where(PlannedJob.id == job_id, PlannedJob.state == "running",
                                 PlannedJob.claimed_by == worker)
        .values(claimed_at=now, updated_at=now, messages_queued=PlannedJob.messages_queued + added)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def keep_claims(session: Session, job_ids: list[int], *, worker: str, now: datetime) -> set[int]:
    """keep_claim for several jobs in one statement; the ids this worker still holds."""
    if not job_ids:
        return set()
    return set(session.scalars(
        update(PlannedJob).where(PlannedJob.id.in_(job_ids), PlannedJob.state == "running",
                                 PlannedJob.claimed_by == worker)
        .values(claimed_at=now, updated_at=now).returning(PlannedJob.id)
        .execution_options(synchronize_session=False)
    ))


def finish_job(session: Session, job_id: int, *, worker: str, now: datetime, state: str = "done",
               reason: str | None = None, added: int = 0) -> bool:
    """Mark the job done (or skipped with a reason) if this worker still holds it, counting `added` messages."""
    result = session.execute(_FINISH, {"job_id": job_id, "added": added, "worker": worker, "now": now,
                                       "ended": state, "why": reason})
    return result.rowcount == 1


def finish_jobs(session: Session, finished: list[tuple[int, int]], *, worker: str, now: datetime) -> None:
    """finish_job for several (job id, messages added) in one statement."""
    if finished:
        session.execute(_FINISH, [{"job_id": job_id, "added": added, "worker": worker, "now": now, "ended": "done",
                                   "why": None} for job_id, added in finished])


def count_queued(session: Session, added: list[tuple[int, int]], *, worker: str) -> None:
    """Count messages queued on several (job id, messages added) still held by this worker, in one statement."""
    if added:
        session.execute(_COUNT, [{"job_id": job_id, "added": n, "worker": worker} for job_id, n in added])


_jobs = PlannedJob.__table__
_HELD = (_jobs.c.id == bindparam("job_id"), _jobs.c.state == "running", _jobs.c.claimed_by == bindparam("worker"))
# On the table, not the mapped class: a list of parameters is then a plain executemany, not a bulk update by key.
_FINISH = update(_jobs).where(*_HELD).values(state=bindparam("ended"), reason=bindparam("why"), claimed_by=None,
                                             updated_at=bindparam("now"),
                                             messages_queued=_jobs.c.messages_queued + bindparam("added"))
_COUNT = update(_jobs).where(*_HELD).values(messages_queued=_jobs.c.messages_queued + bindparam("added"))


def release_job(session: Session, job_id: int, *, worker: str, now: datetime) -> bool:
    """Give a half-done job back (clean shutdown): another scheduler resumes it at once."""
    result = session.execute(
        update(PlannedJob).where(PlannedJob.id == job_id, PlannedJob.state == "running",
                                 PlannedJob.claimed_by == worker)
        .values(claimed_at=None, claimed_by=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def skip_reason(job: PlannedJob, event: Event, *, now: datetime) -> str | None:
    """Why this job must not send anything now, or None when it should go out."""
    if event.status != "published":
        return f"not sent: the event is {event.status}"
    if job.kind in AFTER_END_KINDS:
        if now > job.due_at + THANKS_TOO_LATE:
            return f"not sent: more than a week late (ran {now:%Y-%m-%d %H:%M:%S} UTC)"
        return None
    if now >= event.starts_at:
        return (f"not sent: the event had already started when the job ran "
                f"(due {job.due_at:%Y-%m-%d %H:%M:%S}, ran {now:%Y-%m-%d %H:%M:%S} UTC)")
    return None


def job_key(job: PlannedJob) -> str:
    """One firing of one job: a moved event's new due time gives new keys, a repeat gives the same."""
    return f"{job.kind}:{job.event_id}:{job.offset_seconds}:{int(job.due_at.timestamp())}"


_RECIPIENT = (Registration.id, Registration.name, Registration.email, Registration.timezone, Registration.token_nonce,
              Registration.language)


def _reminded(event_ids):
    """Confirmed registrations of these events that did not opt out."""
    return and_(Registration.event_id.in_(event_ids), Registration.state == "confirmed",
                Registration.reminders_opt_out.is_(False))


def reminder_recipients(session: Session, event_id: int, *, after_id: int = 0, limit: int | None = 500) -> list:
    """Confirmed registrations that did not opt out, in id order after `after_id`, as plain rows
    (id, name, email, timezone, token_nonce, language): cheap to load, and they outlive the transaction."""
    return list(session.execute(
        select(*_RECIPIENT).where(_reminded([event_id]), Registration.id > after_id)
        .order_by(Registration.id).limit(limit)
    ))


def first_recipients(session: Session, event_ids: list[int], *, limit: int) -> dict[int, list]:
    """The first `limit` reminder_recipients of each event, in one statement: {event id: rows}."""
    ranked = select(*_RECIPIENT, Registration.event_id, func.row_number().over(
        partition_by=Registration.event_id, order_by=Registration.id).label("n")).where(_reminded(event_ids)).subquery()
    pages: dict[int, list] = {event_id: [] for event_id in event_ids}
    for row in session.execute(select(*(ranked.c[column.key] for column in _RECIPIENT), ranked.c.event_id)
                               .where(ranked.c.n <= limit).order_by(ranked.c.event_id, ranked.c.id)):
        pages[row.event_id].append(row)
    return pages


def missed_recipients(session: Session, firings: list[tuple[int, str]]) -> list[list]:
    """For each (event id, firing key): its recipients without the firing's message yet (dedupe key
    `key:registration id`), in one statement. The sweep that ends a fan-out, under the event's lock,
    finds anyone confirmed meanwhile, also below the id the fan-out had reached."""
    if not firings:
        return []
    parts = []
    for n, (event_id, key) in enumerate(firings):
        queued = select(OutboxMessage.id).where(
            OutboxMessage.dedupe_key == literal(key + ":", String) + cast(Registration.id, String))
        parts.append(select(*_RECIPIENT, literal(n).label("firing")).where(_reminded([event_id]), ~exists(queued)))
    found: list[list] = [[] for _ in firings]
    query = parts[0].order_by(Registration.id) if len(parts) == 1 else union_all(*parts).order_by("firing", "id")
    for row in session.execute(query):
        found[row.firing].append(row)
    return found


def queued_registration_ids(session: Session, event_id: int, key: str) -> set[int]:
    """Registrations that already have this firing's message (a resumed fan-out skips them)."""
    prefix = key + ":"
    return set(session.scalars(
        select(OutboxMessage.registration_id).where(
            OutboxMessage.event_id == event_id, OutboxMessage.dedupe_key.startswith(prefix, autoescape=True))
    ))


def event_figures(session: Session, event: Event) -> dict[str, int]:
    """Registration counts by state, questions asked, and reminders delivered, for speaker mail."""
    counts = dict.fromkeys(REGISTRATION_STATES, 0) | state_counts(session, [event.id])[event.id]
    counts["questions"] = session.scalar(
        select(func.count()).select_from(Registration).where(
            Registration.event_id == event.id, Registration.state.in_(ACTIVE_STATES), Registration.question != "")
    ) or 0
    counts["reminders_sent"] = session.scalar(
        select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.event_id == event.id, OutboxMessage.kind == "reminder", OutboxMessage.state == "sent")
    ) or 0
    return counts


def submitted_questions(session: Session, event: Event, *, limit: int = 200) -> list[Registration]:
    """Questions from active registrations, oldest first."""
    return list(session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state.in_(ACTIVE_STATES),
                                   Registration.question != "")
        .order_by(Registration.created_at, Registration.id).limit(limit)
    ))


def needs_starting_soon(session: Session, registration: Registration, *, now: datetime) -> bool:
    """True when a reminder already went out and none is left to come before the start."""
    event = registration.event
    if event.status != "published" or now >= event.starts_at or registration.reminders_opt_out:
        return False
    offsets = event.reminder_offsets
    if not offsets or now < event.starts_at - timedelta(seconds=min(offsets)):
        return False  # no reminders, or one still to come, which will include them (no query needed)
    states = set(session.scalars(
        select(PlannedJob.state).where(PlannedJob.event_id == event.id, PlannedJob.kind == "reminder")
    ))
    # A reminder still planned (even one due this very second) or still fanning out will include
    # them: a fan-out ends with a sweep under the event's lock, which this signup holds now.
    return "done" in states and not states & {"planned", "running"}


def sent_log(session: Session, event_id: int) -> list[dict]:
    """The event's mail by kind and state: how many, first and last sent."""
    rows = session.execute(
        select(OutboxMessage.kind, OutboxMessage.state, func.count(), func.min(OutboxMessage.sent_at),
               func.max(OutboxMessage.sent_at), func.min(OutboxMessage.created_at))
        .where(OutboxMessage.event_id == event_id)
        .group_by(OutboxMessage.kind, OutboxMessage.state)
        .order_by(func.min(OutboxMessage.created_at), OutboxMessage.kind, OutboxMessage.state)
    )
    return [dict(kind=kind, state=state, count=count, first_sent=first, last_sent=last, queued=queued)
            for kind, state, count, first, last, queued in rows]
