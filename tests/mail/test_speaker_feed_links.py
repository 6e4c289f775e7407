"""The briefing and the nudge carry the speaker's own calendar feed, which the admin can revoke."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from scheduler import dispatch
from scheduler.domain import reminders
from scheduler.extensions import db
from scheduler.models import OutboxMessage


def test_briefing_and_nudge_link_the_speaker_feed_which_works(app, client, create_event, now):
    event = create_event(starts_at=now + timedelta(days=4), speakers=[("Sam Speaker", "speaker")])
    for kind in ("briefing", "nudge"):
        job = next(j for j in reminders.event_jobs(db.session, event.id) if j.kind == kind)
        assert dispatch.fire(db.session, job.id, worker="test", clock=lambda j=job: j.due_at).outcome == "done"
    db.session.expire_all()
    mails = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind.in_(
        ("speaker_briefing", "speaker_nudge")))))
    assert len(mails) == 2
    links = set()
    for mail in mails:
        line = next(x for x in mail.body_text.splitlines() if x.startswith("webcal://townhall.test/speakers/feeds/"))
        links.add(line)
        assert line in mail.body_html
    assert len(links) == 1  # issued once, the same in both
    feed = client.get(links.pop().replace("webcal://townhall.test", ""))
    assert feed.status_code == 200 and event.title in feed.get_data(as_text=True)
