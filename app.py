"""The WSGI entry point: `gunicorn app:app`, and `flask run` (FLASK_APP=app.py)."""

import gc

from scheduler import create_app

app = create_app()

# What start-up made lives as long as the process. Frozen, it is skipped by the collector's full
# passes: one walked the whole app (~115,000 objects, 30-80 ms here), stalling a worker, perhaps
# while it held the database's write turn. Forked workers also keep sharing those pages.
gc.freeze()
