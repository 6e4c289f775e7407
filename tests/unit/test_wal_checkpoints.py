"""WAL checkpoints on SQLite (scheduler.database.Checkpoints): made by the writer whose commit takes the WAL past
the limit, after its turn in the writer queue is over, never inside another writer's COMMIT; they keep the WAL
bounded, and a checkpoint that cannot finish (an open reader) is not retried on every commit."""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, insert
from sqlalchemy import select as sql_select

from scheduler.database import configure_sqlite, read_only
from tests.unit.test_writer_queue import lock_is_free

LIMIT = 64 * 1024  # 16 pages: a handful of commits of the rows below
metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("body", String(4000)))


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    configure_sqlite(engine, checkpoint_bytes=LIMIT)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def checkpoints(engine):
    """What each checkpoint saw: (WAL size, was the writers' lock free) — traced on every pooled connection."""
    seen: list[tuple[int, bool]] = []
    wal, lock = engine.url.database + "-wal", engine.url.database + "-writers.lock"

    def trace(statement: str) -> None:
        if "wal_checkpoint" in statement:
            seen.append((os.path.getsize(wal), lock_is_free(lock)))

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
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


def test_the_writer_past_the_limit_checkpoints_after_its_turn(engine, checkpoints):
    wal = engine.url.database + "-wal"
    write(engine, 3)
    assert checkpoints == [], "checkpointed before the WAL reached the limit"
    while not checkpoints:
        write(engine)
        assert os.path.getsize(wal) < 4 * LIMIT, "the WAL passed the limit and nobody checkpointed"
    size, lock_free = checkpoints[0]
    assert size >= LIMIT
    assert lock_free, "the checkpoint ran while its writer still held the queue"
    # Fully copied, the WAL restarts with the next write and is truncated: it stays bounded.
    for _ in range(40):
        write(engine)
        assert os.path.getsize(wal) < LIMIT + 32 * 1024
    assert len(checkpoints) >= 5
    assert all(free for _, free in checkpoints)


def test_readers_and_other_writers_still_see_every_row(engine, checkpoints):
    write(engine, 60)
    assert checkpoints
    with read_only(), engine.connect() as conn:
        assert conn.scalar(sql_select(notes.c.id).order_by(notes.c.id.desc()).limit(1)) == 120
    other = sqlite3.connect(engine.url.database)
    try:
        assert other.execute("SELECT count(*) FROM notes").fetchone()[0] == 120
        assert other.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        other.close()


def test_an_open_reader_does_not_make_every_commit_retry(engine, checkpoints):
    wal = engine.url.database + "-wal"
    write(engine, 2)
    reader = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM notes").fetchone()  # holds its snapshot: the WAL cannot restart
        past_limit = 0
        for _ in range(120):
            with engine.begin() as conn:  # a small row: about a page per commit
                conn.execute(insert(notes), {"body": "z" * 100})
            past_limit += os.path.getsize(wal) >= LIMIT
        assert past_limit > 60
        # Tried at the limit, then only each time the WAL grew by another quarter of it (16 KB, ~4 commits).
        assert 1 <= len(checkpoints) <= past_limit // 2
        reader.execute("COMMIT")
    finally:
        reader.close()
    before = len(checkpoints)
    write(engine, 3)
    assert len(checkpoints) > before  # the reader gone, a commit checkpoints
    write(engine, 3)
    assert os.path.getsize(wal) < LIMIT  # and the WAL restarted
