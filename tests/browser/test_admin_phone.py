"""The organiser's pages on a 375 px phone: nothing cut off or scrolling sideways inside a box, tables as
labelled cards, charts that fit, and no chart label drawn over another."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from scheduler.extensions import db
from tests.support import add_confirmed, check_page, log_in

pytestmark = pytest.mark.browser
PHONE = {"width": 375, "height": 740}

# Elements of <main> that reach past the viewport's edges, and boxes whose content is wider than they are
# (a table or chart that would have to be scrolled sideways inside its box).
CUT_OFF = """() => {
  const width = document.documentElement.clientWidth, found = [];
  const name = el => el.tagName.toLowerCase() + (el.getAttribute('class') ? '.' + el.getAttribute('class') : '');
  for (const el of document.querySelectorAll('main *')) {
    const hidden = el.closest('thead, .visually-hidden');  // there for screen readers, clipped to 1 px
    if (hidden && getComputedStyle(hidden).position === 'absolute') continue;
    const box = el.getBoundingClientRect();
    if (box.width > 1 && box.height > 1 && (box.left < -0.5 || box.right > width + 0.5))
      found.push(`${name(el)} spans ${Math.round(box.left)}..${Math.round(box.right)} of ${width}`);
  }
  for (const el of document.querySelectorAll('main .table-wrap, main figure, main table'))
    if (el.scrollWidth > el.clientWidth + 1) found.push(`${name(el)} scrolls: ${el.scrollWidth} > ${el.clientWidth}`);
  return found;
}"""

# Pairs of labels in one chart whose rendered boxes overlap.
OVERLAPS = """() => {
  const found = [];
  for (const svg of document.querySelectorAll('figure.chart svg')) {
    const boxes = [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()]);
    boxes.forEach(([a, p], i) => boxes.slice(i + 1).forEach(([b, q]) => {
      if (p.left < q.right - 0.5 && q.left < p.right - 0.5 && p.top < q.bottom - 0.5 && q.top < p.bottom - 0.5)
        found.push([a, b]);
    }));
  }
  return found;
}"""


def cell_label(page, selector: str) -> str:
    """The label a phone shows before this cell (its ::before content)."""
    return page.locator(selector).first.evaluate("td => getComputedStyle(td, '::before').content")


def add_busy_event(live_server, title: str) -> tuple[int, str]:
    """An event starting in 40 minutes (so "now" sits by the event on the timeline), five seats, seven
    signups, one of them cancelled, and a failed message in the outbox."""
    from sqlalchemy import select

    from scheduler.domain import events as event_rules
    from scheduler.domain import signups
    from scheduler.domain.api_tokens import create_token
    from scheduler.models import OutboxMessage, Registration, utcnow

    now = utcnow()
    start = (now + timedelta(minutes=40)).replace(second=0, microsecond=0)
    with live_server.app.app_context():
        event = event_rules.create_event(
            db.session, now=now - timedelta(days=2), title=title, starts_at=start, ends_at=start + timedelta(hours=1),
            timezone="Europe/Berlin", kind="workshop", capacity=5, double_opt_in=False,
            join_url="https://meet.example.org/phone-check")
        event_rules.publish_event(db.session, event, now=now - timedelta(days=2))
        db.session.commit()
        event_id, slug = event.id, event.slug
        db.session.remove()
    live_server.sign_up_earlier(slug, 7, every=timedelta(hours=5))
    with live_server.app.app_context():
        first = db.session.scalar(select(Registration).where(Registration.event_id == event_id)
                                  .order_by(Registration.id))
        signups.cancel_registration(db.session, first, now=now, by_organiser=True)
        message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.event_id == event_id)
                                    .order_by(OutboxMessage.id))
        message.state, message.attempts = "failed", 5
        message.last_error = "gave up after 5 attempts: 550 mailbox early.bird.number.0@example.org unavailable"
        create_token(db.session, name="Phone check bot", scope="read", now=now)
        db.session.commit()
        db.session.remove()
    return event_id, slug


def add_crowd(live_server, event_id: int) -> None:
    """Sixty more confirmed registrants for the event and sixty sent messages: lists in pages."""
    from sqlalchemy import insert

    from scheduler.models import OutboxMessage, utcnow

    now = utcnow()
    with live_server.app.app_context():
        add_confirmed(db.session, event_id, 60, now=now)
        db.session.execute(insert(OutboxMessage), [
            dict(dedupe_key=f"phone-crowd:{n}", kind="confirmed", to_addr=f"crowd{n}@example.org", to_name=f"Crowd {n}",
                 subject=f"Crowded message {n}", body_text="Hello", state="sent", attempts=1, next_attempt_at=now,
                 created_at=now, sent_at=now) for n in range(60)])
        db.session.commit()
        db.session.remove()


def test_admin_pages_fit_a_phone_without_sideways_scrolling(page, live_server):
    event_id, _ = add_busy_event(live_server, "Phone-sized workshop")
    add_crowd(live_server, event_id)
    log_in(page)
    pages = {"admin-phone-event": f"/admin/events/{event_id}",
             "admin-phone-registrations": f"/admin/events/{event_id}/registrations",
             "admin-phone-registrations-searched": f"/admin/events/{event_id}/registrations?state=confirmed&q=person"
                                                   "&page=2",
             "admin-phone-outbox": "/admin/outbox", "admin-phone-outbox-sent": "/admin/outbox?state=sent",
             "admin-phone-dashboard": "/admin/", "admin-phone-api-tokens": "/admin/api-tokens"}
    for name, path in pages.items():
        page.goto(path)
        check_page(page, name)  # screenshots at both widths, axe, and no sideways scrolling of the page
        page.set_viewport_size(PHONE)
        assert page.evaluate(CUT_OFF) == [], path
        assert page.evaluate(OVERLAPS) == [], path
        page.set_viewport_size({"width": 1280, "height": 900})
        assert page.evaluate(OVERLAPS) == [], path
    # The lists in pages keep their search, state and place, and their links work by keyboard.
    page.goto(pages["admin-phone-registrations-searched"])
    expect(page.get_by_label("Search by name or email")).to_have_value("person")
    expect(page.locator("table.registrations tbody tr")).to_have_count(10)
    expect(page.locator(".pager")).to_contain_text("Page 2 of 2")
    page.get_by_role("link", name="← Previous").click()
    expect(page.locator("table.registrations tbody tr")).to_have_count(50)
    page.goto(pages["admin-phone-outbox-sent"])
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("tr.message")).not_to_have_count(0)
    expect(page.get_by_role("link", name="← Newer")).to_be_visible()


def test_admin_event_page_on_a_phone_shows_cards_and_whole_charts(page, live_server):
    event_id, _ = add_busy_event(live_server, "Cards and charts")
    log_in(page)
    page.set_viewport_size(PHONE)
    page.goto(f"/admin/events/{event_id}")

    timeline = page.get_by_role("img", name="Jobs timeline for Cards and charts")
    chart = page.get_by_role("img", name="Signups over time for Cards and charts")
    for picture in (timeline, chart):
        box, frame = picture.bounding_box(), picture.locator("xpath=..").bounding_box()
        assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
    # The chart counts whom the figures above it count: 5 confirmed (one promoted when a seat was freed)
    # and 1 waitlisted; the cancelled one is left out, and the caption says so.
    expect(page.locator("section[aria-labelledby=counts-heading] .stats")).to_contain_text("5 confirmed")
    expect(chart.locator("desc")).to_contain_text("(5 of them confirmed; cancelled and expired signups are not")
    expect(chart.locator("desc")).to_contain_text("6 signups between")
    expect(page.locator("figure.chart figcaption")).to_contain_text("not counted (1)")
    expect(chart.locator("text.tick")).not_to_have_count(0)

    # Each job is a card: the column's name beside each value, the table's header row out of sight.
    expect(page.locator("table.jobs thead")).to_have_css("position", "absolute")
    assert cell_label(page, "table.jobs td[data-label=Due]") == '"Due"'
    due = page.locator("table.jobs td[data-label=Due] time").first
    assert len(due.inner_text()) <= len("31 Dec 2027 23:59")
    assert due.get_attribute("title").endswith("(Europe/Berlin)")

    page.goto(f"/admin/events/{event_id}/registrations")
    expect(page.locator("table.registrations tbody tr")).to_have_count(7)
    assert cell_label(page, "table.registrations td[data-label=Email]") == '"Email"'

    page.goto("/admin/outbox")
    failed = page.locator("tr.state-failed", has_text="Cards and charts")
    expect(failed.locator("td[data-label=Subject]")).to_contain_text("Cards and charts")
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
