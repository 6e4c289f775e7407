"""Snapshots of the reminder and speaker emails' plain-text parts, fired through the real dispatcher.

The event is created a month ahead by a fixed clock and each job fired by a clock set to its due time,
so the snapshots hold on any date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from scheduler import dispatch
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.models import OutboxMessage, PlannedJob
from scheduler.tokens import manage_token
from scheduler.urls import door_url, speaker_door_url, webcal_url
from scheduler.web.feeds import speaker_feed_url

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
START = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    """The app's clock, and the time the event is created and published at."""
    return NOW


def fire(app, kind: str, offset: int) -> OutboxMessage:
    job = db.session.scalar(select(PlannedJob).where(PlannedJob.kind == kind, PlannedJob.offset_seconds == offset))
    fired_at = job.due_at + timedelta(seconds=1)
    db.session.commit()
    app.config["CLOCK"] = lambda: fired_at
    assert dispatch.fire(db.session, job.id, worker="test", clock=lambda: fired_at).outcome == "done"
    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind.in_(
        ("reminder", "speaker_briefing", "speaker_nudge"))).order_by(OutboxMessage.id.desc())).first()


def make_event(app, create_event):
    """A talk on START, with a speaker and one registrant who asked a question."""
    event = create_event(title="PyTorch: A Foundation for Open Source AI/ML", timezone="America/Los_Angeles",
                         starts_at=START, join_url="https://meet.example.org/pytorch", reminder_offsets=[86400],
                         speakers=[("Soumith Chintala", "speaker")])
    ada = signups.sign_up(db.session, event, name="Ada Lovelace", email="ada@example.org", timezone="Europe/Berlin",
                          question="Will PyTorch stay open?", now=NOW, secret=app.config["SECRET_KEY"]).registration
    db.session.commit()
    return event, ada


def test_reminder_email_snapshot(app, create_event):
    event, ada = make_event(app, create_event)
    message = fire(app, "reminder", 86400)
    link = f"http://townhall.test/r/{manage_token(app.config['SECRET_KEY'], ada)}"
    assert (message.to_addr, message.unsubscribe_url) == ("ada@example.org", f"{link}/unsubscribe")
    assert message.subject == "Reminder: PyTorch: A Foundation for Open Source AI/ML starts in 1 day"
    assert message.body_text == f"""Hello Ada Lovelace,

"PyTorch: A Foundation for Open Source AI/ML" starts in 1 day.

Thursday 3 December 2026, 18:00–19:00 CET (Europe/Berlin)

Join online: {door_url(ada)}

Manage your registration (status, cancel):
{link}

Stop reminders for this event:
{link}/unsubscribe

You get this email because you registered for this event on Townhall.
"""


def test_speaker_briefing_email_snapshot(app, create_event):
    event, _ada = make_event(app, create_event)
    door = speaker_door_url(event.speakers[0])
    message = fire(app, "briefing", 3 * 86400)
    feed = webcal_url(speaker_feed_url(db.session, event.speakers[0].speaker))  # issued by the briefing
    assert message.to_addr == "soumith@speakers.test"
    assert message.subject == "Speaker briefing: PyTorch: A Foundation for Open Source AI/ML"
    assert message.body_text == f"""Hello Soumith Chintala,

Here is your briefing for "PyTorch: A Foundation for Open Source AI/ML", where you are the speaker.

Thursday 3 December 2026, 09:00–10:00 PST (America/Los_Angeles)
Join link: {door}

Registrations: 1 confirmed, 0 on the waitlist.

Run of show:
- Wed 2 Dec 09:00 PST  Attendees get their 1 day reminder
- Thu 3 Dec 08:45 PST  You get the go-live nudge with the join link
- Thu 3 Dec 09:00 PST  Live: Soumith Chintala (speaker)
- Thu 3 Dec 10:00 PST  End
- Thu 3 Dec 11:00 PST  Thank-you with attendance figures

Questions submitted by attendees (1):

- Ada Lovelace: Will PyTorch stay open?

Every event you speak at, in your calendar (subscribe once):
{feed}

You get this email because you are a speaker at this event on Townhall. Questions? Reply to the organiser.
"""


def test_the_time_left_in_a_reminder_is_never_a_wrong_number():
    """An API-planned offset of 90 s said "starts in 1 minutes"; the time left is said exactly or rounded."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from scheduler.mail.reminders import starts_in

    start = datetime(2026, 11, 5, 18, 0, tzinfo=UTC)
    event = SimpleNamespace(starts_at=start)
    assert starts_in(event, now=start - timedelta(seconds=90), nominal=90) == "in 90 seconds"
    assert starts_in(event, now=start - timedelta(seconds=61)) == "in 1 minute"
    assert starts_in(event, now=start - timedelta(minutes=2)) == "in 2 minutes"
    assert starts_in(event, now=start - timedelta(seconds=20)) == "in 1 minute"
