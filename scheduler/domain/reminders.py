"""Planning: which reminders and speaker jobs an event has, and when each is due."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Event, PlannedJob


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
        if due < now and key[0] != "thanks":
            job.state, job.reason = "skipped", "its time had already passed when the event was planned"
        else:
            job.state, job.reason = "planned", None
        live.append(job)
    for job in existing.values():
        if job.state in ("planned", "running"):
            job.state, job.reason, job.updated_at = "cancelled", "no longer in the event's plan", now
    session.flush()
    return live


def cancel_event_jobs(session: Session, event: Event, *, now: datetime, reason: str) -> int:
    """Cancel every job of the event that has not run yet; returns how many."""
    jobs = session.scalars(
        select(PlannedJob).where(PlannedJob.event_id == event.id, PlannedJob.state == "planned")
    ).all()
    for job in jobs:
        job.state, job.reason, job.updated_at = "cancelled", reason, now
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
