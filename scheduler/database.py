"""Engine set-up: SQLite pragmas, write transactions that cannot deadlock, checkpoints outside them."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .prepared import driver_sql

log = logging.getLogger(__name__)

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
        self._owner = None  # and the thread that began it

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
            self._threads, self._holder, self._owner = threading.Lock(), None, None
            self._pid = os.getpid()

    def acquire(self, dbapi_connection, timeout: float | None = None) -> bool:
        """Wait for this connection's turn, `timeout` seconds at most (the queue's own by default); says whether it came."""
        self._ready()
        if self._holder is not None and self._owner == threading.get_ident():
            # Its own turn is held by another of its transactions: waiting would only time out.
            raise RuntimeError("this thread already has a write transaction open on another connection to the "
                               "SQLite database; finish it before starting another")
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        try:
            if not self._flock(deadline):
                self._threads.release()
                return False
        except BaseException:
            self._threads.release()
            raise
        self._holder, self._owner = id(dbapi_connection), threading.get_ident()
        return True

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

    def holds(self, dbapi_connection) -> bool:
        """Whether this connection's transaction has the turn, in this process."""
        return self._holder is not None and self._holder == id(dbapi_connection) and self._pid == os.getpid()

    def release(self, dbapi_connection) -> bool:
        """End the turn of this connection's transaction, if it has one; says whether it had."""
        if self.holds(dbapi_connection):
            self._holder = self._owner = None
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._threads.release()
            return True
        return False


#: WAL size at which a commit wakes the checkpointer. Four times SQLite's default of
#: 1000 pages: pages written again and again (the event's row, index leaves) are copied once per
#: checkpoint, and a signup's share of checkpointing fell by a third against 1000.
CHECKPOINT_BYTES = 4096 * 4096


class Checkpoints:
    """WAL checkpoints made by a thread of their own, not in a request, and in no writer's turn but for a moment.

    SQLite's automatic checkpoint runs inside the COMMIT that fills the WAL: several milliseconds
    of copying and fsync while that writer still holds everyone's turn, which showed as the
    signup's p99. With it off (and the WAL truncated when it restarts, so its size tells how much
    is waiting), a commit that takes the WAL past CHECKPOINT_BYTES wakes this process's
    checkpointer, which runs a PASSIVE checkpoint on a pooled connection. No writer waits for that
    copy, it waits for nobody, and the request whose commit filled the WAL answers at once: SQLite
    lets go of the GIL while it copies and syncs.

    The WAL restarts only when a writer begins after a checkpoint has copied everything. Under a
    steady stream of writers that never happens (each began before the copy ended and appends
    after it): 30 s of signups left a 225 MiB WAL beside a 22 MiB database. So when the copy got
    everything it saw, the checkpointer copies what was appended meanwhile in a writers' turn of
    its own: a few frames, and PASSIVE never waits for readers. When a reader held the copy back,
    it does not take the turn (it would wait on nothing, or copy the whole backlog while every
    writer waits); the next attempt comes after the WAL has grown by another quarter of the limit.
    A reader that began before that last copy and is still open also keeps the WAL from restarting
    until a later attempt.
    """

    #: The checkpointer thread ends after this long without work; the next commit past the limit starts another.
    IDLE_SECONDS = 60.0
    #: How long the checkpointer waits for a writers' turn: a long write then delays only this last copy.
    TURN_WAIT_SECONDS = 1.0

    def __init__(self, wal_path: str, connect, limit: int = CHECKPOINT_BYTES, writers: WriterQueue | None = None):
        self.wal_path = wal_path
        self.connect = connect  # gives a DBAPI connection to checkpoint on; close() gives it back
        self.limit = limit
        self.writers = writers
        self._tried_at = 0  # WAL size at this process's last attempt
        self._pid = None  # the rest is per process (a forked worker starts its own thread)
        self._changed = self._thread = None  # a Condition: a checkpoint asked for, or made
        self._asked = self._made = 0  # checkpoints asked for by commits, and served so far

    def after_commit(self) -> None:
        try:
            size = os.stat(self.wal_path).st_size
        except OSError:
            return
        if size < self._tried_at:
            self._tried_at = 0  # the WAL has restarted since the last attempt
        # After an attempt that could not finish (a reader still needed old pages, or another
        # process was checkpointing), the WAL grows by a quarter more before the next one.
        if size < max(self.limit, self._tried_at + self.limit // 4):
            return
        self._tried_at = size
        try:
            self._wake()
        except Exception as exc:  # the commit stands; the next one past the limit tries again
            log.warning("could not start the WAL checkpointer: %s", exc)
            self._tried_at = 0

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database, as far as readers allow; if that was all of it, copy
        what writers appended meanwhile in a writers' turn, so that the next writer restarts the WAL."""
        try:
            connection = self.connect()
            try:
                cursor = connection.cursor()
                busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                # busy: another process is checkpointing; copied < frames: a reader needs old pages.
                if self.writers is not None and not busy and copied == frames:
                    self._copy_in_turn(cursor, connection.dbapi_connection)
            finally:
                connection.close()
        except Exception as exc:  # the commits stand; a later checkpoint copies what this one did not
            log.warning("WAL checkpoint failed: %s", exc)

    def _copy_in_turn(self, cursor, dbapi_connection) -> None:
        """Copy what writers appended during the first copy, while none can append more."""
        if not self.writers.acquire(dbapi_connection, self.TURN_WAIT_SECONDS):
            return  # a long write has the turn: a later attempt finishes
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self.writers.release(dbapi_connection)

    def wait(self, timeout: float = 10.0) -> bool:
        """Until every checkpoint this process asked for has been made; False on timeout (for tests)."""
        if self._pid != os.getpid():
            return True
        with self._changed:
            return self._changed.wait_for(lambda: self._made >= self._asked, timeout)

    def _wake(self) -> None:
        if self._pid != os.getpid():
            with _SETUP:
                if self._pid != os.getpid():
                    self._changed, self._thread, self._asked, self._made = threading.Condition(), None, 0, 0
                    self._pid = os.getpid()
        with self._changed:
            self._asked += 1
            self._changed.notify_all()
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="townhall-wal-checkpoints", daemon=True)
                thread.start()  # may raise (no threads left, interpreter shutting down): nothing set yet
                self._thread = thread

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._changed.wait_for(lambda: self._asked > self._made, self.IDLE_SECONDS):
                    self._thread = None  # idle, decided under the lock: a wake from now on starts a new thread
                    return
                asked = self._asked  # every wake so far is served by the checkpoint below
            self.checkpoint()
            with self._changed:
                self._made = asked
                self._changed.notify_all()


