"""Public pages: list, event page, 404, sanitised descriptions."""

from __future__ import annotations

from datetime import timedelta

from scheduler.cli import DEMO_SLUG
from scheduler.domain.events import cancel_event
from scheduler.extensions import db


def test_event_page_shows_time_in_event_zone_and_speakers(client, create_event):
    event = create_event(title="Zone test", timezone="America/Los_Angeles",
                         speakers=[("Ada Lovelace", "host"), ("Alan Turing", "panelist")])
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "Zone test" in page
    assert "Ada Lovelace" in page and "Alan Turing" in page
    assert "(America/Los_Angeles)" in page
    assert ("PST" in page) or ("PDT" in page)
    assert 'class="local-time"' in page and 'data-start="' in page


def test_join_url_never_on_public_pages(client, create_event):
    event = create_event(join_url="https://meet.example.org/very-secret")
    for path in ("/", f"/events/{event.slug}"):
        assert "very-secret" not in client.get(path).get_data(as_text=True)


def test_description_is_sanitised(client, create_event):
    event = create_event(description='Hi <script>alert(1)</script><img src=x onerror="alert(2)"> '
                                     '[link](javascript:alert(3)) **bold**')
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "onerror" not in page
    assert "javascript:alert" not in page
    assert "<strong>bold</strong>" in page


def test_hostile_title_is_escaped(client, create_event):
    event = create_event(title='<b onmouseover="x">Hello</b>')
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "&lt;b onmouseover=" in page
    assert '<b onmouseover="x">' not in page


def test_drafts_are_not_public(client, create_event):
    event = create_event(publish=False, title="Secret draft")
    assert client.get(f"/events/{event.slug}").status_code == 404
    assert "Secret draft" not in client.get("/").get_data(as_text=True)


def test_unknown_page_is_a_clean_404(client):
    response = client.get("/events/does-not-exist")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_past_events_on_second_page(client, create_event, now):
    create_event(title="Long ago", starts_at=now - timedelta(days=3))
    create_event(title="Soon", starts_at=now + timedelta(days=3))
    upcoming = client.get("/").get_data(as_text=True)
    past = client.get("/past").get_data(as_text=True)
    assert "Soon" in upcoming and "Long ago" not in upcoming
    assert "Long ago" in past and "Soon" not in past


def test_seats_left_shown(client, create_event):
    event = create_event(capacity=25)
    assert "25 of 25 seats left" in client.get(f"/events/{event.slug}").get_data(as_text=True)


def test_seats_left_agree_with_their_noun(client, create_event):
    event = create_event(capacity=1)
    assert "1 of 1 seat left" in client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "1 seat left" in client.get("/").get_data(as_text=True)


def test_seed_demo_creates_the_live_discussion_once(runner, client):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["seed-demo"])
    assert "Already there" in second.output
    page = client.get(f"/events/{DEMO_SLUG}").get_data(as_text=True)
    assert "PyTorch: A Foundation for Open Source AI/ML" in page
    assert "Soumith Chintala" in page and "Dr. Ibrahim Haddad" in page
    assert "09:00" in page and "(America/Los_Angeles)" in page
    assert page.count("Soumith Chintala") >= 1
    from sqlalchemy import func, select

    from scheduler.extensions import db
    from scheduler.models import Event
    assert db.session.scalar(select(func.count()).select_from(Event)) == 1


def test_create_admin_command(runner):
    result = runner.invoke(args=["create-admin", "--email", "boss@example.org", "--password", "longenough"])
    assert result.exit_code == 0, result.output
    short = runner.invoke(args=["create-admin", "--email", "x@example.org", "--password", "short"])
    assert short.exit_code != 0
    assert "at least 8 characters" in short.output


def test_page_parameter_that_is_not_a_plain_number_shows_the_first_page(client, create_event):
    create_event(title="Listed")
    for path in ("/?page=%C2%B2", "/past?page=%C2%B2", "/?page=-1", "/?page=abc", "/?page=99999999999",
                 "/?page=" + "9" * 5000):
        response = client.get(path)
        assert response.status_code == 200, path


