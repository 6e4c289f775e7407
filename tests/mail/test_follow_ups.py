"""Follow-up mail: the attendee's thanks lists the answered questions (escaped), the speaker's thank-you
carries attendance and board figures, and each is written in its reader's language."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from scheduler import dispatch
from scheduler.domain import board, follow_ups, reminders, signups
from scheduler.extensions import db
from scheduler.models import OutboxMessage
from tests.support import outbox


def test_thanks_lists_answered_questions_and_the_speaker_gets_the_figures(app, create_event, now):
    event = create_event(starts_at=now + timedelta(hours=1), speakers=[("Hal Host", "host")])
    people = [signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@example.org", now=now,
                              secret=app.config["SECRET_KEY"]).registration for name in ("Ada", "Bob", "Cy")]
    asked = board.ask(db.session, event, board.Actor(registration=people[0]), body="<b>Why</b> & how?", now=now)
    board.vote(db.session, event, board.Actor(registration=people[1]), asked.id, now=now)
    board.mark_answered(db.session, event, board.Actor(organiser=True), asked.id, now=now)
    board.ask(db.session, event, board.Actor(registration=people[1]), body="Not answered", now=now)
    people[0].door_first_at = people[1].door_first_at = event.starts_at
    follow_ups.set_recording(db.session, event, url="https://video.example.org/x", now=now)
    db.session.commit()
    after = event.ends_at + timedelta(hours=1)
    for kind in ("follow_up", "thanks"):
        job = next(j for j in reminders.event_jobs(db.session, event.id) if j.kind == kind)
        assert dispatch.fire(db.session, job.id, worker="test", clock=lambda: after).outcome == "done"
    thanks = {m.to_addr: m for m in outbox("follow_up_attended")}
    assert sorted(thanks) == ["ada@example.org", "bob@example.org"]
    mail = thanks["ada@example.org"]
    assert "- Ada (1 vote): <b>Why</b> & how?" in mail.body_text and "Not answered" not in mail.body_text
    assert "&lt;b&gt;Why&lt;/b&gt; &amp; how?" in mail.body_html
    assert [m.to_addr for m in outbox("follow_up_missed")] == ["cy@example.org"]
    speaker = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "speaker_thanks"))
    assert "2 people came through the door (67%)" in speaker.body_text
    assert "2 questions asked, 1 answered" in speaker.body_text and "- 1 vote" in speaker.body_text


def test_follow_up_is_written_in_the_registrants_language(app, create_event, now):
    event = create_event(starts_at=now - timedelta(hours=2))
    registration = signups.sign_up(db.session, event, name="Jo", email="jo@example.org", now=now - timedelta(days=1),
                                   secret=app.config["SECRET_KEY"]).registration
    registration.language = "de"
    follow_ups.set_recording(db.session, event, url="https://video.example.org/y", now=now)
    db.session.commit()
    job = next(j for j in reminders.event_jobs(db.session, event.id) if j.kind == "follow_up")
    assert dispatch.fire(db.session, job.id, worker="test", clock=lambda: now).outcome == "done"
    mail = outbox("follow_up_missed")[0]
    assert "https://video.example.org/y" in mail.body_text
    # Dates follow the reader's locale (the catalogs translate the words as they are filled in).
    assert "Montag" in mail.body_html
