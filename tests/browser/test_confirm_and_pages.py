"""Double opt-in through the mailed link, and the remaining pages checked on a phone and with axe."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.support import check_page, links_in, log_in, mail_text

pytestmark = pytest.mark.browser


def test_double_opt_in_confirms_through_the_mailed_link(page, live_server):
    slug = live_server.add_event(title="Maintainer office hours", double_opt_in=True, capacity=30,
                                 join_url="https://meet.example.org/office-hours")
    email = "grace.confirm@example.org"

    page.goto(f"/events/{slug}/signup")
    page.get_by_label("Your name").fill("Grace Confirm")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("I agree").check()
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Thanks — check your email")

    messages = live_server.mail_to(email)
    assert len(messages) == 1
    confirm_links = [u for u in links_in(mail_text(messages[0]), f"{live_server.url}/r/") if u.endswith("/confirm")]
    assert len(confirm_links) == 1, mail_text(messages[0])
    page.goto(confirm_links[0])  # a GET only shows a button: mail scanners that follow links confirm nothing
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your place")
    check_page(page, "confirm-page")

    page.get_by_role("button", name="Confirm my place").click()
    expect(page.locator(".registration-status")).to_contain_text("Confirmed")
    # Their own door on Townhall; the raw join URL shows only through an open door.
    expect(page.locator(".join")).to_have_text(re.compile(rf"^{re.escape(live_server.url)}/door/\d+/"))
    assert "meet.example.org/office-hours" not in page.content()
    assert len(live_server.mail_to(email)) == 2  # "please confirm", then "you're confirmed"


def test_other_pages_fit_a_phone_and_pass_axe(page, live_server):
    page.goto("/past")
    expect(page.get_by_role("heading", level=1)).to_have_text("Past events")
    check_page(page, "past-events")
    page.goto("/events/no-such-event")
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    check_page(page, "not-found")
    closed = live_server.add_event(title="Signup not open yet", signup_opens_at=datetime.now(UTC) + timedelta(days=3))
    page.goto(f"/events/{closed}/signup")
    expect(page.get_by_role("status")).to_have_text("Signup has not opened yet.")
    check_page(page, "signup-closed")
    page.goto("/admin/login")
    check_page(page, "admin-login")

    slug = live_server.add_event(title="Popular workshop", kind="workshop", capacity=5)
    live_server.sign_up_earlier(slug, 7, every=timedelta(hours=5))  # 5 seats taken, 2 on the waitlist

    log_in(page)
    page.get_by_role("region", name="Upcoming events").get_by_role("link", name="Popular workshop").click()
    chart = page.get_by_role("img", name="Signups over time for Popular workshop")
    expect(chart.locator("desc")).to_contain_text("7 signups between")
    expect(page.locator("section[aria-labelledby=counts-heading] .stats")).to_contain_text("5 confirmed")
    check_page(page, "admin-event-with-signups")
    page.get_by_role("link", name="Registrants, waitlist and CSV export").click()
    expect(page.locator("table.registrations tbody tr")).to_have_count(7)
    check_page(page, "admin-registrations")
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Outbox").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Outbox")
    check_page(page, "admin-outbox")
