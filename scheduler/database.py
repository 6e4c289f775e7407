"""Engine set-up: SQLite pragmas and write transactions that cannot deadlock."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from sqlalchemy import bindparam, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ClauseElement, TextClause

# GET requests read; everything else (POSTs, jobs, commands) may write. On SQLite a
# writing transaction must start with BEGIN IMMEDIATE, or two of them that both read
# first fail with "database is locked" instead of waiting for each other.
_write_intent: ContextVar[bool] = ContextVar("write_intent", default=True)
#: Seconds a writer waits for SQLite's lock before "database is locked".
BUSY_TIMEOUT = 30.0


def set_write_intent(value: bool):
    """Mark the current context as reading only (False) or writing (True)."""
    return _write_intent.set(value)


def reset_write_intent(token) -> None:
    _write_intent.reset(token)


@contextmanager
def read_only():
    token = _write_intent.set(False)
    try:
        yield
    finally:
        _write_intent.reset(token)


#: How often a writer waiting for its turn tries the file lock again.
_POLL_SECONDS = 0.0002
#: Guards a WriterQueue's first use in a process; a new one in a forked child (the parent's might be held).
_SETUP = threading.Lock()


def _new_setup_lock() -> None:
    global _SETUP
    _SETUP = threading.Lock()


os.register_at_fork(after_in_child=_new_setup_lock)


class WriterQueue:
    """Writers to one SQLite file wait their turn on a file lock instead of in SQLite's busy handler.

    SQLite makes a writer that finds the database locked sleep and retry (1, 2, 5, 10 ... 100 ms), so
    under load most of a worker's time went to sleeping while the lock was already free. Here the
    next writer tries every 0.2 ms and starts right after the last one. Within a process, threads take
    turns on a threading lock first (one flock per process). A writer that does not get its turn
    within `timeout` goes on without it and leaves the rest to SQLite (which then says "database
    is locked"). The lock only orders writers: SQLite's own locking still guarantees correctness,
    and a process that dies releases its flock.
    """

    def __init__(self, path: str, timeout: float):
        self.path = path
        self.timeout = timeout
        self._pid = None  # set last, once this process's file and lock are ready
        self._fd = -1
        self._threads = threading.Lock()
        self._holder = None  # id() of the DBAPI connection whose transaction holds the turn

    def _ready(self) -> None:
        """Open this process's own lock file on first use (a forked worker must not share its parent's)."""
        if self._pid == os.getpid():
            return
        with _SETUP:
            if self._pid == os.getpid():
                return
            if self._fd >= 0:
                os.close(self._fd)  # the parent's: closing our copy leaves its lock alone
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._threads, self._holder = threading.Lock(), None
            self._pid = os.getpid()

    def acquire(self, dbapi_connection) -> None:
        self._ready()
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=self.timeout):
            return
        try:
            if not self._flock(deadline):
                self._threads.release()
                return
        except BaseException:
            self._threads.release()
            raise
        self._holder = id(dbapi_connection)

    def _flock(self, deadline: float) -> bool:
        """Take the file lock before the deadline: blocking in the kernel, in slices, so it stays bounded."""
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
            # flock() cannot time out, so the wait is a poll; turns last a millisecond or so,
            # so a fine period costs little and the next writer starts soon after the last.
            time.sleep(_POLL_SECONDS)

    def __del__(self):
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)

    def release(self, dbapi_connection) -> None:
        if self._holder is not None and self._holder == id(dbapi_connection) and self._pid == os.getpid():
            self._holder = None
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._threads.release()


def configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, explicit BEGIN [IMMEDIATE], and a queue for writers."""
    path = engine.url.database
    writers = WriterQueue(path + "-writers.lock", BUSY_TIMEOUT) if path and path != ":memory:" else None

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        if not _write_intent.get():
            conn.exec_driver_sql("BEGIN")
            return
        raw = conn.connection.dbapi_connection
        if writers:
            writers.acquire(raw)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if writers:
                writers.release(raw)
            raise

    if writers:
        # The turn ends when the transaction does: COMMIT, ROLLBACK (also the pool's reset on
        # return), or the connection closing or being invalidated.
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(connection):
            try:
                commit(connection)
            finally:
                writers.release(getattr(connection, "dbapi_connection", connection))

        def do_rollback(connection):
            try:
                rollback(connection)
            finally:
                writers.release(getattr(connection, "dbapi_connection", connection))

        dialect.do_commit, dialect.do_rollback = do_commit, do_rollback
        for name in ("checkin", "close", "close_detached", "invalidate", "soft_invalidate"):
            event.listen(engine, name, _releaser(writers, name))


def _releaser(writers: WriterQueue, name: str):
    if name in ("checkin", "close"):
        return lambda dbapi_connection, *_: dbapi_connection is not None and writers.release(dbapi_connection)
    if name == "close_detached":
        return lambda dbapi_connection: writers.release(dbapi_connection)
    return lambda dbapi_connection, _record, _exc: writers.release(dbapi_connection)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


_NAMED = {"sqlite": sqlite.dialect(paramstyle="named"), "postgresql": postgresql.dialect(paramstyle="named")}


@cache
def compiled_once(statement: ClauseElement, dialect: str, keys: tuple[str, ...] = ()) -> TextClause:
    """`statement` compiled once into text with typed parameters, for SQLAlchemy to cache.

    SQLAlchemy compiles the dialects' INSERT ... ON CONFLICT afresh on every execution (they opt out
    of its statement cache); on a signup that was a third of the database time. `keys` names the
    columns an INSERT is given.
    """
    compiled = statement.compile(dialect=_NAMED[dialect], column_keys=list(keys) or None)
    clause = text(compiled.string).bindparams(
        *(bindparam(name, type_=bind.type) for name, bind in compiled.binds.items()))
    returning = getattr(statement, "_returning", ())
    return clause.columns(*returning) if returning else clause