def test_layout_menu_shows_admin_links_only_to_a_signed_in_organiser(app, client, auth, create_event):
    event = create_event()
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert 'href="/admin/"' in page and "Log out" in page
    for visitor in (app.test_client(), client):
        if visitor is client:
            auth.post("/admin/logout")
        page = visitor.get(f"/events/{event.slug}").get_data(as_text=True)
        assert 'href="/admin/"' not in page and "Log out" not in page


def test_layout_links_follow_the_script_root(app, create_event):
    """The menu and static links are built once per script root, not once for the first request's."""
    event = create_event()
    for root in ("", "/townhall", ""):
        page = app.test_client().get(f"/events/{event.slug}", base_url=f"http://localhost{root}/").get_data(
            as_text=True)
        assert f'<a class="brand" href="{root}/">' in page
        assert f'href="{root}/static/style.css"' in page and f'href="{root}/past"' in page


def test_favicon_served_and_linked_from_every_page(client):
    icon = client.get("/favicon.ico")
    assert (icon.status_code, icon.mimetype) == (200, "image/svg+xml")
    assert icon.get_data(as_text=True).startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert '<link rel="icon" href="/favicon.ico" type="image/svg+xml">' in client.get("/").get_data(as_text=True)


def test_cancelled_event_page_offers_no_calendar_nor_join_link(client, create_event, now):
    live, cancelled = create_event(title="Live"), create_event(title="Called off")
    cancel_event(db.session, cancelled, now=now)
    db.session.commit()
    page = client.get(f"/events/{live.slug}").get_data(as_text=True)
    assert "Add to calendar" in page and "the join link is sent to registered attendees" in page
    page = client.get(f"/events/{cancelled.slug}").get_data(as_text=True)
    assert "This event has been cancelled." in page
    assert "Add to calendar" not in page and "join link" not in page and ".ics" not in page


def test_venue_has_an_inline_icon_hidden_from_screen_readers(client, create_event):
    event = create_event(venue="Hall <B> & garden")
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "📍" not in page
    start = page.index('<p class="venue">')
    line = page[start:page.index("</p>", start) + 4]
    assert line.startswith('<p class="venue"><svg class="icon" aria-hidden="true" focusable="false" ')
    assert line.endswith("</svg> Hall &lt;B&gt; &amp; garden</p>")


def test_description_html_is_rendered_when_saved_not_when_shown(client, create_event, now):
    from scheduler.domain.events import update_event
    from scheduler.models import Event

    event = create_event(description="First **draft**")
    assert event.description_html == "<p>First <strong>draft</strong></p>"
    update_event(db.session, event, now=now, description="Now *final*")
    db.session.commit()
    assert event.description_html == "<p>Now <em>final</em></p>"
    # The page shows what was stored: nothing renders the Markdown source on the way out.
    db.session.execute(Event.__table__.update().where(Event.id == event.id)
                       .values(description_html="<p>as stored</p>", version=Event.version + 1))
    db.session.commit()
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "<p>as stored</p>" in page and "final" not in page


def test_tag_page_lists_the_series_upcoming_events_and_offers_its_feed(client, create_event, now):
    first = create_event(title="First of series", tags=["Open Source AI"])
    create_event(title="Not in it", tags=["Cooking"])
    create_event(title="Over already", tags=["Open Source AI"], starts_at=now - timedelta(days=2))
    page = client.get("/tags/open-source-ai").get_data(as_text=True)
    assert "<h1>Upcoming: Open Source AI</h1>" in page
    assert "First of series" in page and "Not in it" not in page and "Over already" not in page
    assert 'href="webcal://townhall.test/calendar/open-source-ai.ics">Subscribe to this series</a>' in page
    event_page = client.get(f"/events/{first.slug}").get_data(as_text=True)
    assert '<span class="tag"><a href="/tags/open-source-ai">Open Source AI</a></span>' in event_page
    assert client.get("/tags/unknown").status_code == 404
