"""The organiser writes an announcement and gives the recording, a registrant rates the event: the pages
work in a real browser and pass axe-core (no serious or critical finding) at 1280 and 375 px."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from scheduler.extensions import db
from tests.support import check_page, log_in

pytestmark = pytest.mark.browser


def held_event(live_server) -> tuple[int, str]:
    """An event that ended an hour ago, with three people (two came), a question answered, and a speaker."""
    from scheduler.domain import board, signups
    from scheduler.domain import events as event_rules
    from scheduler.models import utcnow
    from scheduler.tokens import manage_token

    now = utcnow()
    start = (now - timedelta(hours=2)).replace(second=0, microsecond=0)
    with live_server.app.app_context():
        event = event_rules.create_event(
            db.session, now=now - timedelta(days=3), title="Held <b>live</b>", starts_at=start,
            ends_at=start + timedelta(hours=1), timezone="Europe/Berlin", kind="live discussion", double_opt_in=False,
            join_url="https://meet.example.org/held")
        speaker = event_rules.create_speaker(db.session, now=now, name="Hal Host", email="hal@speakers.test")
        event_rules.add_speaker(db.session, event, speaker, role="host", now=now)
        event_rules.publish_event(db.session, event, now=now - timedelta(days=3))
        people = [signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@held.example.org",
                                  now=now - timedelta(days=2), secret=live_server.app.config["SECRET_KEY"]).registration
                  for name in ("Ada", "Bob", "Cy")]
        question = board.ask(db.session, event, board.Actor(registration=people[0]), body="=1+1 <i>really</i>?",
                             now=start)
        board.vote(db.session, event, board.Actor(registration=people[1]), question.id, now=start)
        board.mark_answered(db.session, event, board.Actor(organiser=True), question.id, now=start)
        people[0].door_first_at = people[1].door_first_at = start
        db.session.commit()
        event_id, token = event.id, manage_token(live_server.app.config["SECRET_KEY"], people[0])
        db.session.remove()
    return event_id, token


def test_announcement_recording_and_feedback_pages(page, live_server):
    event_id, token = held_event(live_server)
    log_in(page)
    page.goto(f"/admin/events/{event_id}/announcements")
    check_page(page, "announcement-form")
    page.get_by_label("Send to").select_option("all")
    page.get_by_label("Subject").fill("Slides are up")
    page.get_by_label("Message").fill("Find them **here**: https://slides.example.org")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("button", name="Send to 3 people")).to_be_visible()
    check_page(page, "announcement-preview")
    page.get_by_role("button", name="Send to 3 people").click()
    expect(page.get_by_text("is on its way to 3 people")).to_be_visible()

    page.goto(f"/admin/events/{event_id}")
    page.get_by_label("Recording link").fill("https://video.example.org/held")
    page.get_by_role("button", name="Save the recording").click()
    expect(page.get_by_text("get their follow-up now")).to_be_visible()
    expect(page.locator("text=67%")).to_be_visible()
    check_page(page, "admin-after-the-event")

    page.goto(f"/r/{token}/feedback")
    check_page(page, "feedback-form")
    page.get_by_label("4", exact=True).check()
    page.get_by_label("Anything you would like to tell the organiser? (optional)").fill("Loved it")
    page.get_by_role("button", name="Send my feedback").click()
    expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
    page.goto(f"/r/{token}/feedback")
    expect(page.get_by_text("already given your feedback")).to_be_visible()
    page.goto(f"/admin/events/{event_id}")
    expect(page.locator("text=4.0")).to_be_visible()
