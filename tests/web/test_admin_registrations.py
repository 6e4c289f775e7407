"""Organiser views of people and mail: registrant list, CSV export, promote and remove, the outbox."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import OutboxMessage
from tests.support import outbox, registration, signup


def _people(client, event, *emails):
    for email in emails:
        signup(client, event, email=email, name=email.split("@")[0].capitalize())


def test_registrations_list_filters_by_state(auth, create_event):
    event = create_event(capacity=1)
    _people(auth.client, event, "a@example.org", "b@example.org", "c@example.org")
    page = auth.client.get(f"/admin/events/{event.id}/registrations").get_data(as_text=True)
    assert page.count('class="registration state-') == 3
    waiting = auth.client.get(f"/admin/events/{event.id}/registrations?state=waitlisted").get_data(as_text=True)
    assert waiting.count('class="registration state-waitlisted"') == 2
    assert "a@example.org" not in waiting and "b@example.org" in waiting and "c@example.org" in waiting
    assert "<strong>1 / 1</strong> seats taken" in page


def test_registrations_csv_neutralises_formulas(auth, create_event):
    event = create_event(capacity=1)
    signup(auth.client, event, name='=HYPERLINK("http://evil.example","x")', email="a@example.org",
           question="+1 @SUM(A1) -2")
    signup(auth.client, event, name="<b>Bob</b>, \"quoted\"", email="b@example.org")
    response = auth.client.get(f"/admin/events/{event.id}/registrations.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{event.slug}-registrations.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["name", "email", "state", "waitlist_position", "question", "timezone", "reminders",
                       "registered_at", "confirmed_at", "cancelled_at"]
    assert rows[1][:7] == ["'=HYPERLINK(\"http://evil.example\",\"x\")", "a@example.org", "confirmed", "",
                           "'+1 @SUM(A1) -2", "Europe/London", "on"]
    assert rows[2][:4] == ["<b>Bob</b>, \"quoted\"", "b@example.org", "waitlisted", "1"]


def test_registrations_page_escapes_hostile_names(auth, create_event):
    event = create_event()
    signup(auth.client, event, name="<script>alert(1)</script>")
    page = auth.client.get(f"/admin/events/{event.id}/registrations").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_promote_by_hand_needs_a_free_seat(auth, create_event):
    event = create_event(capacity=1)
    _people(auth.client, event, "a@example.org", "b@example.org", "c@example.org")
    c = registration("c@example.org")
    response = auth.post(f"/admin/registrations/{c.id}/promote")
    assert response.status_code == 303
    page = auth.client.get(response.headers["Location"]).get_data(as_text=True)
    assert "No seat is free: raise the capacity first, then promote." in page
    assert registration("c@example.org").state == "waitlisted"
    # The organiser raises capacity outside the editor's automatic fill (e.g. a bigger room, by hand).
    event.capacity = 2
    db.session.commit()
    auth.post(f"/admin/registrations/{c.id}/promote")
    assert registration("c@example.org").state == "confirmed"
    assert registration("b@example.org").state == "waitlisted"  # promoted ahead of the line, by choice
    assert [(m.kind, m.to_addr) for m in outbox()][-1] == ("promoted", "c@example.org")


def test_raising_capacity_in_editor_promotes_head(auth, create_event, now):
    from scheduler.domain.events import update_event

    event = create_event(capacity=1)
    _people(auth.client, event, "a@example.org", "b@example.org", "c@example.org")
    update_event(db.session, event, now=now, capacity=2)
    db.session.commit()
    assert [registration(e).state for e in ("a@example.org", "b@example.org", "c@example.org")] == [
        "confirmed", "confirmed", "waitlisted"]
    assert outbox("promoted")[0].to_addr == "b@example.org"


def test_remove_by_hand_tells_them_and_promotes(auth, create_event):
    event = create_event(capacity=1)
    _people(auth.client, event, "a@example.org", "b@example.org")
    a = registration("a@example.org")
    assert auth.post(f"/admin/registrations/{a.id}/remove").status_code == 303
    assert (registration("a@example.org").state, registration("b@example.org").state) == ("cancelled",
                                                                                          "confirmed")
    cancelled = outbox("cancelled")[0]
    assert "The organiser has removed your registration for this event." in cancelled.body_text


def test_outbox_page_shows_state_attempts_and_error(auth, create_event):
    event = create_event()
    signup(auth.client, event)
    row = db.session.scalars(select(OutboxMessage)).one()
    row.state, row.attempts, row.last_error = "failed", 3, "550 <ada@example.org> <b>rejected</b>"
    db.session.commit()
    page = auth.client.get("/admin/outbox").get_data(as_text=True)
    assert f'id="message-{row.id}"' in page
    assert '<td data-label="State">failed</td>' in page and '<td data-label="Attempts">3</td>' in page
    assert "550 &lt;ada@example.org&gt; &lt;b&gt;rejected&lt;/b&gt;" in page
    assert auth.post(f"/admin/outbox/{row.id}/retry").status_code == 303
    db.session.expire_all()
    assert db.session.get(OutboxMessage, row.id).state == "queued"
    assert auth.client.get("/admin/outbox?state=failed").get_data(as_text=True).count('class="message ') == 0
