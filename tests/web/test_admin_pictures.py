"""The admin event page draws its signups chart and jobs timeline from the database."""

from __future__ import annotations

import re
from datetime import timedelta

from scheduler.domain import signups
from scheduler.extensions import db


def test_event_detail_draws_signups_chart_and_timeline(app, auth, create_event, now):
    event = create_event(title="Chart <night>", capacity=10)
    for n, hours_ago in enumerate((30, 2)):
        signups.sign_up(db.session, event, name=f"P{n}", email=f"p{n}@example.org", now=now - timedelta(hours=hours_ago),
                        secret=app.config["SECRET_KEY"])
    db.session.commit()

    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)

    assert 'aria-label="Signups over time for Chart &lt;night&gt;"' in page
    assert re.search(r"<desc id=\"chart-signups-desc-\w+\">2 signups between ", page)
    assert 'aria-label="Jobs timeline for Chart &lt;night&gt;"' in page
    # Two reminders (1 day, 1 hour), briefing, nudge and thanks: one dot each, all still planned.
    assert page.count('class="job-dot job-planned"') == 5
    assert "<night>" not in page


def test_event_detail_without_signups_says_so(auth, create_event):
    event = create_event()
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert '<p class="empty">No signups yet.</p>' in page
    assert "chart-signups" not in page
