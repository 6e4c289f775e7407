"""The site under its Content-Security-Policy in a real browser: the visitor's and the organiser's pages
load with no refused script or style, the local-time script runs, the charts draw, the bots' field stays
off screen."""

from __future__ import annotations

import pytest

from tests.support import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def strict_page(browser, live_server):
    """A page that keeps the CSP (unlike `page`) and collects what the browser refused under it."""
    context = browser.new_context(base_url=live_server.url, timezone_id="Europe/Berlin", locale="en-GB")
    context.set_default_timeout(10_000)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda exc: refused.append(str(exc)))
    yield page, refused
    context.close()


def test_pages_work_under_the_content_security_policy(strict_page, live_server):
    page, refused = strict_page
    slug = live_server.add_event(title="Policy check", timezone="America/New_York")
    page.goto("/")
    page.goto(f"/events/{slug}")
    assert page.locator(".local-time").first.is_visible()  # the script ran and showed the visitor's time
    page.goto(f"/events/{slug}/signup")
    assert page.get_by_label("Your timezone").input_value() == "Europe/Berlin"
    trap = page.locator(".trap").bounding_box()
    assert trap is not None and trap["x"] + trap["width"] <= 0  # the bots' field is off screen
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_role("textbox", name="Email").fill("ada@example.org")
    page.get_by_role("checkbox", name="I agree").check()
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"**/events/{slug}/signup")
    log_in(page)
    page.get_by_role("link", name="Policy check").first.click()
    charts = page.locator("svg[role=img]")
    assert charts.count() >= 2 and charts.first.is_visible()
    assert page.locator("svg.job-timeline, svg[role=img]").first.bounding_box()["height"] > 20
    assert refused == []
