"""After the event: the recording plans one follow-up per registrant, of the right kind, whatever the firings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from scheduler import dispatch
from scheduler.domain import feedback, follow_ups, signups
from scheduler.errors import Conflict, InvalidInput
from scheduler.extensions import db
from scheduler.models import Feedback, OutboxMessage, PlannedJob
from tests.support import count, outbox


def held_event(app, create_event, now, *, came=3, missed=2):
    """An event that ended an hour ago: `came` registrants came through the door, `missed` did not."""
    event = create_event(starts_at=now - timedelta(hours=2), thanks_enabled=False, briefing_enabled=False,
                         nudge_enabled=False, reminder_offsets=[])
    people = []
    for n in range(came + missed):
        registration = signups.sign_up(db.session, event, name=f"P{n}", email=f"p{n}@example.org",
                                       now=now - timedelta(days=3), secret=app.config["SECRET_KEY"]).registration
        if n < came:
            registration.door_first_at = registration.door_last_at = event.starts_at
        people.append(registration)
    db.session.commit()
    return event, people


def follow_up_job(event) -> PlannedJob:
    return db.session.scalar(select(PlannedJob).where(PlannedJob.event_id == event.id,
                                                      PlannedJob.kind == "follow_up"))


def test_three_attendees_and_two_no_shows_each_get_one_mail_of_the_right_kind(app, create_event, now):
    event, people = held_event(app, create_event, now)
    follow_ups.set_recording(db.session, event, url="https://video.example.org/r/1", summary="**Slides** inside",
                             now=now)
    db.session.commit()
    job = follow_up_job(event)
    assert (job.state, job.due_at) == ("planned", now)
    # A scheduler that dies after claiming: its claim lapses and another fires the job.
    from scheduler.domain.reminders import claim_jobs
    assert claim_jobs(db.session, [job.id], worker="dead:1:x", now=now)
    db.session.commit()
    later = now + timedelta(minutes=10)
    assert dispatch.fire(db.session, job.id, worker="live:2:y", clock=lambda: later).outcome == "done"
    # Firing again (a replanned job, a second scheduler) adds nothing.
    job.state = "planned"
    db.session.commit()
    assert dispatch.fire(db.session, job.id, worker="live:2:y", clock=lambda: later).queued == 0
    kinds = {m.to_addr: m.kind for m in outbox() if m.kind.startswith("follow_up")}
    assert kinds == {"p0@example.org": "follow_up_attended", "p1@example.org": "follow_up_attended",
                     "p2@example.org": "follow_up_attended", "p3@example.org": "follow_up_missed",
                     "p4@example.org": "follow_up_missed"}
    thanks = next(m for m in outbox("follow_up_attended"))
    assert "https://video.example.org/r/1" in thanks.body_text and "<strong>Slides</strong>" in thanks.body_html
    assert "/feedback" in thanks.body_text
    sorry = next(m for m in outbox("follow_up_missed"))
    assert sorry.subject.startswith("Sorry we missed you") and "https://video.example.org/r/1" in sorry.body_text


def test_recording_before_the_end_waits_for_the_end_and_cancelled_events_send_nothing(app, create_event, now):
    event = create_event(starts_at=now + timedelta(hours=1))
    follow_ups.set_recording(db.session, event, url="https://video.example.org/r/2", now=now)
    db.session.commit()
    assert follow_up_job(event).due_at == event.ends_at
    from scheduler.domain import events as event_rules
    event_rules.cancel_event(db.session, event, now=now, reason="")
    db.session.commit()
    assert follow_up_job(event).state == "cancelled"
    with pytest.raises(Conflict):
        follow_ups.set_recording(db.session, event, url="https://video.example.org/r/2", now=now)
    db.session.rollback()


@pytest.mark.parametrize("url", ["", "ftp://x.org/a", "javascript:alert(1)", "https://x.org/\u202ea", "https://" + "a" * 500])
def test_bad_recording_links_are_refused_and_change_nothing(app, create_event, now, url):
    event = create_event()
    with pytest.raises(InvalidInput):
        follow_ups.set_recording(db.session, event, url=url, now=now)
    db.session.rollback()
    assert count(PlannedJob, PlannedJob.kind == "follow_up") == 0


def test_feedback_takes_one_answer_per_registrant(app, create_event, now):
    event, people = held_event(app, create_event, now, came=1, missed=1)
    came, missed = people
    feedback.give_feedback(db.session, came, rating=5, comment="Great <b>talk</b>", now=now)
    db.session.commit()
    with pytest.raises(Conflict, match="already given"):
        feedback.give_feedback(db.session, came, rating=1, now=now)
    db.session.rollback()
    with pytest.raises(InvalidInput):
        feedback.give_feedback(db.session, missed, rating=6, now=now)
    db.session.rollback()
    feedback.give_feedback(db.session, missed, rating=2, now=now)
    db.session.commit()
    assert feedback.figures(db.session, event.id) == (2, 3.5)
    assert db.session.scalar(select(Feedback.rating).where(Feedback.registration_id == came.id)) == 5


def test_feedback_opens_only_after_the_end(app, create_event, now):
    event = create_event(starts_at=now + timedelta(hours=1))
    registration = signups.sign_up(db.session, event, name="A", email="a@example.org", now=now,
                                   secret=app.config["SECRET_KEY"]).registration
    db.session.commit()
    with pytest.raises(Conflict, match="when the event is over"):
        feedback.give_feedback(db.session, registration, rating=4, now=now)
    db.session.rollback()
    assert count(Feedback) == 0


def test_attendance_and_question_figures(app, create_event, now):
    event, _ = held_event(app, create_event, now)
    seen = follow_ups.attendance(db.session, event.id)
    assert (seen.came, seen.missed, seen.rate) == (3, 2, 0.6)
    assert count(OutboxMessage, OutboxMessage.kind == "follow_up_attended") == 0


def test_attendance_counts_who_came_in_any_state_and_only_the_confirmed_as_missed(app, create_event, now):
    event, people = held_event(app, create_event, now, came=3, missed=3)
    other, _ = held_event(app, create_event, now, came=2, missed=1)  # another event's doors count apart
    people[0].state = "cancelled"  # came through the door, cancelled later: still came
    people[4].state = "cancelled"  # never came, not expected either
    people[5].state = "pending"
    db.session.commit()
    seen = follow_ups.attendance(db.session, event.id)
    assert (seen.came, seen.missed) == (3, 1)
    assert (follow_ups.attendance(db.session, other.id).came, follow_ups.attendance(db.session, other.id).missed) == (2, 1)


def test_without_a_door_every_confirmed_registrant_gets_the_thanks(app, create_event, now):
    event = create_event(starts_at=now - timedelta(hours=2), join_url="", venue="Town hall, room 2")
    for n in range(2):
        signups.sign_up(db.session, event, name=f"P{n}", email=f"p{n}@example.org", now=now - timedelta(days=1),
                        secret=app.config["SECRET_KEY"])
    follow_ups.set_recording(db.session, event, url="https://video.example.org/r/3", now=now)
    db.session.commit()
    assert dispatch.fire(db.session, follow_up_job(event).id, worker="w", clock=lambda: now).queued == 2
    assert {m.kind for m in outbox() if m.kind.startswith("follow_up")} == {"follow_up_attended"}
