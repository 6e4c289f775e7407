"""gunicorn.conf.py under a real gunicorn: the first worker warns once when rate limits are split between workers."""

from __future__ import annotations

import pytest

from tests.support import gunicorn, seed_event, write_instance

pytestmark = pytest.mark.slow
WARNING = "Rate limits are kept in each worker's memory"


def served_log(tmp_path, name: str, workers: int, **settings) -> str:
    database = f"sqlite:///{tmp_path / name}.db"
    seed_event({"DATABASE_URL": database, "SECRET_KEY": "hooks-test"}, title="Hooks")
    instance = write_instance(tmp_path / name, SECRET_KEY="hooks-test", SCHEDULER_MODE="off", DATABASE_URL=database,
                              **settings)
    log = tmp_path / f"{name}.log"
    with gunicorn(instance, workers=workers, log=log):
        pass
    return log.read_text()


def test_several_workers_with_limits_in_memory_are_warned_about_once(tmp_path):
    output = served_log(tmp_path, "memory", 3)
    assert output.count(WARNING) == 1, output
    assert "with 3 workers a client gets up to 3 times each limit" in output


def test_one_worker_or_shared_limits_are_not_warned_about(tmp_path):
    assert WARNING not in served_log(tmp_path, "single", 1)
    assert WARNING not in served_log(tmp_path, "redis", 2, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379")
