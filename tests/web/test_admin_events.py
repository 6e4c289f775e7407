"""The event editor: create, validate, edit, publish, cancel, speakers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import Event, EventSpeaker, PlannedJob, Speaker


def form_data(**overrides) -> dict:
    data = {
        "title": "Open source AI panel", "slug": "", "summary": "A panel.", "description": "Hello **world**",
        "kind": "panel", "timezone": "America/Los_Angeles", "starts_at": "2031-03-06T09:00",
        "ends_at": "2031-03-06T10:30", "venue": "", "join_url": "https://meet.example.org/abc", "capacity": "50",
        "signup_opens_at": "", "signup_closes_at": "", "tags": "AI, Panels", "reminders": "1d, 1h",
        "double_opt_in": "y", "briefing_enabled": "y", "briefing_offset": "3d", "nudge_enabled": "y",
        "nudge_offset": "15m", "thanks_enabled": "y", "thanks_offset": "1h",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Event))


def test_create_event_stores_utc_and_zone(auth):
    response = auth.post("/admin/events/new", form_data())
    assert response.status_code == 302
    event = db.session.scalar(select(Event))
    assert event.slug == "open-source-ai-panel"
    assert event.timezone == "America/Los_Angeles"
    assert event.starts_at.isoformat() == "2031-03-06T17:00:00+00:00"
    assert event.ends_at.isoformat() == "2031-03-06T18:30:00+00:00"
    assert event.status == "draft"
    assert event.reminder_offsets == [86400, 3600]
    assert [t.slug for t in event.tags] == ["ai", "panels"]


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"ends_at": "2031-03-06T08:00"}, "ends_at", "The end must be after the start."),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone", "Unknown timezone"),
    ({"capacity": "-5"}, "capacity", "Capacity must be between 0 and 1,000,000"),
    ({"title": ""}, "title", "This field is required."),
    ({"reminders": "1d, soon"}, "reminders", "is not an offset like 1d"),
    ({"join_url": "javascript:alert(1)"}, "join_url", "Invalid URL."),
    ({"slug": "Not A Slug!"}, "slug", "Use lower-case letters"),
    ({"starts_at": "tomorrow"}, "starts_at", "Not a valid datetime value."),
])
def test_invalid_new_event_shows_message_and_stores_nothing(auth, overrides, field, message):
    response = auth.post("/admin/events/new", form_data(**overrides))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page
    assert message in page
    assert f'aria-describedby="{field}-help {field}-error"' in page or f'aria-describedby="{field}-error"' in page
    assert event_count() == 0


def test_duplicate_slug_is_refused(auth, create_event):
    existing = create_event(title="Taken")
    response = auth.post("/admin/events/new", form_data(slug=existing.slug))
    assert response.status_code == 422
    assert "That slug is already used by another event." in response.get_data(as_text=True)
    assert event_count() == 1


@pytest.mark.parametrize(("overrides", "message"), [
    ({"ends_at": "2031-03-06T08:00"}, "The end must be after the start."),
    ({"timezone": "Nowhere/City"}, "Unknown timezone"),
    ({"capacity": "-1"}, "Capacity must be between 0 and 1,000,000"),
    ({"signup_closes_at": "2031-03-07T08:00"}, "Signup cannot close after the event ends."),
])
def test_invalid_edit_changes_nothing(auth, create_event, overrides, message):
    event = create_event(title="Keep me", timezone="America/Los_Angeles", capacity=10)
    before = {c.name: getattr(event, c.key) for c in Event.__table__.columns}
    response = auth.post(f"/admin/events/{event.id}/edit", form_data(title="Changed", **overrides))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    after = {c.name: getattr(db.session.get(Event, event.id), c.key) for c in Event.__table__.columns}
    assert after == before


def test_edit_moves_published_event_and_bumps_sequence(auth, create_event, now):
    event = create_event(timezone="America/Los_Angeles")
    assert event.sequence == 0
    jobs_before = {j.kind: j.due_at for j in db.session.scalars(select(PlannedJob))}
    response = auth.post(f"/admin/events/{event.id}/edit", form_data(
        title=event.title, slug=event.slug, starts_at="2031-04-01T10:00", ends_at="2031-04-01T11:00"))
    assert response.status_code == 302
    db.session.expire_all()
    event = db.session.get(Event, event.id)
    assert event.sequence == 1
    assert event.starts_at.isoformat() == "2031-04-01T17:00:00+00:00"
    jobs_after = {(j.kind, j.offset_seconds): j for j in db.session.scalars(select(PlannedJob))}
    assert jobs_after[("reminder", 3600)].due_at == event.starts_at - timedelta(hours=1)
    assert jobs_after[("reminder", 3600)].state == "planned"
    assert jobs_before


def test_edit_of_title_only_keeps_sequence(auth, create_event, now):
    event = create_event(timezone="UTC", starts_at=now.replace(second=0) + timedelta(days=3))
    from scheduler.forms import to_local
    data = form_data(title="New title", slug=event.slug, timezone="UTC",
                     starts_at=to_local(event.starts_at, "UTC").strftime("%Y-%m-%dT%H:%M"),
                     ends_at=to_local(event.ends_at, "UTC").strftime("%Y-%m-%dT%H:%M"),
                     join_url=event.join_url, capacity="", reminders="1d, 1h")
    assert auth.post(f"/admin/events/{event.id}/edit", data).status_code == 302
    db.session.expire_all()
    event = db.session.get(Event, event.id)
    assert event.title == "New title"
    assert event.sequence == 0


def test_publish_plans_jobs_and_cancel_removes_them(auth, create_event):
    event = create_event(publish=False)
    assert db.session.scalar(select(func.count()).select_from(PlannedJob)) == 0
    assert auth.post(f"/admin/events/{event.id}/publish").status_code == 302
    db.session.expire_all()
    states = {(j.kind, j.state) for j in db.session.scalars(select(PlannedJob))}
    assert states == {("reminder", "planned"), ("briefing", "planned"), ("nudge", "planned"), ("thanks", "planned")}
    assert auth.post(f"/admin/events/{event.id}/cancel", {"reason": "Speaker ill"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Event, event.id).status == "cancelled"
    assert {j.state for j in db.session.scalars(select(PlannedJob))} == {"cancelled"}


def test_add_new_and_existing_speaker(auth, create_event):
    event = create_event()
    response = auth.post(f"/admin/events/{event.id}/speakers", {
        "name": "Soumith Chintala", "email": "s@example.org", "affiliation": "Meta", "bio": "PyTorch", "role": "panelist"})
    assert response.status_code == 302
    speaker = db.session.scalar(select(Speaker))
    other = create_event(title="Other")
    assert auth.post(f"/admin/events/{other.id}/speakers", {"speaker_id": str(speaker.id), "role": "host"}).status_code == 302
    links = {(link.event_id, link.role) for link in db.session.scalars(select(EventSpeaker))}
    assert links == {(event.id, "panelist"), (other.id, "host")}


def test_invalid_speaker_changes_nothing(auth, create_event):
    event = create_event()
    response = auth.post(f"/admin/events/{event.id}/speakers", {"name": "", "email": "not-an-email", "role": "boss"})
    assert response.status_code == 303
    assert db.session.scalar(select(func.count()).select_from(Speaker)) == 0


def test_dashboard_shows_counts(auth, create_event):
    create_event(title="Dashboard event", capacity=30)
    page = auth.client.get("/admin/").get_data(as_text=True)
    assert "Dashboard event" in page
    assert "Next jobs due" in page
