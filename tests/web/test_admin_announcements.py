"""The organiser writes an announcement, previews it, then sends it; bad input is shown beside its field."""

from __future__ import annotations

from scheduler.extensions import db
from scheduler.models import Announcement, OutboxMessage
from tests.support import count, outbox, signup

PATH = "/admin/events/{}/announcements"


def test_preview_then_send_queues_one_message_per_recipient(auth, create_event):
    event = create_event()
    for name in ("ada", "bob"):
        signup(auth.client, event, email=f"{name}@example.org", name=name.capitalize())
    path = PATH.format(event.id)
    assert auth.client.get(path).status_code == 200
    fields = {"audience": "confirmed", "subject": "Slides <b>ready</b>", "body": "See [the slides](https://x.test)\n\n"
              "<img src=x onerror=alert(1)>"}
    preview = auth.post(path, {**fields, "action": "preview"})
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Send to 2 people" in page and 'href="https://x.test"' in page
    assert "<img" not in page and "Slides &lt;b&gt;ready&lt;/b&gt;" in page
    assert count(Announcement) == 0  # a preview sends nothing
    sent = auth.post(path, {**fields, "action": "send"})
    assert sent.status_code == 303
    assert count(Announcement) == 1
    assert sorted(m.to_addr for m in outbox("announcement")) == ["ada@example.org", "bob@example.org"]
    listing = auth.client.get(path).get_data(as_text=True)
    assert "Slides &lt;b&gt;ready&lt;/b&gt;" in listing and ">Confirmed</td>" in listing
    german = auth.client.get(path, headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert ">Bestätigt</td>" in german  # the audience named in the organiser's language, not its stored code
    again = auth.post(path, {**fields, "action": "send"})  # a double click
    assert again.status_code == 409 and "already sent" in again.get_data(as_text=True)
    assert count(OutboxMessage, OutboxMessage.kind == "announcement") == 2


def test_bad_input_gets_a_message_beside_the_field_and_sends_nothing(auth, create_event):
    event = create_event()
    signup(auth.client, event, email="ada@example.org")
    response = auth.post(PATH.format(event.id), {"audience": "confirmed", "subject": "", "body": "x",
                                                 "action": "send"})
    assert response.status_code == 422 and "Write a subject." in response.get_data(as_text=True)
    nobody = auth.post(PATH.format(event.id), {"audience": "waitlisted", "subject": "Hi", "body": "x",
                                               "action": "send"})
    assert nobody.status_code == 409 and "Nobody to send to" in nobody.get_data(as_text=True)
    assert count(Announcement) == 0 and count(OutboxMessage, OutboxMessage.kind == "announcement") == 0
    db.session.commit()


def test_announcements_page_needs_a_login(client, create_event):
    event = create_event()
    assert client.get(PATH.format(event.id)).status_code in (302, 401)