def configure_sqlite(engine: Engine, *, checkpoint_bytes: int = CHECKPOINT_BYTES) -> Checkpoints | None:
    """WAL, foreign keys, a busy timeout, explicit BEGIN [IMMEDIATE], a queue for writers, and checkpoints
    in the background; returns the engine's Checkpoints (None for an in-memory database)."""
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
        if writers:
            cur.execute("PRAGMA wal_autocheckpoint=0")  # see Checkpoints
            cur.execute("PRAGMA journal_size_limit=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        if not _write_intent.get():
            driver_sql(conn, "BEGIN")
            return
        raw = conn.connection.dbapi_connection
        if writers:
            writers.acquire(raw)
        try:
            driver_sql(conn, "BEGIN IMMEDIATE")
        except BaseException:
            if writers:
                writers.release(raw)
            raise

    if writers:
        # The turn ends when the transaction does: COMMIT, ROLLBACK (also the pool's reset on
        # return), or the connection closing or being invalidated.
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback
        checkpoints = Checkpoints(path + "-wal", engine.raw_connection, checkpoint_bytes, writers)

        def do_commit(connection):
            raw = getattr(connection, "dbapi_connection", connection)
            try:
                commit(connection)
            finally:
                wrote = writers.release(raw)
            if wrote:
                checkpoints.after_commit()

        def do_rollback(connection):
            try:
                rollback(connection)
            finally:
                writers.release(getattr(connection, "dbapi_connection", connection))

        dialect.do_commit, dialect.do_rollback = do_commit, do_rollback
        for name in ("checkin", "close", "close_detached", "invalidate", "soft_invalidate"):
            event.listen(engine, name, _releaser(writers, name))
        return checkpoints
    return None


def _releaser(writers: WriterQueue, name: str):
    if name in ("checkin", "close"):
        return lambda dbapi_connection, *_: dbapi_connection is not None and writers.release(dbapi_connection)
    if name == "close_detached":
        return lambda dbapi_connection: writers.release(dbapi_connection)
    return lambda dbapi_connection, _record, _exc: writers.release(dbapi_connection)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def connection_of(session: Session | Connection) -> Connection:
    """The Core connection of this transaction: a session's, or the connection itself."""
    return session if isinstance(session, Connection) else session.connection()


@contextmanager
def orm_session(session: Session | Connection):
    """The ORM session of this transaction: the caller's, or a new one in a Core connection's transaction.

    A new one is flushed when the block ends without error, so its changes go out before the caller
    commits the connection, and closed in any case: what it loaded stays readable, detached.
    """
    if not isinstance(session, Connection):
        yield session
        return
    orm = Session(bind=session)
    try:
        yield orm
        orm.flush()
    finally:
        orm.close()
