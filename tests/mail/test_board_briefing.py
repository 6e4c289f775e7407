"""The speaker briefing lists the board's top questions by votes, with each speaker's way to the board."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from scheduler import dispatch
from scheduler.domain import board, reminders, signups
from scheduler.domain.events import update_event
from scheduler.extensions import db
from scheduler.models import OutboxMessage


def briefings(event, now) -> dict[str, OutboxMessage]:
    """Fire the event's briefing; its messages by recipient."""
    job = next(j for j in reminders.event_jobs(db.session, event.id) if j.kind == "briefing")
    assert dispatch.fire(db.session, job.id, worker="test", clock=lambda: job.due_at).outcome == "done"
    db.session.expire_all()
    return {m.to_addr: m for m in db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "speaker_briefing"))}


def test_briefing_lists_top_questions_by_votes_and_links_the_board(app, client, create_event, now):
    event = create_event(starts_at=now + timedelta(days=4), speakers=[("Hal Host", "host"), ("Sam Speaker", "speaker")])
    people = [signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@example.org", now=now,
                              secret=app.config["SECRET_KEY"]).registration for name in ("Ada", "Bob", "Cy")]
    ada, bob, cy = (board.Actor(registration=r) for r in people)
    quiet = board.ask(db.session, event, ada, body="No votes yet", now=now)
    popular = board.ask(db.session, event, bob, body="<script>x</script> popular", now=now, anonymous=True)
    hidden = board.ask(db.session, event, cy, body="Hidden by the host", now=now)
    for voter in (ada, cy):
        board.vote(db.session, event, voter, popular.id, now=now)
    board.vote(db.session, event, bob, quiet.id, now=now)
    board.vote(db.session, event, ada, hidden.id, now=now)
    board.hide(db.session, event, board.Actor(organiser=True), hidden.id, now=now)
    db.session.commit()

    mails = briefings(event, now)
    host, speaker = mails["hal@speakers.test"], mails["sam@speakers.test"]
    expected = ("Questions submitted by attendees (2):\n\n"
                "- Anonymous (2 votes): <script>x</script> popular\n\n"
                "- Ada (1 vote): No votes yet\n")
    assert expected in host.body_text and expected in speaker.body_text
    assert "Hidden by the host" not in host.body_text
    assert "&lt;script&gt;x&lt;/script&gt; popular" in host.body_html and "<script>x" not in host.body_html
    link = host.body_text.split("The question board, where you moderate: ")[1].split("\n")[0]
    assert link.startswith("http://townhall.test/s/")
    assert "Pin: answering now" in client.get(link.removeprefix("http://townhall.test")).get_data(as_text=True)
    # A speaker who does not moderate gets no link to a board that only registrants may read.
    assert "question board" not in speaker.body_text.lower()


def test_briefing_gives_other_speakers_the_public_board_when_visitors_may_read_it(app, create_event, now):
    event = create_event(starts_at=now + timedelta(days=4), speakers=[("Sam Speaker", "speaker")])
    update_event(db.session, event, now=now, board_public=True)
    db.session.commit()
    speaker = briefings(event, now)["sam@speakers.test"]
    assert f"The question board: http://townhall.test/events/{event.slug}/questions\n" in speaker.body_text
    assert "No questions have been submitted yet." in speaker.body_text


def test_go_live_nudge_links_the_moderation_and_presenter_views(app, client, create_event, now):
    event = create_event(starts_at=now + timedelta(days=4), speakers=[("Hal Host", "host"), ("Sam Speaker", "speaker")])
    job = next(j for j in reminders.event_jobs(db.session, event.id) if j.kind == "nudge")
    assert dispatch.fire(db.session, job.id, worker="test", clock=lambda: job.due_at).outcome == "done"
    db.session.expire_all()
    mails = {m.to_addr: m for m in db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == "speaker_nudge"))}
    host, speaker = mails["hal@speakers.test"], mails["sam@speakers.test"]
    board_link = host.body_text.split("The question board, where you moderate: ")[1].split("\n")[0]
    presenter = host.body_text.split("The presenter view, to share on screen: ")[1].split("\n")[0]
    assert presenter == board_link + "/presenter"
    for link in (board_link, presenter):
        assert client.get(link.removeprefix("http://townhall.test")).status_code == 200
    assert f'href="{presenter}"' in host.body_html
    # The board is for registrants only here: a speaker who does not moderate gets neither link.
    assert "question board" not in speaker.body_text.lower() and "presenter" not in speaker.body_text.lower()
