"""`flask db upgrade` builds the schema the models describe; `flask db downgrade base` removes it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from bench.server import fresh_database
from scheduler import create_app
from scheduler.extensions import db
from tests.conftest import PG_ADMIN_URL, base_config, postgres_available, require


@pytest.fixture
def empty_database_url(backend, tmp_path):
    if backend == "postgres" and not postgres_available():
        require("REQUIRE_POSTGRES", "PostgreSQL is not reachable on 127.0.0.1:5432")
    with fresh_database(backend, tmp_path, prefix="townhall_migrate", admin_url=PG_ADMIN_URL) as url:
        yield url


def test_upgrade_matches_models_and_downgrade_empties(empty_database_url, tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL=empty_database_url))
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), db.metadata)
        assert {t.name for t in db.metadata.sorted_tables} <= tables
        assert diff == []
        downgrade(revision="base")
        with db.engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
        upgrade()  # and back up again: the pair is repeatable
        db.engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    app = create_app(base_config(tmp_path, DATABASE_URL="sqlite:///" + str(tmp_path / "wal.db")))
    with app.app_context(), db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        db.engine.dispose()
