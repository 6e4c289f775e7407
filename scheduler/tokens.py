"""Private links: tokens derived from SECRET_KEY and a per-row nonce; the database keeps only hashes.

Deriving instead of storing lets a reminder sent weeks later carry the same manage link,
while a leaked database alone reveals no working link. A new nonce revokes a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_nonce() -> str:
    return secrets.token_hex(16)


def derive(secret: str, purpose: str, row_id: int, nonce: str) -> str:
    mac = hmac.new(secret.encode(), f"{purpose}:{row_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    return 20 <= len(token or "") <= 64 and all(c.isalnum() or c in "-_" for c in token)


def manage_token(secret: str, registration) -> str:
    return derive(secret, "manage", registration.id, registration.token_nonce)


def feed_token(secret: str, row, kind: str = "feed") -> str | None:
    """The personal (or speaker, kind="speaker-feed") calendar feed token; None when revoked."""
    if not row.feed_nonce:
        return None
    return derive(secret, kind, row.id, row.feed_nonce)
