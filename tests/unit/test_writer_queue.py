"""The SQLite writer queue (scheduler.database.WriterQueue): the flock on `<db>-writers.lock` is held for
exactly a write transaction, orders writers across threads and processes, and is given back however the
transaction ends. SQLite only: an engine of our own on a temporary file, set up by configure_sqlite."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import sys
import threading
import time
import traceback

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, func
from sqlalchemy import select as sql_select
from sqlalchemy.exc import DBAPIError

from scheduler.database import WriterQueue, configure_sqlite, read_only

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("label", String(50)))
WAIT = 10.0  # upper bound for anything that should happen at once; only reached when a test fails


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    configure_sqlite(engine)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def lock_path(engine) -> str:
    path = engine.url.database + "-writers.lock"
    assert os.path.exists(path)  # created by the first write (create_all)
    return path


def lock_is_free(path: str) -> bool:
    """Probe the flock from a separate open file description, and give it back at once."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def labels(engine) -> list[str]:
    with read_only(), engine.connect() as conn:
        return list(conn.scalars(sql_select(items.c.label).order_by(items.c.id)))


def insert(conn, label: str) -> None:
    conn.execute(items.insert().values(label=label))


def write_in_thread(engine, label: str, timeout: float = WAIT) -> float:
    """Commit one row from a fresh thread; returns the seconds it took (fails if it did not finish)."""
    errors: list[BaseException] = []

    def run():
        try:
            with engine.begin() as conn:
                insert(conn, label)
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"write of {label!r} still waiting after {timeout}s"
    if errors:
        raise errors[0]
    return time.monotonic() - started


def test_lock_is_held_during_a_write_and_free_after_commit_and_rollback(engine, lock_path):
    assert lock_is_free(lock_path)
    with engine.connect() as conn:
        transaction = conn.begin()
        insert(conn, "kept")
        assert not lock_is_free(lock_path)  # the probe does see a held lock
        transaction.commit()
        # Still checked out: the turn ends with the transaction, not with the connection.
        assert lock_is_free(lock_path)

        transaction = conn.begin()
        insert(conn, "dropped")
        assert not lock_is_free(lock_path)
        transaction.rollback()
        assert lock_is_free(lock_path)
    assert labels(engine) == ["kept"]
    # The thread lock was given back too: the next writer does not wait out the busy timeout.
    assert write_in_thread(engine, "next") < 5
    assert lock_is_free(lock_path)


def test_second_thread_writer_waits_for_the_first_and_goes_on_at_its_commit(engine, lock_path):
    holding, release = threading.Event(), threading.Event()
    second_started, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    committed_at: list[float] = []
    steps: list[tuple[str, str]] = []  # (what, thread name) in the order the engine saw them

    @event.listens_for(engine, "before_cursor_execute")
    def on_statement(_conn, _cursor, statement, *_):
        if statement == "BEGIN IMMEDIATE":  # issued only once the writer has its turn
            steps.append(("begin", threading.current_thread().name))

    @event.listens_for(engine, "commit")
    def on_commit(_conn):
        steps.append(("commit", threading.current_thread().name))

    def first():
        try:
            with engine.connect() as conn:
                transaction = conn.begin()
                insert(conn, "first")
                holding.set()
                release.wait(WAIT)
                transaction.commit()
                committed_at.append(time.monotonic())
        except BaseException as exc:
            errors.append(exc)
            holding.set()

    def second():
        try:
            second_started.set()
            with engine.begin() as conn:
                insert(conn, "second")
            second_done.set()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first, name="first", daemon=True),
               threading.Thread(target=second, name="second", daemon=True)]
    threads[0].start()
    assert holding.wait(WAIT)
    threads[1].start()
    assert second_started.wait(WAIT)
    try:
        # A short window in which the second writer could (wrongly) get through.
        assert not second_done.wait(0.2), "second writer did not wait for the first one's commit"
        assert not lock_is_free(lock_path)
    finally:
        release.set()
    assert second_done.wait(WAIT)
    done_at = time.monotonic()
    for thread in threads:
        thread.join(WAIT)
    assert not errors, errors
    # The second writer waited in the queue, not in SQLite's busy handler (it had not sent BEGIN yet).
    assert steps == [("begin", "first"), ("commit", "first"), ("begin", "second"), ("commit", "second")]
    assert done_at - committed_at[0] < 2  # right after, not after a busy-timeout back-off
    assert labels(engine) == ["first", "second"]
    assert lock_is_free(lock_path)


def test_a_second_write_transaction_in_the_same_thread_fails_at_once(engine, lock_path):
    """It would wait for its own thread's turn: a clear error instead of two timeouts, and the first goes on."""
    with engine.connect() as first:
        first.begin()
        insert(first, "first")
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="already has a write transaction open"):
            with engine.begin() as second:
                insert(second, "second")
        assert time.monotonic() - started < 1
        insert(first, "still first")
        first.commit()
    assert labels(engine) == ["first", "still first"]
    assert lock_is_free(lock_path)
    assert write_in_thread(engine, "next") < 5  # another thread's turn comes at once


def test_read_only_transaction_takes_no_lock(engine, lock_path):
    with read_only(), engine.connect() as conn:
        with conn.begin():
            assert conn.scalar(sql_select(func.count()).select_from(items)) == 0
            assert lock_is_free(lock_path)
            # A writer elsewhere is not held up by the open read.
            assert write_in_thread(engine, "during read") < 5
            assert lock_is_free(lock_path)
    assert labels(engine) == ["during read"]


