"""app.py, the WSGI entry point gunicorn and `flask run` load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_start_up_objects_are_frozen_out_of_full_collections(tmp_path):
    env = {**os.environ, "TOWNHALL_INSTANCE": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
           "SCHEDULER_MODE": "off", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", "import gc, app; print(gc.get_freeze_count(), app.app.name)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert int(out[0]) > 10_000, "the app's start-up objects are not frozen"
    assert out[1] == "scheduler"
