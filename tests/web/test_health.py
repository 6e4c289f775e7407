"""GET /healthz: database reachability and scheduler heartbeat age, 503 when a needed scheduler is stale."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine

from scheduler.extensions import db
from scheduler.models import SchedulerHeartbeat


def beat(now: datetime, seconds_ago: float) -> None:
    """A heartbeat row written `seconds_ago` before `now` (the app's clock)."""
    db.session.add(SchedulerHeartbeat(id=f"host:1:{seconds_ago}", mode="standalone", started_at=now,
                                      beat_at=now - timedelta(seconds=seconds_ago)))
    db.session.commit()


def test_healthz_with_fresh_heartbeat_is_ok(app, client, now):
    app.config["SCHEDULER_MODE"] = "standalone"
    beat(now, 1.0)
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["database"], body["scheduler"]["mode"]) == ("ok", "ok", "standalone")
    assert 1.0 <= body["scheduler"]["heartbeat_age_seconds"] < 5.0
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("mode", ["embedded", "standalone"])
def test_healthz_with_stale_or_missing_heartbeat_is_503_when_a_scheduler_is_needed(app, client, now, mode):
    app.config["SCHEDULER_MODE"] = mode
    assert client.get("/healthz").status_code == 503  # none at all
    beat(now, 60.0)  # 3 x 2 s poll + 5 s margin = 11 s
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["scheduler"]["stale"] is True


def test_healthz_with_scheduler_off_ignores_heartbeats(app, client):
    app.config["SCHEDULER_MODE"] = "off"
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["scheduler"] == {"mode": "off", "heartbeat_age_seconds": None, "stale": True}


def test_healthz_with_database_unreachable_is_503(app, client):
    app.config["SCHEDULER_MODE"] = "off"
    good = db.engine
    db._app_engines[app][None] = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        response = client.get("/healthz")
    finally:
        db._app_engines[app][None] = good
    assert response.status_code == 503
    assert response.get_json()["database"] == "error"
