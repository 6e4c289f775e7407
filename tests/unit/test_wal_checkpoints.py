"""WAL checkpoints on SQLite (scheduler.database.Checkpoints): asked for by the commit that takes the WAL past
the limit and made by a thread of the process's own, so neither a writer's turn nor its request waits for the
copy; they keep the WAL bounded, and a checkpoint that cannot finish (an open reader) is not retried on every
commit."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, insert
from sqlalchemy import select as sql_select

from scheduler.database import Checkpoints, configure_sqlite, read_only
from tests.unit.test_writer_queue import lock_is_free

LIMIT = 64 * 1024  # 16 pages: a handful of commits of the rows below
metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("body", String(4000)))


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    engine.checkpointer = configure_sqlite(engine, checkpoint_bytes=LIMIT)
    metadata.create_all(engine)
    yield engine
    assert engine.checkpointer.wait()
    engine.dispose()


class Traced(list):
    """Checkpoint attempts as (WAL size, thread); `in_turn`, the WAL sizes at copies made in a writers' turn."""

    def __init__(self):
        super().__init__()
        self.in_turn: list[int] = []


def wal_size(engine) -> int:
    try:
        return os.path.getsize(engine.url.database + "-wal")
    except FileNotFoundError:  # none yet
        return 0


@pytest.fixture
def checkpoints(engine):
    """What each checkpoint attempt saw — traced on every pooled connection. An attempt copies outside
    the writers' turn, then perhaps again in a turn of its own."""
    seen = Traced()
    writers = engine.checkpointer.writers

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        def trace(statement: str) -> None:
            if "wal_checkpoint" not in statement:
                return
            if writers.holds(dbapi_connection):
                seen.in_turn.append(wal_size(engine))
            else:
                seen.append((wal_size(engine), threading.get_ident()))

        dbapi_connection.set_trace_callback(trace)

    engine.dispose()  # connections made from now on are traced
    return seen


def write(engine, n: int = 1) -> None:
    for _ in range(n):
        with engine.begin() as conn:
            conn.execute(insert(notes), [{"body": "x" * 3000}, {"body": "y" * 3000}])


def test_sqlites_own_checkpoint_is_off(engine):
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert raw.execute("PRAGMA journal_size_limit").fetchone()[0] == 0  # the WAL's size says what waits
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_past_the_limit_a_thread_of_its_own_checkpoints_and_the_wal_stays_bounded(engine, checkpoints):
    write(engine, 3)
    assert engine.checkpointer.wait() and checkpoints == [], "checkpointed before the WAL reached the limit"
    while not checkpoints:
        write(engine)
        assert engine.checkpointer.wait()
        assert wal_size(engine) < 4 * LIMIT, "the WAL passed the limit and nobody checkpointed"
    size, thread = checkpoints[0]
    assert size >= LIMIT
    assert thread != threading.get_ident(), "the committing thread made the checkpoint itself"
    # Fully copied, the WAL restarts with the next write and is truncated: it stays bounded.
    for _ in range(40):
        write(engine)
        assert engine.checkpointer.wait()
        assert wal_size(engine) < LIMIT + 32 * 1024
    assert len(checkpoints) >= 5
    assert len({thread for _, thread in checkpoints}) == 1  # one checkpointer, woken again and again


def test_writers_that_never_pause_do_not_keep_the_wal_from_restarting(engine, checkpoints):
    """A PASSIVE checkpoint never catches up with writers that append while it copies: the
    checkpointer finishes in a writers' turn of its own, and the WAL restarts and stays bounded."""
    stop, errors, largest = threading.Event(), [], [0]

    def writer():
        try:
            while not stop.is_set():
                write(engine)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            largest[0] = max(largest[0], wal_size(engine))
            time.sleep(0.002)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors
    assert len(checkpoints) >= 5 and checkpoints.in_turn
    # How far it grows between restarts depends on the disk and the load: 0.2-1.3 MiB here, busy or
    # not. Without the copy in a turn it grew to 80-150 MiB.
    assert largest[0] < 128 * LIMIT, f"the WAL grew to {largest[0] // 1024} KiB"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_writers_do_not_wait_for_a_slow_checkpoint(engine):
    """The copy and its fsync take milliseconds; the commit that asked for them returns at once."""
    lock = engine.url.database + "-writers.lock"
    release, started = threading.Event(), threading.Event()

    @event.listens_for(engine, "connect")
    def slow_checkpoints(dbapi_connection, _record):
        def trace(statement: str) -> None:
            if "wal_checkpoint" in statement:
                started.set()
                release.wait(10)
        dbapi_connection.set_trace_callback(trace)

    engine.dispose()
    try:
        for _ in range(40):
            began = time.monotonic()
            write(engine)
            assert time.monotonic() - began < 5, "a commit waited for the checkpoint it asked for"
            if started.is_set():
                break
        assert started.wait(5), "no checkpoint was asked for"
        began = time.monotonic()
        write(engine, 5)  # while the checkpointer is still busy
        assert time.monotonic() - began < 5
        assert lock_is_free(lock), "a writer's turn outlived its commit"
    finally:
        release.set()
    assert engine.checkpointer.wait()


