"""An organiser in Chromium: log in, create an event with two speakers, publish, see it public, move it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.support import check_page, log_in

pytestmark = pytest.mark.browser
ZONE = "Europe/Berlin"


def local(moment: datetime) -> str:
    """The value a datetime-local input takes for this moment in the event's zone."""
    return moment.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M")


def reminder_due_times(page) -> list[str]:
    """Due times (UTC ISO) of the reminder rows in the event page's jobs table."""
    rows = page.locator("table.jobs tbody tr", has_text="Reminder")
    return [rows.nth(i).locator("time").get_attribute("datetime") for i in range(rows.count())]


def add_speaker(page, name: str, email: str, role: str) -> None:
    details = page.locator("details.add-speaker")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    form = page.locator("form", has=page.get_by_role("button", name="Add speaker"))
    form.get_by_label("Name").fill(name)
    form.get_by_label("Email", exact=True).fill(email)
    form.get_by_label("Role").select_option(role)
    form.get_by_role("button", name="Add speaker").click()
    expect(page.locator(".flash-success")).to_have_text(f"{name} added as {role}.")


def test_organiser_creates_publishes_and_moves_an_event(page, live_server):
    start = (datetime.now(UTC) + timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    title = "Open source maintainers, live"

    log_in(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    check_page(page, "admin-dashboard")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="New event").click()
    page.get_by_role("button", name="Create draft").click()  # nothing filled in: errors beside the fields
    expect(page.locator("#title-error")).to_have_text("This field is required.")
    expect(page.get_by_label("Title")).to_have_attribute("aria-describedby", "title-error")
    check_page(page, "admin-event-editor-errors")

    page.get_by_label("Title").fill(title)
    page.get_by_label("Kind").select_option("live discussion")
    page.get_by_label("Summary").fill("Two maintainers on keeping projects healthy.")
    page.get_by_label("Description").fill("Bring your **questions**.")
    page.get_by_label("Timezone").fill(ZONE)
    page.get_by_label("Starts").fill(local(start))
    page.get_by_label("Ends").fill(local(start + timedelta(hours=1)))
    page.get_by_label("Join link").fill("https://meet.example.org/maintainers")
    page.get_by_label("Capacity").fill("40")
    page.get_by_label("Reminders").fill("1d, 1h")
    check_page(page, "admin-event-editor")
    page.get_by_role("button", name="Create draft").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(title)
    expect(page.locator("h1 .status")).to_have_text("draft")
    add_speaker(page, "Ada Maintainer", "ada@example.org", "host")
    add_speaker(page, "Grace Reviewer", "grace@example.org", "panelist")
    expect(page.locator(".speaker-admin-list li")).to_have_count(2)

    page.get_by_role("button", name="Publish").click()
    expect(page.locator("h1 .status")).to_have_text("published")
    iso = "%Y-%m-%dT%H:%M:%S+00:00"
    before = [(start - timedelta(days=1)).strftime(iso), (start - timedelta(hours=1)).strftime(iso)]
    assert reminder_due_times(page) == before
    expect(page.locator("svg.chart-timeline circle.job-planned")).to_have_count(5)  # 2 reminders, briefing, nudge, thanks
    check_page(page, "admin-event-detail")

    page.goto("/")
    card = page.locator(".event-card", has_text=title)
    expect(card.locator(".speakers-line")).to_have_text("With Ada Maintainer, Grace Reviewer")
    card.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page.locator(".event-header .when")).to_contain_text("(Europe/Berlin)")
    expect(page.locator(".event-header .local-time")).to_be_hidden()  # the browser is in Berlin too

    page.goto("/admin/")
    page.get_by_role("region", name="Upcoming events").get_by_role("link", name=title).click()
    page.get_by_role("link", name="Edit").click()
    moved = start + timedelta(days=1, hours=2)
    page.get_by_label("Starts").fill(local(moved))
    page.get_by_label("Ends").fill(local(moved + timedelta(hours=1)))
    page.get_by_role("button", name="Save").click()

    expect(page.locator(".flash-success")).to_have_text(
        "Saved. Registrants and speakers will get an updated invitation.")
    assert reminder_due_times(page) == [(moved - timedelta(days=1)).strftime(iso),
                                        (moved - timedelta(hours=1)).strftime(iso)]
    dots = page.locator("svg.chart-timeline circle.job-planned", has_text="Reminder")
    assert [dots.nth(i).get_attribute("data-due") for i in range(dots.count())] == [
        (moved - timedelta(days=1)).strftime(iso), (moved - timedelta(hours=1)).strftime(iso)]
    expect(page.locator(".meta").first).to_contain_text(re.compile(r"\d{2}:\d{2}"))
