"""Engine set-up for SQLite: WAL, foreign keys, and writers that take the write lock when they begin.

This is SQLAlchemy's documented recipe for pysqlite's transactions ("Serializable isolation /
Savepoints / Transactional DDL"): the driver's own BEGIN handling is switched off and the `begin`
engine event issues it. A transaction that may write starts with BEGIN IMMEDIATE, so two writers
that both read first wait for each other in SQLite's busy handler instead of one failing with
"database is locked"; a request that only reads (GET) starts a plain BEGIN and never waits.
Checkpoints are SQLite's own (`wal_autocheckpoint`), and `journal_size_limit` truncates the WAL
after one.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

# GET requests read; everything else (POSTs, jobs, commands) may write.
_write_intent: ContextVar[bool] = ContextVar("write_intent", default=True)
#: Seconds a writer waits for SQLite's lock before "database is locked".
BUSY_TIMEOUT = 30.0
#: The WAL is truncated back to this size after a checkpoint (SQLite's default leaves it as large as it grew).
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def set_write_intent(value: bool):
    """Mark the current context as reading only (False) or writing (True); returns a token for reset."""
    return _write_intent.set(value)


def reset_write_intent(token) -> None:
    _write_intent.reset(token)


@contextmanager
def _intent(value: bool):
    token = _write_intent.set(value)
    try:
        yield
    finally:
        _write_intent.reset(token)


def read_only():
    """Transactions begun inside this block only read: on SQLite they take no write lock."""
    return _intent(False)


def writing():
    """Transactions begun inside this block write from their start (BEGIN IMMEDIATE on SQLite), also
    within a GET, whose own transactions only read."""
    return _intent(True)


def configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN or BEGIN IMMEDIATE issued by us."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across application crashes in WAL mode
        cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")
