"""GET /healthz: is the database reachable, and is a scheduler alive?"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from .. import clock
from ..database import read_only
from ..extensions import db
from ..models import SchedulerHeartbeat

bp = Blueprint("health", __name__)
#: Modes in which a missing or stale heartbeat means reminders are not going out.
NEEDS_SCHEDULER = ("embedded", "standalone")


@bp.get("/healthz")
def healthz():
    from ..jobs import stale_after

    mode = current_app.config["SCHEDULER_MODE"]
    database, age = "ok", None
    try:
        with read_only():
            db.session.execute(text("SELECT 1"))
            newest = db.session.scalar(select(func.max(SchedulerHeartbeat.beat_at)))
            db.session.rollback()
        if newest is not None:
            age = round(max(0.0, (clock.now() - newest).total_seconds()), 3)
    except (SQLAlchemyError, OSError):
        db.session.rollback()
        database = "error"
    stale = age is None or age > stale_after(current_app.config)
    healthy = database == "ok" and not (mode in NEEDS_SCHEDULER and stale)
    body = {"status": "ok" if healthy else "unavailable", "database": database,
            "scheduler": {"mode": mode, "heartbeat_age_seconds": age, "stale": stale}}
    response = jsonify(body)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response
