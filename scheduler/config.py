"""Configuration: defaults, then instance/config.py, then environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# Environment variables read into config, with the type each one is parsed as.
ENV_VARS: dict[str, type] = {
    "DATABASE_URL": str,
    "BASE_URL": str,
    "MAIL_URL": str,
    "MAIL_FROM": str,
    "SCHEDULER_MODE": str,
    "RATELIMIT_STORAGE_URI": str,
    "SIGNUP_RATE_LIMIT": str,
    "LOGIN_RATE_LIMIT": str,
    "LOGIN_ACCOUNT_RATE_LIMIT": str,
    "TRUSTED_PROXIES": int,
    "DOUBLE_OPT_IN_DEFAULT": bool,
    "HOLD_EXPIRY_HOURS": float,
    "SESSION_COOKIE_SECURE": bool,
    "SCHEDULER_POLL_SECONDS": float,
    "SCHEDULER_LOOKAHEAD_SECONDS": float,
    "OUTBOX_BATCH_SIZE": int,
    "OUTBOX_MAX_ATTEMPTS": int,
    "ORGANIZER_NAME": str,
    "UPDATE_BATCH_SECONDS": float,
    "FEED_CHECK_SECONDS": float,
    "PAGE_CHECK_SECONDS": float,
    "CACHE_TYPE": str,
    "CACHE_REDIS_URL": str,
    "CACHE_DEFAULT_TIMEOUT": int,
    "MAIL_TIMEOUT": float,
    "OUTBOX_LEASE_SECONDS": float,
    "OUTBOX_POLL_SECONDS": float,
    "OUTBOX_RETRY_BASE_SECONDS": float,
    "SCHEDULER_JOB_LEASE_SECONDS": float,
    "SCHEDULER_CLAIM_TIMEOUT_SECONDS": float,
    "MAIL_CONNECTIONS": int,
    "MAIL_RELAY": bool,
    "SCHEDULER_FIRE_THREADS": int,
    "SCHEDULER_HEARTBEAT_MARGIN": float,
    "HOLD_SWEEP_SECONDS": float,
}

SCHEDULER_MODES = ("embedded", "off", "standalone")


class Defaults:
    """Values used when neither instance/config.py nor the environment sets them."""

    BASE_URL = ""  # empty: derived from the address `flask run` serves (default_base_url)
    MAIL_URL = ""  # empty: write .eml files to instance/outbox/
    MAIL_FROM = "Townhall <townhall@localhost>"
    ORGANIZER_NAME = "Townhall"
    SCHEDULER_MODE = "embedded"
    RATELIMIT_STORAGE_URI = "memory://"
    SIGNUP_RATE_LIMIT = "20 per minute"
    #: Login attempts per client address, and failed ones per account (whatever address they come from).
    LOGIN_RATE_LIMIT = "10 per minute"
    LOGIN_ACCOUNT_RATE_LIMIT = "5 per minute; 20 per hour"
    #: How many proxies in front of Townhall set X-Forwarded-For/-Proto (0: trust no such header).
    TRUSTED_PROXIES = 0
    DOUBLE_OPT_IN_DEFAULT = True
    HOLD_EXPIRY_HOURS = 24.0
    SCHEDULER_POLL_SECONDS = 2.0
    SCHEDULER_LOOKAHEAD_SECONDS = 60.0
    #: Messages claimed at a time; a delivery run claims the next ones while half of the last are still to go.
    #: Each claim takes the earliest due: small claims let the first recipients of reminders queued meanwhile
    #: go ahead of the rest of a large fan-out.
    OUTBOX_BATCH_SIZE = 50
    OUTBOX_MAX_ATTEMPTS = 8
    #: First retry after a transient SMTP failure; doubles each time, capped at an hour.
    OUTBOX_RETRY_BASE_SECONDS = 30.0
    #: A claimed message not marked within this is taken as lost with its sender and sent again.
    OUTBOX_LEASE_SECONDS = 300.0
    OUTBOX_POLL_SECONDS = 1.0
    MAIL_TIMEOUT = 30.0
    #: A scheduler that has not beaten its heartbeat for this long is taken for dead: another one
    #: takes over the jobs and mail it had claimed. A live one beats every few seconds however busy.
    SCHEDULER_CLAIM_TIMEOUT_SECONDS = 10.0
    #: Claims of a process without a heartbeat (a one-off command): mail after OUTBOX_LEASE_SECONDS,
    #: a fan-out that made no progress after this.
    SCHEDULER_JOB_LEASE_SECONDS = 60.0
    #: SMTP connections each scheduler sends over at once.
    MAIL_CONNECTIONS = 4
    #: A standalone scheduler (`flask scheduler run`) speaks SMTP from a relay process per connection,
    #: so rendering and marking in its threads never hold up the wire (see mail/relay.py).
    MAIL_RELAY = True
    SCHEDULER_FIRE_THREADS = 0  # 0: 2 on SQLite, 4 on PostgreSQL
    SCHEDULER_HEARTBEAT_MARGIN = 5.0
    HOLD_SWEEP_SECONDS = 30.0
    #: An event update waits this long in the outbox; edits meanwhile fold into the same message.
    UPDATE_BATCH_SECONDS = 120.0
    #: A calendar feed's data is re-checked at most this often per process (local writes: at once).
    FEED_CHECK_SECONDS = 1.0
    #: A public page's versions are re-read at most this often per process (local writes: at once),
    #: so a signup shows on every worker's copy of the event page within this time.
    PAGE_CHECK_SECONDS = 1.0
    #: Flask-Caching backend of the public pages: empty means RedisCache when CACHE_REDIS_URL is set,
    #: else SimpleCache (each process its own; the versions in the database keep them all current).
    CACHE_TYPE = ""
    CACHE_REDIS_URL = ""
    #: Seconds a rendered page is kept; an old version is never served, so this only bounds memory.
    CACHE_DEFAULT_TIMEOUT = 3600
    CACHE_KEY_PREFIX = "townhall:"
    #: Pages SimpleCache keeps per process before it drops some.
    CACHE_THRESHOLD = 1000
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    MAX_CONTENT_LENGTH = 1024 * 1024
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    WTF_CSRF_TIME_LIMIT = None  # a signup page left open overnight still submits
    WTF_CSRF_CHECK_DEFAULT = False  # create_app's own hook checks every POST (see _register_csrf_check)


def default_base_url(environ) -> str:
    """BASE_URL when none is set: the address `flask run` serves, from FLASK_RUN_HOST and FLASK_RUN_PORT.

    `flask run` reads these two variables (and `make run` sets them), so links in pages, mail and
    calendars point at the port actually served. A wildcard host is reached here through 127.0.0.1.
    """
    host = environ.get("FLASK_RUN_HOST", "").strip() or "127.0.0.1"
    port = environ.get("FLASK_RUN_PORT", "").strip() or "5000"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def parse_env(value: str, kind: type):
    """Turn an environment string into the configured type."""
    if kind is bool:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return kind(value)


def load_secret_key(instance_path: str) -> str:
    """Read instance/secret_key, creating it with mode 0600 on first run."""
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def normalise_database_url(url: str) -> str:
    """Let operators write postgres:// or postgresql:// and still get psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def rate_limit_warning(config, workers: int) -> str | None:
    """What to tell the operator when rate limits counted in memory would be split between processes."""
    if workers > 1 and config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        return (f"Rate limits are kept in each worker's memory, so with {workers} workers a client gets up to "
                f"{workers} times each limit. Set RATELIMIT_STORAGE_URI=redis://HOST:6379 to share them.")
    return None
