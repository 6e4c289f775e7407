"""The admin sees each event's planned jobs with their message counts, and the sent log."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from scheduler import dispatch
from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.mail.transports import transport_from_config
from scheduler.models import PlannedJob
from tests.integration.reminder_setup import add_confirmed


def test_event_page_shows_job_counts_and_sent_log(app, auth, create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    add_confirmed(db.session, event.id, 3, now=now)
    job = db.session.scalar(select(PlannedJob).where(PlannedJob.event_id == event.id, PlannedJob.kind == "reminder"))
    due = job.due_at
    db.session.commit()
    dispatch.fire(db.session, job.id, worker="w", clock=lambda: due)
    report = outbox.deliver(db.session, lambda: transport_from_config(app.config), app.config, worker="w",
                            clock=lambda: due + timedelta(seconds=1))
    assert report.sent == 3
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert "Sent log" in page
    sent_rows = page.split('id="sent-heading"')[1]
    assert "<td>Reminder</td>\n      <td>sent</td>\n      <td>3</td>" in sent_rows
    assert '<tr class="job job-done">' in page
