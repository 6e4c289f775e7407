"""gunicorn reads this file from the directory it starts in: Townhall's hooks, no settings."""

from scheduler.config import rate_limit_warning


def post_worker_init(worker):
    """The first worker says once when rate limits would be split between the workers' memories."""
    config = getattr(worker.wsgi, "config", None)
    warning = rate_limit_warning(config, worker.cfg.workers) if config is not None and worker.age == 1 else None
    if warning:
        worker.log.warning(warning)
