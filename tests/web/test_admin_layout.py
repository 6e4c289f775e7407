"""The organiser's pages on a narrow screen: tables that become labelled cards, charts that count what the
page counts, and dates short enough for a table cell. tests/browser/test_admin_phone.py sees them at 375 px."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

from sqlalchemy import select

from scheduler.domain import signups
from scheduler.domain.api_tokens import create_token
from scheduler.extensions import db
from scheduler.models import OutboxMessage, Registration
from tests.support import ROOT, signup


class Tables(HTMLParser):
    """Every table on a page: its classes, its column headings, and the attributes of each row's cells."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self._cell: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"classes": (attrs.get("class") or "").split(), "headings": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag == "th" and self.tables:
            self.tables[-1]["headings"].append("")
            self._cell = "th"
        elif tag == "td" and self.tables:
            self.tables[-1]["rows"][-1].append(attrs)

    def handle_endtag(self, tag):
        if tag == "th":
            self._cell = None

    def handle_data(self, data):
        if self._cell == "th":
            self.tables[-1]["headings"][-1] += data.strip()


def tables_on(client, path: str) -> list[dict]:
    response = client.get(path)
    assert response.status_code == 200, path
    parser = Tables()
    parser.feed(response.get_data(as_text=True))
    return parser.tables


def busy_event(app, create_event, now):
    """An event with mail, jobs, a waitlist and a cancellation: every admin table has rows."""
    event = create_event(title="Busy evening", capacity=2)
    for n in range(4):
        signups.sign_up(db.session, event, name=f"Person {n}", email=f"p{n}@example.org",
                        now=now - timedelta(hours=10 - n), secret=app.config["SECRET_KEY"])
    db.session.commit()
    first = db.session.scalar(select(Registration).order_by(Registration.id))
    signups.cancel_registration(db.session, first, now=now - timedelta(hours=1), by_organiser=True)
    db.session.commit()
    return event


def test_every_admin_table_is_a_phone_card_with_each_cell_labelled(app, auth, create_event, now):
    """On a phone a .stack table shows each cell under its column's name (its data-label); the one table
    left as a table has so few columns that it fits."""
    event = busy_event(app, create_event, now)
    create_token(db.session, name="Deploy bot", scope="read", now=now)
    db.session.commit()
    pages = ["/admin/", f"/admin/events/{event.id}", f"/admin/events/{event.id}/registrations", "/admin/outbox",
             "/admin/api-tokens"]
    seen = 0
    for path in pages:
        for table in tables_on(auth.client, path):
            rows = [row for row in table["rows"] if row]
            if "stack" not in table["classes"]:
                assert len(table["headings"]) <= 4, (path, table["headings"])
                continue
            for row in rows:
                assert len(row) == len(table["headings"]), (path, table["headings"])
                assert all(cell.get("data-label") for cell in row), (path, row)
            seen += len(rows)
    assert seen >= 10


def test_phone_stylesheet_turns_stacked_tables_into_labelled_cards():
    css = (ROOT / "static" / "style.css").read_text()
    phone = re.search(r"@media \(max-width: 40rem\) \{(.*?)\n\}", css, re.S)
    assert phone, "no phone rules for .stack tables"
    rules = phone.group(1)
    assert re.search(r"table\.stack td::before \{[^}]*content: attr\(data-label\)", rules)
    assert re.search(r"table\.stack, table\.stack tbody, table\.stack tr, table\.stack td \{ display: block", rules)
    # The charts scale down with their box instead of keeping a width that scrolls sideways.
    chart_rules = re.search(r"\.chart svg \{([^}]*)\}", css).group(1)
    assert "width: 100%" in chart_rules and "min-width" not in chart_rules


def header_counts(page: str) -> dict[str, int]:
    stats = page.split('id="counts-heading"')[1].split("</ul>")[0]
    return {state: int(n) for n, state in re.findall(r"<li><strong>(\d+)</strong> (\w+)</li>", stats)}


def test_signups_chart_counts_what_the_header_counts(app, auth, create_event, now):
    """One cancelled signup and its freed seat given to the waitlist: the chart leaves the cancelled one
    out, as the figures above it do, and draws the confirmed apart from everyone still registered."""
    event = busy_event(app, create_event, now)
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)

    header = header_counts(page)
    assert header == {"confirmed": 2, "pending": 0, "waitlisted": 1, "capacity": 2}
    drawn = dict(re.findall(r'<circle class="end-(\w+)"[^>]* data-count="(\d+)"', page))
    assert drawn == {"registered": str(header["confirmed"] + header["pending"] + header["waitlisted"]),
                     "confirmed": str(header["confirmed"])}
    assert "Line: confirmed (2)" in page
    assert "Shaded: still registered, that is confirmed, pending and waitlisted (3)" in page
    assert "Cancelled and expired signups are not counted (1)." in page
    assert re.search(r'<desc id="[\w-]+">3 signups between [^<]+ \(2 of them confirmed; cancelled and expired', page)


def test_event_page_with_only_cancelled_signups_says_so(app, auth, create_event, now):
    event = create_event(title="Quiet one")
    result = signups.sign_up(db.session, event, name="Solo", email="solo@example.org", now=now,
                             secret=app.config["SECRET_KEY"])
    signups.cancel_registration(db.session, result.registration, now=now)
    db.session.commit()
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert '<p class="empty">No one is registered now (1 cancelled or expired).</p>' in page
    assert "chart-signups" not in page


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


def test_jobs_table_dates_are_short_in_the_events_zone(auth, create_event, now):
    event = create_event(starts_at=datetime(2026, 11, 20, 17, 0, tzinfo=UTC), timezone="America/Los_Angeles",
                         reminder_offsets=[3600])
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert ('<td data-label="Due"><time datetime="2026-11-20T16:00:00+00:00" '
            'title="Friday 20 November 2026, 08:00 PST (America/Los_Angeles)">20 Nov 08:00</time></td>') in page
    assert "Times in America/Los_Angeles." in page


def test_short_dates_name_the_year_only_when_it_is_not_this_one(app, now):
    short = app.jinja_env.filters["short_when"]
    with app.test_request_context():
        assert short(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "31 Dec 23:30"
        # Already the next year in Berlin, so the year is shown.
        assert short(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "Europe/Berlin") == "1 Jan 2027 00:30"
        assert short(datetime(2025, 3, 4, 5, 6, tzinfo=UTC), "UTC", True) == "4 Mar 2025 05:06 UTC"


def test_chart_keys_use_the_charts_colours():
    """The caption's keys stand for the line and the area: the stylesheet paints them in the chart's colours."""
    from scheduler import charts

    css = Path(ROOT / "static" / "style.css").read_text()
    assert re.search(rf"\.key-confirmed \{{[^}}]*{charts.ACCENT}", css)
    assert re.search(rf"\.key-registered \{{[^}}]*background: {charts.FILL}[^}}]*{charts.REGISTERED}", css)
