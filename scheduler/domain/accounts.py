"""Organiser accounts: checking a login."""

from __future__ import annotations

import secrets
from functools import cache

from sqlalchemy import func, select
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