@pytest.mark.parametrize("ending", ["invalidate", "close", "dbapi connection closed"])
def test_connection_ending_mid_transaction_releases_the_lock(engine, lock_path, ending):
    conn = engine.connect()
    conn.begin()
    insert(conn, "lost")
    assert not lock_is_free(lock_path)
    if ending == "invalidate":
        conn.invalidate()
        conn.close()
    elif ending == "close":
        conn.close()  # returned to the pool, which rolls back
    else:
        conn.connection.dbapi_connection.close()  # gone under SQLAlchemy's feet
        with pytest.raises(DBAPIError) as raised:
            conn.close()  # its rollback fails, and SQLAlchemy invalidates the connection
        assert raised.value.connection_invalidated
        conn.close()
    assert lock_is_free(lock_path)
    assert write_in_thread(engine, "after") < 5
    assert labels(engine) == ["after"]


def _read_line(fd: int, timeout: float = WAIT) -> str:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        raise TimeoutError("no word from the other process")
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise EOFError("pipe closed")
        data += chunk
    return data.decode().strip()


def _child(engine, to_child: int, to_parent: int) -> int:
    # A plain write while the parent holds nothing.
    with engine.begin() as conn:
        insert(conn, "child-1")
    os.write(to_parent, b"wrote\n")
    assert _read_line(to_child) == "go"  # the parent now holds a write transaction
    with engine.connect() as conn:
        transaction = conn.begin()
        insert(conn, "child-2")
        os.write(to_parent, b"holding\n")
        assert _read_line(to_child) == "commit"
        transaction.commit()
    return 0


def test_forked_child_takes_its_own_turn_on_the_lock(engine, lock_path):
    with engine.begin() as conn:  # the parent's queue has opened its lock file before the fork
        insert(conn, "before")
    engine.dispose()  # no SQLite connection is carried across the fork
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (runs in the child)
        code = 1
        try:
            code = _child(engine, to_child_r, to_parent_w)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    conn = None
    try:
        assert _read_line(to_parent_r) == "wrote"
        assert labels(engine) == ["before", "child-1"]
        assert lock_is_free(lock_path)

        conn = engine.connect()
        transaction = conn.begin()
        insert(conn, "parent")
        os.write(to_child_w, b"go\n")
        # The child waits for the parent's turn to end (see also test_forked_queue_has_its_own_lock).
        ready, _, _ = select.select([to_parent_r], [], [], 0.3)
        assert not ready, "the child wrote while the parent held its turn"
        transaction.commit()
        conn.close()
        conn = None

        assert _read_line(to_parent_r) == "holding"
        # The child's turn is its own: the parent's release did not end it.
        assert not lock_is_free(lock_path)
        os.write(to_child_w, b"commit\n")
        deadline = time.monotonic() + WAIT
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
            assert time.monotonic() < deadline, "the child did not finish"
            time.sleep(0.005)
        pid = 0
        assert os.waitstatus_to_exitcode(status[1]) == 0
    finally:
        if conn is not None:
            conn.close()
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for fd in (to_child_r, to_child_w, to_parent_r, to_parent_w):
            os.close(fd)
    assert lock_is_free(lock_path)
    assert labels(engine) == ["before", "child-1", "parent", "child-2"]
    assert write_in_thread(engine, "after") < 5


def test_forked_queue_has_its_own_lock(lock_path):
    """A queue used before a fork: the child opens its own lock file, so the parent's turn holds it back."""
    queue = WriterQueue(str(lock_path), timeout=0.3)
    holder = object()
    queue.acquire(holder)  # the parent takes its turn before forking
    pid = os.fork()
    if pid == 0:  # pragma: no cover (runs in the child)
        child = object()
        queue.acquire(child)  # must time out: sharing the parent's open file would let it through
        os._exit(3 if queue.holds(child) else 0)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child got a turn while the parent held it"
    finally:
        queue.release(holder)
    assert lock_is_free(lock_path)


def test_first_writes_of_a_process_racing_each_other(tmp_path):
    """Two threads writing first in a fresh process: neither may see the queue half set up."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, inside the set-up too
    try:
        for trial in range(40):
            path = tmp_path / f"race{trial}.db"
            setup = create_engine(f"sqlite:///{path}")
            with setup.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            setup.dispose()
            engine = create_engine(f"sqlite:///{path}")
            configure_sqlite(engine)
            for conn in (engine.connect(), engine.connect()):
                conn.close()  # two pooled connections: the race is in the queue's set-up, not in connecting
            barrier, errors = threading.Barrier(2), []

            def write(n, engine=engine, barrier=barrier, errors=errors):
                barrier.wait()
                try:
                    with engine.begin() as conn:
                        conn.exec_driver_sql("INSERT INTO t VALUES (?)", (n,))
                except Exception as exc:  # the assertion below reports it
                    errors.append(exc)

            threads = [threading.Thread(target=write, args=(n,)) for n in (1, 2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            assert not any(thread.is_alive() for thread in threads), f"trial {trial}: a writer hangs"
            assert errors == [], f"trial {trial}: {errors[0]!r}"
            with engine.connect() as conn:
                assert sorted(conn.exec_driver_sql("SELECT x FROM t").scalars()) == [1, 2]
            engine.dispose()
            assert lock_is_free(str(path) + "-writers.lock")
    finally:
        sys.setswitchinterval(previous)
