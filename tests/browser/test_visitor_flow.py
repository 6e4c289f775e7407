"""A visitor in Chromium: find the demo event, sign up by keyboard, follow the mailed link, get the .ics, cancel
(after a page that asks first)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from scheduler.cli import DEMO_SLUG
from tests.support import check_page, links_in, mail_text

pytestmark = pytest.mark.browser
DEMO_TITLE = "PyTorch: A Foundation for Open Source AI/ML"


def tab_to(page, name: str, limit: int = 40) -> None:
    """Press Tab until the focused element's text is `name`, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == name:
            return
    raise AssertionError(f"{name!r} not reachable with Tab in {limit} presses")


def test_visitor_signs_up_follows_mailed_link_and_cancels(page, live_server):
    email = "ada.visitor@example.org"

    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Upcoming events")
    subscribe = page.get_by_role("link", name="Subscribe to all events")
    assert subscribe.get_attribute("href") == f"webcal://{live_server.url.split('://')[1]}/calendar.ics"
    check_page(page, "event-list")
    page.get_by_role("link", name=DEMO_TITLE).click()

    expect(page).to_have_url(f"{live_server.url}/events/{DEMO_SLUG}")
    expect(page.get_by_role("heading", level=1)).to_have_text(DEMO_TITLE)
    expect(page.locator(".event-header .when")).to_contain_text("(America/Los_Angeles)")
    expect(page.locator(".event-header .local-time")).to_contain_text("(Europe/Berlin)")  # the browser's zone
    check_page(page, "event-page")
    page.get_by_text("Add to calendar").click()
    expect(page.get_by_role("link", name="Google Calendar")).to_be_visible()
    check_page(page, "event-page-calendar-menu")
    page.get_by_text("Add to calendar").click()

    page.reload()  # from the top, as a keyboard user arrives: the skip link comes first
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    tab_to(page, "Sign up")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/events/{DEMO_SLUG}/signup")
    expect(page.get_by_label("Your timezone")).to_have_value("Europe/Berlin")  # filled in by the browser

    page.get_by_role("button", name="Sign up").click()  # empty: messages beside the fields
    expect(page.locator(".form-errors")).to_have_attribute("role", "alert")
    expect(page.locator("#name-error")).to_have_text("Please tell us your name.")
    expect(page.get_by_label("Your name")).to_have_attribute("aria-describedby", "name-error")
    expect(page.get_by_label("Your name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#consent-error")).to_have_text("Please agree so we can register you.")
    check_page(page, "signup-form-errors")

    # Fill it in with the keyboard only: the field order is the tab order, the honeypot is skipped.
    page.get_by_label("Your name").focus()
    page.keyboard.type("Ada Visitor")
    page.keyboard.press("Tab")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Your timezone")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.type("How will the foundation fund maintainers?")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(page.locator("#consent")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign up")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Thanks — check your email")
    check_page(page, "signup-thanks")
    page.get_by_text("Add to calendar").click()
    expect(page.get_by_role("link", name="Google Calendar")).to_be_visible()
    check_page(page, "signup-thanks-calendar-menu")

    messages = live_server.mail_to(email)
    assert len(messages) == 1
    manage_links = links_in(mail_text(messages[0]), f"{live_server.url}/r/")
    assert manage_links, mail_text(messages[0])
    page.goto(manage_links[0])

    expect(page.locator(".registration-status")).to_contain_text("Confirmed")
    # Their own door on Townhall; the raw join URL shows only through an open door.
    expect(page.locator(".join")).to_have_text(re.compile(rf"^{re.escape(live_server.url)}/door/\d+/"))
    assert "zoom.example.org/j/pytorch-foundation" not in page.content()
    check_page(page, "manage-page")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download this event (.ics)").click()
    ics = download_info.value.path().read_bytes().decode("utf-8")
    assert ics.startswith("BEGIN:VCALENDAR\r\n")
    assert f"SUMMARY:{DEMO_TITLE}\r\n" in ics

    # Cancelling asks first, on a page of its own: "Keep my place" changes nothing.
    page.get_by_role("link", name="Cancel my registration").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Cancel your place at {DEMO_TITLE}?")
    check_page(page, "cancel-confirm")
    page.get_by_role("link", name="Keep my place").click()
    expect(page.locator(".registration-status")).to_contain_text("Confirmed")
    assert len(live_server.mail_to(email)) == 1
    page.get_by_role("link", name="Cancel my registration").click()
    page.get_by_role("button", name="Yes, cancel my place").click()
    expect(page.locator(".registration-status")).to_contain_text("Cancelled")
    assert len(live_server.mail_to(email)) == 2  # the confirmation, then the cancellation
