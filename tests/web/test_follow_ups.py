"""The organiser's after-the-event page, CSV, speaker feed revoke, the feedback form and the API."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from scheduler.domain import board, signups
from scheduler.domain import events as event_rules
from scheduler.extensions import db
from scheduler.models import Feedback, Speaker
from tests.support import count, csrf_token, token_for


def test_admin_page_shows_figures_and_questions_and_exports_them_safely(app, auth, create_event, now):
    event = create_event(starts_at=now - timedelta(hours=2), speakers=[("Hal Host", "host")])
    ada = signups.sign_up(db.session, event, name="Ada", email="ada@example.org", now=now - timedelta(days=1),
                          secret=app.config["SECRET_KEY"]).registration
    ada.door_first_at = event.starts_at
    db.session.add(Feedback(event_id=event.id, registration_id=ada.id, rating=4, comment="<i>nice</i>",
                            created_at=now))
    from scheduler.models import Question
    db.session.add(Question(event_id=event.id, registration_id=ada.id, body="=HYPERLINK(\"x\")", display_name="Ada",
                            state="answered", votes=3, created_at=now, updated_at=now))
    db.session.commit()
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert "100%</strong> attendance" in page and "4.0</strong> feedback average" in page
    assert "&lt;i&gt;nice&lt;/i&gt;" in page and "=HYPERLINK" in page
    assert "No calendar feed yet" in page
    response = auth.client.get(f"/admin/events/{event.id}/questions.csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:4] == ["question", "name", "votes", "state"]
    assert rows[1][:4] == ["'=HYPERLINK(\"x\")", "Ada", "3", "answered"]
    saved = auth.post(f"/admin/events/{event.id}/recording", {"recording_url": "https://v.example.org/1",
                                                              "recording_summary": ""})
    assert saved.status_code == 303
    bad = auth.post(f"/admin/events/{event.id}/recording", {"recording_url": "javascript:x", "recording_summary": ""})
    assert bad.status_code == 303
    db.session.expire_all()
    assert event.recording_url == "https://v.example.org/1"
    speaker_id = event.speakers[0].speaker_id
    auth.post(f"/admin/events/{event.id}/speakers/{speaker_id}/feed")
    db.session.expire_all()
    first = db.session.get(Speaker, speaker_id).feed_token_hash
    assert first and "Calendar feed:" in auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    auth.post(f"/admin/events/{event.id}/speakers/{speaker_id}/feed")
    db.session.expire_all()
    assert db.session.get(Speaker, speaker_id).feed_token_hash not in (None, first)
    assert board  # the board's rules made the question above possible


def test_feedback_form_takes_one_answer(app, client, create_event, now):
    event = create_event(starts_at=now - timedelta(hours=2))
    ada = signups.sign_up(db.session, event, name="Ada", email="ada@example.org", now=now - timedelta(days=1),
                          secret=app.config["SECRET_KEY"]).registration
    db.session.commit()
    path = f"/r/{token_for(app, ada)}/feedback"
    assert "How was it?" in client.get(path).get_data(as_text=True)
    csrf = csrf_token(client, path)
    assert client.post(path, data={"rating": "9", "csrf_token": csrf}).status_code == 422
    assert client.post(path, data={"rating": "4", "comment": "Good", "csrf_token": csrf}).status_code == 200
    second = client.post(path, data={"rating": "1", "csrf_token": csrf})
    assert second.status_code == 409 and "already given" in second.get_data(as_text=True)
    assert count(Feedback) == 1
    assert client.get("/r/not-a-real-token-at-all-xxxxxxxx/feedback").status_code == 404


def test_api_announcement_and_recording(app, client, create_event, now):
    from scheduler.domain import api_tokens
    event = create_event(starts_at=now - timedelta(hours=2))
    signups.sign_up(db.session, event, name="Ada", email="ada@example.org", now=now - timedelta(days=1),
                    secret=app.config["SECRET_KEY"])
    token = api_tokens.create_token(db.session, name="ci", scope="write", now=now)[1]
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    made = client.post(f"/api/v1/events/{event.slug}/announcements", headers=headers,
                       json={"subject": "Hi", "body": "Hello **all**", "audience": "all"})
    assert made.status_code == 201 and made.json["recipients"] == 1
    assert client.post(f"/api/v1/events/{event.slug}/announcements", headers=headers,
                       json={"subject": "Hi", "body": "x", "audience": "nobody"}).status_code == 422
    listed = client.get(f"/api/v1/events/{event.slug}/announcements", headers=headers)
    assert [a["subject"] for a in listed.json["announcements"]] == ["Hi"]
    recorded = client.put(f"/api/v1/events/{event.slug}/recording", headers=headers,
                          json={"recording_url": "https://v.example.org/2"})
    assert recorded.status_code == 200 and recorded.json["follow_up_state"] == "planned"
    assert recorded.json["missed"] == 1 and recorded.json["attended"] == 0
    assert event_rules  # events are made through the same rules as the admin's
