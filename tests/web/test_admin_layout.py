"""The organiser's pages on a narrow screen: dates short enough for a table cell."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import OutboxMessage
from tests.support import signup


def test_outbox_dates_are_short_with_the_full_date_on_hover(app, auth, create_event, now):
    event = create_event(title="Dated")
    assert signup(auth.client, event).status_code == 200
    row = db.session.scalars(select(OutboxMessage)).one()
    page = auth.client.get("/admin/outbox").get_data(as_text=True)
    cells = re.search(rf'id="message-{row.id}">(.*?)</tr>', page, re.S).group(1)
    short = ('<time datetime="2026-11-02T12:00:00+00:00" title="Monday 2 November 2026, 12:00 UTC (UTC)">'
             '2 Nov 12:00</time>')
    assert f'<td data-label="Queued">{short}</td>' in cells
    assert f'<td data-label="Next try">{short}</td>' in cells
    assert "Times in UTC." in page


def test_short_dates_name_the_year_only_when_it_is_not_this_one(app, now):
    short = app.jinja_env.filters["short_when"]
    with app.test_request_context():
        assert short(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "31 Dec 23:30"
        # Already the next year in Berlin, so the year is shown.
        assert short(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Europe/Berlin") == "1 Jan 2027 00:30"
        assert short(datetime(2025, 3, 4, 5, 6, tzinfo=UTC), "UTC", True) == "4 Mar 2025 05:06 UTC"
