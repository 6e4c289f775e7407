"""Speakers' private calendar feeds: issued on first use, revocable like a registrant's."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Speaker
from ..tokens import derive, looks_like_token, new_nonce, token_hash

PURPOSE = "speaker-feed"


def feed_token(session: Session, speaker: Speaker, *, secret: str) -> str:
    """The speaker's feed token, issuing one if they have none yet (the caller commits)."""
    if not speaker.feed_nonce:
        return revoke_feed(session, speaker, secret=secret)
    return derive(secret, PURPOSE, speaker.id, speaker.feed_nonce)


def revoke_feed(session: Session, speaker: Speaker, *, secret: str) -> str:
    """A new feed token; the old feed URL stops working. Returns the new token."""
    speaker.feed_nonce = new_nonce()
    token = derive(secret, PURPOSE, speaker.id, speaker.feed_nonce)
    speaker.feed_token_hash = token_hash(token)
    session.flush()
    return token


def find_by_token(session: Session, token: str) -> Speaker | None:
    if not looks_like_token(token):
        return None
    return session.scalar(select(Speaker).where(Speaker.feed_token_hash == token_hash(token)))
