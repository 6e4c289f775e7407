"""Organiser accounts: checking a login, finding the organiser behind a session, ending sessions."""

from __future__ import annotations

import secrets
from functools import cache

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..models import User


@cache
def _dummy_hash() -> str:
    """A hash of no one's password, made with the same method as every organiser's."""
    return generate_password_hash(secrets.token_urlsafe(16))


def find_organiser(session: Session, email: str) -> User | None:
    """The organiser with this address (case-insensitive), active or not."""
    return session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active organiser with this address and password, or None.

    Every attempt checks one password hash, a dummy one for an unknown address: the time a login
    takes must not tell which addresses are organisers'.
    """
    user = find_organiser(session, email)
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    return user if user.check_password(password) and user.active else None


def user_for_session(session: Session, session_id: str) -> User | None:
    """The organiser a login session names ("<id>:<session version>"), unless that session was ended since."""
    user_id, _, version = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit() and version.isascii() and version.isdigit()):
        return None  # also a session from before session versions: it logs in again
    user = session.get(User, int(user_id))
    return user if user is not None and user.session_version == int(version) else None


def end_sessions(session: Session, user_id: int) -> None:
    """End every session of this organiser signed in so far (on every device)."""
    session.execute(update(User).where(User.id == user_id).values(session_version=User.session_version + 1))
    session.flush()
