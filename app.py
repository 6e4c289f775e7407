"""The WSGI entry point: `gunicorn app:app`, and `flask run` (FLASK_APP=app.py)."""

import gc

from scheduler import create_app

app = create_app()

# What start-up made (modules, templates, the app itself) lives as long as the process, yet each
# full collection would walk all of it again, pausing the worker in the middle of a request.
# Frozen, it is left out of collections, and workers forked from a preloading master share more
# of that memory, as the collector no longer writes to its pages.
gc.freeze()
