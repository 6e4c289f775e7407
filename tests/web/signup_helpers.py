"""Helpers shared by the signup, manage and admin-registration tests: post the form as a browser would."""

from __future__ import annotations

from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.mail.outbox import fill
from scheduler.models import OutboxMessage, Registration
from scheduler.tokens import manage_token
from tests.conftest import csrf_token


def signup(client, event, **fields):
    """POST the signup form with a CSRF token read from the form page."""
    path = f"/events/{event.slug}/signup"
    data = {"name": "Ada Lovelace", "email": "ada@example.org", "timezone": "Europe/London", "consent": "y",
            "question": "", "website": ""}
    data.update(fields)
    if "csrf_token" not in data:
        data["csrf_token"] = csrf_token(client, path)
    return client.post(path, data=data)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def registration(email: str) -> Registration:
    db.session.expire_all()
    return db.session.scalar(select(Registration).where(Registration.email_key == email.lower()))


def token_for(app, reg: Registration) -> str:
    return manage_token(app.config["SECRET_KEY"], reg)


def outbox(kind: str | None = None) -> list[OutboxMessage]:
    """The queued messages as they will be sent: those composed at delivery are composed now, detached."""
    db.session.expire_all()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind:
        query = query.where(OutboxMessage.kind == kind)
    rows = list(db.session.scalars(query))
    for row in rows:
        db.session.expunge(row)
        fill(row)
    return rows


def nothing_written() -> bool:
    return count(Registration) == 0 and count(OutboxMessage) == 0
