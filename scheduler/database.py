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

from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Engine

# Set inside read_only() and writing(); elsewhere (None) the `reading` test given to configure_sqlite
# decides: GET requests read, everything else (POSTs, jobs, commands) may write.
_write_intent: ContextVar[bool | None] = ContextVar("write_intent", default=None)
#: Seconds a writer waits for SQLite's lock before "database is locked".
BUSY_TIMEOUT = 30.0
#: The WAL is truncated back to this size after a checkpoint (SQLite's default leaves it as large as it grew).
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


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


def configure_sqlite(engine: Engine, *, reading: Callable[[], bool] = lambda: False) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN or BEGIN IMMEDIATE issued by us.

    `reading()` says whether a transaction begun outside read_only() and writing() only reads: asked
    when one begins, so a request that never touches the database pays nothing for it.
    """

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
        intent = _write_intent.get()
        writes = not reading() if intent is None else intent
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")
