"""gunicorn reads this file from the directory it starts in: Townhall's hooks, no settings."""

from scheduler.config import rate_limit_warning


def post_worker_init(worker):
    """The first worker says once when rate limits would be split between the workers' memories, and
    every worker ends its open live boards as soon as it is told to stop."""
    app = worker.wsgi
    config = getattr(app, "config", None)
    warning = rate_limit_warning(config, worker.cfg.workers) if config is not None and worker.age == 1 else None
    if warning:
        worker.log.warning(warning)
    if config is not None:
        from scheduler.web import board_stream  # here: after the gevent worker has patched threading

        # A stopping worker waits for its open requests: a board's stream would hold it for the whole
        # graceful timeout (30 s), only to be cut then. Ended, the browsers reconnect to a live worker.
        board_stream.end_streams_when(app, lambda: not worker.alive)