def test_a_checkpointer_that_cannot_start_fails_no_commit_and_is_started_later(engine, checkpoints, monkeypatch,
                                                                             caplog):
    import scheduler.database as database

    refused = []

    class Unstartable(threading.Thread):
        def start(self):
            if not refused:
                refused.append(self)
                raise RuntimeError("can't start new thread")
            super().start()

    monkeypatch.setattr(database.threading, "Thread", Unstartable)
    while not refused:
        write(engine)  # every commit stands, the one that could not start the thread too
    assert "could not start the WAL checkpointer" in caplog.text
    while not checkpoints:
        write(engine)
        assert engine.checkpointer.wait()
        assert wal_size(engine) < 4 * LIMIT
    with engine.connect() as conn:
        assert conn.scalar(sql_select(notes.c.id).order_by(notes.c.id.desc()).limit(1)) >= 2 * len(checkpoints)


def test_readers_and_other_writers_still_see_every_row(engine, checkpoints):
    write(engine, 60)
    assert engine.checkpointer.wait() and checkpoints
    with read_only(), engine.connect() as conn:
        assert conn.scalar(sql_select(notes.c.id).order_by(notes.c.id.desc()).limit(1)) == 120
    other = sqlite3.connect(engine.url.database)
    try:
        assert other.execute("SELECT count(*) FROM notes").fetchone()[0] == 120
        assert other.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        other.close()


def test_an_open_reader_does_not_make_every_commit_retry(engine, checkpoints):
    write(engine, 2)
    reader = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM notes").fetchone()  # holds its snapshot: the WAL cannot restart
        past_limit = 0
        for _ in range(120):
            with engine.begin() as conn:  # a small row: about a page per commit
                conn.execute(insert(notes), {"body": "z" * 100})
            assert engine.checkpointer.wait()
            past_limit += wal_size(engine) >= LIMIT
        assert past_limit > 60
        # Tried at the limit, then only each time the WAL grew by another quarter of it (16 KB, ~4 commits).
        assert 1 <= len(checkpoints) <= past_limit // 2
        # A copy the reader held back is not finished in a writers' turn: it would wait on nothing.
        assert checkpoints.in_turn == []
        reader.execute("COMMIT")
    finally:
        reader.close()
    before = len(checkpoints)
    write(engine, 3)
    assert engine.checkpointer.wait() and len(checkpoints) > before  # the reader gone, a commit checkpoints
    write(engine, 3)
    assert wal_size(engine) < LIMIT  # and the WAL restarted


def test_a_long_write_delays_only_the_checkpointers_last_copy(engine, checkpoints, monkeypatch):
    """The checkpointer waits a little for a writers' turn, then leaves the last copy to a later attempt."""
    monkeypatch.setattr(Checkpoints, "TURN_WAIT_SECONDS", 0.2)
    write(engine, 2)
    with engine.begin() as conn:  # holds the writers' turn until the block ends
        conn.execute(insert(notes), {"body": "w"})
        checkpointer = threading.Thread(target=engine.checkpointer.checkpoint)
        checkpointer.start()
        checkpointer.join(5)
        assert not checkpointer.is_alive(), "the checkpointer waited for the long write"
    assert len(checkpoints) == 1 and checkpoints.in_turn == []
    engine.checkpointer.checkpoint()  # the turn free again: copied, then finished in a turn
    assert len(checkpoints) == 2 and len(checkpoints.in_turn) == 1
