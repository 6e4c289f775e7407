"""API tokens: created once and shown once, stored as a sha256 hash, scoped read or write, revocable."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidInput, NotFound
from ..models import TOKEN_SCOPES, ApiToken
from ..text import one_line
from ..tokens import token_hash

PREFIX = "th_"


def create_token(session: Session, *, name: str, scope: str, now: datetime,
                 user_id: int | None = None) -> tuple[ApiToken, str]:
    """A new token row and the bearer token itself (which is not stored)."""
    name = one_line(name)[:120]
    if not name:
        raise InvalidInput("A name is required.", field="name")
    if scope not in TOKEN_SCOPES:
        raise InvalidInput("Choose one of: %(choices)s.", field="scope", params={"choices": ", ".join(TOKEN_SCOPES)})
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, scope=scope, token_hash=token_hash(token), user_id=user_id, created_at=now)
    session.add(row)
    session.flush()
    return row, token


def revoke_token(session: Session, token_id: int, *, now: datetime) -> ApiToken:
    """Revoke a token; revoking twice keeps the first time."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound("No such token.")
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return row


def find_active(session: Session, token: str) -> ApiToken | None:
    """The live token row for a bearer token, or None (unknown or revoked)."""
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    return row if row is not None and row.revoked_at is None else None
