"""The series API: a rule in, a series and its occurrences out; publish, skip, this-and-following, whole-series
signup; bad input refused with the field and nothing written."""

from __future__ import annotations

from sqlalchemy import func, select

from scheduler import clock
from scheduler.domain import api_tokens
from scheduler.extensions import db
from scheduler.models import Registration, Series


def bearer(scope: str = "write") -> dict:
    _row, token = api_tokens.create_token(db.session, name=f"{scope} token", scope=scope, now=clock.now())
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


THIRD_WEDNESDAYS = {"title": "Office hours", "timezone": "Europe/Berlin", "freq": "monthly", "byday": ["3WE"],
                    "starts_on": "2026-11-01", "start_time": "17:00", "count": 6, "double_opt_in": False}


def test_create_publish_and_read_a_series(client):
    headers = bearer()
    created = client.post("/api/v1/series", json=THIRD_WEDNESDAYS, headers=headers)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["rrule"], body["first_start"], body["status"]) == (
        "FREQ=MONTHLY;BYDAY=3WE;COUNT=6", "2026-11-18T16:00:00Z", "draft")
    assert created.headers["Location"] == "http://townhall.test/api/v1/series/office-hours"
    assert client.get("/api/v1/series/office-hours").status_code == 404  # a draft is not public
    published = client.post("/api/v1/series/office-hours/publish", headers=headers).get_json()
    assert [o["starts_at"] for o in published["occurrences"]] == [
        "2026-11-18T16:00:00Z", "2026-12-16T16:00:00Z", "2027-01-20T16:00:00Z", "2027-02-17T16:00:00Z",
        "2027-03-17T16:00:00Z", "2027-04-21T15:00:00Z"]
    assert client.get("/api/v1/series").get_json()["series"][0]["slug"] == "office-hours"
    assert "Office hours" in client.get("/series/office-hours").get_data(as_text=True)


def test_skip_following_and_subscribe(client):
    headers = bearer()
    client.post("/api/v1/series", json=THIRD_WEDNESDAYS, headers=headers)
    client.post("/api/v1/series/office-hours/publish", headers=headers)
    assert client.post("/api/v1/series/office-hours/skips", json={"starts_at": "2026-12-16T16:00:00Z"},
                       headers=headers).get_json()["skipped"] == ["2026-12-16T16:00:00Z"]
    assert client.post("/api/v1/series/office-hours/skips", json={"starts_at": "2026-12-17T16:00:00Z"},
                       headers=headers).status_code == 404
    joined = client.post("/api/v1/series/office-hours/subscriptions",
                         json={"name": "Ann", "email": "ann@example.org"}, headers=headers)
    assert (joined.status_code, joined.get_json()) == (201, {"outcome": "active", "state": "active", "places": 5})
    again = client.post("/api/v1/series/office-hours/subscriptions",
                        json={"name": "Ann", "email": "ann@example.org"}, headers=headers)
    assert (again.status_code, again.get_json()["outcome"]) == (200, "repeat")
    # Ann holds a place on 17 March: that date cannot be skipped, only cancelled.
    assert client.post("/api/v1/series/office-hours/skips", json={"starts_at": "2027-03-17T16:00:00Z"},
                       headers=headers).status_code == 409
    march = "office-hours-2027-03-17"
    split = client.post(f"/api/v1/events/{march}/following", json={"start_time": "18:30", "venue": "Room 2"},
                        headers=headers)
    assert split.status_code == 200, split.get_json()
    part = split.get_json()
    assert part["slug"] != "office-hours" and part["rrule"] == "FREQ=MONTHLY;BYDAY=3WE;COUNT=2"
    assert [o["starts_at"] for o in part["occurrences"]][-2:] == ["2027-03-17T17:30:00Z", "2027-04-21T16:30:00Z"]
    assert db.session.scalar(select(func.count()).select_from(Registration).where(
        Registration.subscription_id.is_not(None), Registration.state == "confirmed")) == 5


def test_bad_series_input_changes_nothing(client):
    headers = bearer()
    for body, field in ((dict(THIRD_WEDNESDAYS, byday=["3XX"]), "byday.0"),
                        (dict(THIRD_WEDNESDAYS, start_time="25:00"), "start_time"),
                        (dict(THIRD_WEDNESDAYS, freq="daily"), "freq"),
                        (dict(THIRD_WEDNESDAYS, timezone="Mars/Olympus"), "timezone")):
        response = client.post("/api/v1/series", json=body, headers=headers)
        assert response.status_code == 422 and field in response.get_json()["error"]["fields"], body
    ends_early = dict(THIRD_WEDNESDAYS, count=None, until="2026-11-10")
    assert client.post("/api/v1/series", json=ends_early, headers=headers).status_code == 409
    assert client.post("/api/v1/series", json=THIRD_WEDNESDAYS, headers=bearer("read")).status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Series)) == 0
