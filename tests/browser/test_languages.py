"""A German visitor in Chromium (de-DE): German pages, a German confirmation with German dates; French chosen on
the manage page, and the next reminder is French. The translated public pages pass axe at phone and desktop width."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from scheduler import dispatch
from scheduler.extensions import db
from scheduler.models import Event, PlannedJob
from tests.support import check_page, links_in, mail_text

pytestmark = pytest.mark.browser
GERMAN_DAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")


@pytest.fixture
def german_page(open_page):
    """A Chromium whose language is German: it sends Accept-Language: de-DE."""
    return open_page(locale="de-DE")


def fire_reminder(live_server, slug: str) -> list:
    """Fire the event's one-day reminder as the scheduler would at its due time, deliver it then; the sink's mail."""
    from scheduler.mail.outbox import deliver
    from scheduler.mail.transports import transport_from_config

    app = live_server.app
    with app.app_context():
        event = db.session.scalar(select(Event).where(Event.slug == slug))
        job = db.session.scalar(select(PlannedJob).where(PlannedJob.event_id == event.id,
                                                         PlannedJob.kind == "reminder",
                                                         PlannedJob.offset_seconds == 86400))
        fired_at = job.due_at + timedelta(seconds=1)
        assert dispatch.fire(db.session, job.id, worker="browser-test", clock=lambda: fired_at).outcome == "done"
        deliver(db.session, lambda: transport_from_config(app.config), app, worker="browser-test",
                clock=lambda: fired_at + timedelta(seconds=1))
        db.session.remove()
    return live_server.deliver_mail()


def test_a_german_visitor_signs_up_in_german_and_switches_to_french(german_page, live_server):
    page = german_page
    email = "grete.sprache@example.org"
    slug = live_server.add_event(title="Offene Sprechstunde: PyTorch", reminder_offsets=[86400])

    page.goto(f"/events/{slug}")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", name="Teilnehmen")).to_be_visible()
    expect(page.locator(".event-header .when")).to_contain_text("(Europe/Berlin)")
    assert any(day in page.locator(".event-header .when").inner_text() for day in GERMAN_DAYS)
    page.get_by_role("link", name="Anmelden", exact=True).click()

    expect(page).to_have_url(f"{live_server.url}/events/{slug}/signup")
    page.get_by_role("button", name="Anmelden").click()  # empty: German messages beside the fields
    expect(page.locator("#name-error")).to_have_text("Bitte nennen Sie uns Ihren Namen.")
    page.get_by_label("Ihr Name").fill("Grete Sprache")
    page.get_by_label("E-Mail", exact=True).fill(email)
    page.get_by_label("Ich bin einverstanden").check()
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Danke — prüfen Sie Ihre E-Mails")

    confirmation = live_server.mail_to(email)[-1]
    assert str(confirmation["Subject"]) == "Sie sind angemeldet: Offene Sprechstunde: PyTorch"
    text = mail_text(confirmation)
    assert text.startswith("Hallo Grete Sprache,")
    assert re.search(rf"({'|'.join(GERMAN_DAYS)}), \d{{1,2}}\. \w+ 20\d\d, \d\d:\d\d–\d\d:\d\d ME(S)?Z", text), text
    manage = links_in(text, f"{live_server.url}/r/")[0]

    page.goto(manage)
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.get_by_label("Sprache Ihrer E-Mails und dieser Seiten").select_option("fr")
    page.get_by_role("button", name="Sprache speichern").click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.locator(".flashes")).to_contain_text("Vos e-mails sont désormais en Français.")
    expect(page.get_by_label("Langue de vos e-mails et de ces pages")).to_have_value("fr")

    mails = [m for m in fire_reminder(live_server, slug) if email in str(m["To"])]
    reminder = [m for m in mails if str(m["Subject"]).startswith("Rappel")]
    assert reminder, [str(m["Subject"]) for m in mails]
    reminder = reminder[-1]
    assert str(reminder["Subject"]) == "Rappel : Offene Sprechstunde: PyTorch commence dans 1 jour"
    text = mail_text(reminder)
    assert text.startswith("Bonjour Grete Sprache,")
    assert re.search(r"(lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche) \d{1,2} \w+ 20\d\d, \d\d:\d\d", text), text


@pytest.mark.parametrize("code", ["de", "fr", "es", "zh_Hans"])
def test_translated_public_pages_pass_axe(page, live_server, code):
    """The language menu on each page; every translated public page at 375 and 1280 px, no serious violation."""
    from scheduler.cli import DEMO_SLUG

    page.goto("/")
    page.get_by_role("navigation", name="Language").locator(f'a[hreflang="{code.replace("_", "-")}"]').click()
    expect(page.locator("html")).to_have_attribute("lang", code.replace("_", "-"))
    check_page(page, f"{code}-event-list")
    page.goto(f"/events/{DEMO_SLUG}")
    expect(page.locator("html")).to_have_attribute("lang", code.replace("_", "-"))
    check_page(page, f"{code}-event-page")
    page.goto(f"/events/{DEMO_SLUG}/signup")
    check_page(page, f"{code}-signup-form")
    page.goto("/past")
    check_page(page, f"{code}-past")
    page.goto("/no-such-page")
    check_page(page, f"{code}-not-found")
