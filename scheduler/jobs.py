"""APScheduler glue, and the only module that imports apscheduler: it is the timer, the tables are the truth.

The job store is in memory and rebuilt from planned_jobs every few seconds, so nothing is lost
when a process dies and no two processes share a store. Each due row becomes a date job with
no misfire limit; firing it only claims the row, so a job fired twice or by two processes sends
once. Delivery runs on its own thread, woken at once by a fan-out and on an interval otherwise.

APScheduler's timer runs on the system clock, but what is due and every time written to a row come
from the app's clock (`clock.now`, the CLOCK config key), so a test can set the time.
"""

from __future__ import annotations

import atexit
import fcntl
import gc
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import click
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from flask.cli import ScriptInfo, with_appcontext
from sqlalchemy import delete, select

from . import clock, dispatch, wakeups
from .domain import reminders, signups
from .domain import series as series_rules
from .extensions import db
from .mail import outbox
from .mail import reminders as _reminder_mail  # noqa: F401  (connects the late-registrant receiver)
from .mail.relay import RelayTransport
from .mail.transports import transport_from_config
from .models import SchedulerHeartbeat
from .services import unit_of_work

log = logging.getLogger(__name__)
#: Heartbeat rows older than this are removed (processes that stopped long ago).
FORGET_HEARTBEATS = timedelta(days=1)
#: How often the series' window is rolled on (occurrences are planned months ahead: an hour is plenty).
SERIES_PLAN_SECONDS = 3600.0
#: At most this many planned jobs due at once are fired together (the rest by their own timers).
FIRE_TOGETHER = 200
_started: dict[int, Runner] = {}
_started_lock = threading.Lock()


def stale_after(config) -> float:
    """Seconds without a heartbeat after which the scheduler counts as down."""
    return 3 * float(config["SCHEDULER_POLL_SECONDS"]) + float(config["SCHEDULER_HEARTBEAT_MARGIN"])


class Runner:
    """One scheduler process (or embedded thread set): the APScheduler instance and its thin jobs."""

    def __init__(self, app: Flask, *, mode: str):
        self.app = app
        self.mode = mode
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[:100]
        config = app.config
        self.poll = float(config["SCHEDULER_POLL_SECONDS"])
        self.lookahead = timedelta(seconds=float(config["SCHEDULER_LOOKAHEAD_SECONDS"]))
        self.lease = timedelta(seconds=float(config["SCHEDULER_JOB_LEASE_SECONDS"]))
        #: Our claims stay ours while we beat at least this often; another process takes them after it.
        self.claim_timeout = timedelta(seconds=float(config["SCHEDULER_CLAIM_TIMEOUT_SECONDS"]))
        self.beat_every = min(self.poll, self.claim_timeout.total_seconds() / 4)
        self.mail_poll = float(config["OUTBOX_POLL_SECONDS"])
        # A standalone scheduler sends SMTP from relay processes: its own threads then never hold up the wire.
        relay = mode == "standalone" and bool(config["MAIL_URL"]) and bool(config["MAIL_RELAY"])
        self.transports = HeldTransports(config, max(1, int(config["MAIL_CONNECTIONS"])), relay=relay)
        self.stopping = threading.Event()
        self._beating = threading.Thread(target=self._beat_until_stopped, name="townhall-heartbeat", daemon=True)
        self._mail_wanted = threading.Event()
        self._mail_lock = threading.Lock()
        self._delivering = False
        #: The last delivery ended in an error: it may have left claims of ours behind (see deliver).
        self._interrupted = False
        #: planned job id -> the time it was timed for, until its firing finishes.
        self._timed: dict[int, datetime] = {}
        #: Planned jobs a firing holds (from _take_due until it finishes, resumes included).
        self._taken: set[int] = set()
        self._timer_lock = threading.Lock()
        # Held by a job while it adds, changes or lists APScheduler jobs, and by shutdown() while it sets
        # `stopping`: APScheduler's shutdown(wait=True) waits for running jobs while holding its job-store
        # lock, so a job reaching for the scheduler after that would wait for ever.
        self._scheduler_lock = threading.Lock()
        # SQLite takes one writer at a time, and waiting writers back off in sleeps of up to 100 ms:
        # more firing threads than two only adds lock waits there.
        with app.app_context():
            sqlite = db.engine.dialect.name == "sqlite"
            # Other processes (web workers, schedulers) wake this one through NOTIFY when they queue work.
            self._listener = None if sqlite else wakeups.Listener(db.engine.url, self.stopping)
        fire_threads = int(config.get("SCHEDULER_FIRE_THREADS") or (2 if sqlite else 4))
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={"default": MemoryJobStore()},
            # Fan-outs, mail and housekeeping get their own threads: a burst of due reminders
            # must not hold up the first delivery or the heartbeat.
            executors={"default": ThreadPoolExecutor(3), "fire": ThreadPoolExecutor(fire_threads),
                       "mail": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def now(self) -> datetime:
        """The app's clock, callable without an app context: delivery composes messages on a thread of its own."""
        return clock.of(self.app)()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Runner:
        now = datetime.now(UTC)
        self.heartbeat()  # before the first claim: from now on our claims are kept alive by the beat
        self._beating.start()
        add = self.scheduler.add_job
        add(self.load, "interval", seconds=self.poll, id="load", next_run_time=now,
            max_instances=2)  # a wake-up during a load still loads what that load read too early to see
        add(self.deliver, "interval", seconds=self.mail_poll, id="deliver", executor="mail", next_run_time=now,
            max_instances=2)  # a tick during a long delivery returns at once instead of being refused
        add(self.expire_holds, "interval", seconds=float(self.app.config["HOLD_SWEEP_SECONDS"]),
            id="expire-holds", next_run_time=now + timedelta(seconds=1))
        add(self.plan_series, "interval", seconds=SERIES_PLAN_SECONDS, id="plan-series",
            next_run_time=now + timedelta(seconds=2))
        self.scheduler.start()
        wakeups.subscribe(wakeups.MAIL, self.wake_delivery)
        wakeups.subscribe(wakeups.JOBS, self.wake_load)
        if self._listener is not None:
            self._listener.start()
        log.info("scheduler %s started (%s mode)", self.worker, self.mode)
        return self

    def shutdown(self) -> None:
        """Stop taking work, let running jobs reach a safe point, and say goodbye."""
        with self._scheduler_lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
        wakeups.unsubscribe(wakeups.MAIL, self.wake_delivery)
        wakeups.unsubscribe(wakeups.JOBS, self.wake_load)
        # Running jobs see `stopping` at their next message or chunk: delivery gives back the rows it
        # has not started, a fan-out its job, so another scheduler goes on with them at once.
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.transports.end()
        if self._beating.is_alive():
            self._beating.join()
        with self.app.app_context():
            try:
                with unit_of_work() as uow:
                    uow.session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.id == self.worker))
            except Exception:  # the database may be gone; the row then just goes stale
                log.exception("could not remove heartbeat of %s", self.worker)
        log.info("scheduler %s stopped", self.worker)

    # --- thin jobs: ids in, app context, re-fetch and delegate -----------------------------------

    def _beat_until_stopped(self) -> None:
        """Beat on a thread of its own, so that no burst of work can make a live process look dead."""
        while not self.stopping.wait(self.beat_every):
            try:
                self.heartbeat()
            except Exception:  # the database is away; the next beat tries again
                log.exception("heartbeat of %s failed", self.worker)

    def heartbeat(self) -> None:
        """Say we are alive: this also keeps every claim we hold (see domain.queries.claim_lapsed)."""
        with self.app.app_context(), unit_of_work() as uow:
            row = uow.session.get(SchedulerHeartbeat, self.worker)
            if row is None:
                uow.session.add(SchedulerHeartbeat(id=self.worker, mode=self.mode, started_at=uow.now, beat_at=uow.now))
                uow.session.execute(delete(SchedulerHeartbeat).where(
                    SchedulerHeartbeat.beat_at < uow.now - FORGET_HEARTBEATS))
            else:
                row.beat_at = uow.now

    def load(self) -> None:
        """Turn every row due within the lookahead into a date job at its due time."""
        if self.stopping.is_set():
            return
        with self.app.app_context(), unit_of_work() as uow:
            # The timer's time for a row due at `when` by the app's clock (the same for the system clock).
            skew = datetime.now(UTC) - uow.now
            work = reminders.work_due(uow.session, now=uow.now, horizon=self.lookahead, lease=self.lease,
                                      timeout=self.claim_timeout)
        now = uow.now
        wanted = {}
        with self._scheduler_lock:
            if self.stopping.is_set():
                return
            for job_id, when in work:
                wanted[f"planned-{job_id}"] = job_id
                with self._timer_lock:
                    current = self._timed.get(job_id)
                    if current is not None and (current == when or current <= now):
                        continue  # already timed, or firing right now: nothing to do
                    self._timed[job_id] = when
                self.scheduler.add_job(self.fire, "date", run_date=when + skew, args=[job_id],
                                       id=f"planned-{job_id}", executor="fire", replace_existing=True,
                                       misfire_grace_time=None, coalesce=True)
            for job in self.scheduler.get_jobs():
                if job.id.startswith("planned-") and job.id not in wanted:
                    job.remove()  # moved beyond the lookahead or cancelled; firing would be a no-op anyway
                    with self._timer_lock:
                        self._timed.pop(job.args[0], None)

    def fire(self, job_id: int, after: int | None = None) -> None:
        """Fire one planned job, with every other timed job due by now, or go on with a reminder; a chunk or
        two at a time, then queue the rest."""
        taken = self._take_due(job_id) if after is None else [job_id]
        more: set[int] = set()
        try:
            if not taken or self.stopping.is_set():
                return
            with self.app.app_context():
                options = dict(worker=self.worker, clock=self.now, on_chunk=self.wake_delivery,
                               stopping=self.stopping.is_set, chunks=1 if after is None else 2)
                try:
                    if after is None:
                        results = dispatch.fire_many(db.session, taken, lease=self.lease, timeout=self.claim_timeout,
                                                     **options)
                    else:
                        results = [dispatch.resume(db.session, job_id, after=after, **options)]
                except Exception:
                    db.session.rollback()
                    log.exception("planned job(s) %s failed; given back and tried again", taken)
                    for failed in taken:
                        self._give_back(failed)
                    return
            for result in results:
                if result.outcome == "more":
                    # Behind every other due job in the queue: each reminder's first chunk goes out first.
                    with self._scheduler_lock:
                        if self.stopping.is_set():
                            return  # our claim goes stale and whoever runs next resumes
                        more.add(result.job_id)
                        self.scheduler.add_job(self.fire, args=[result.job_id, result.after],
                                               id=f"more-{result.job_id}-{result.after}", executor="fire",
                                               replace_existing=True, misfire_grace_time=None)
                elif result.outcome != "busy":
                    log.info("planned job %s: %s%s", result.job_id, result.outcome,
                             f" ({result.reason})" if result.reason else "")
        finally:
            with self._timer_lock:
                for done in taken:
                    if done not in more:
                        self._timed.pop(done, None)
                        self._taken.discard(done)

    def _take_due(self, job_id: int) -> list[int]:
        """`job_id` and the other timed jobs due by now that no firing holds, to be fired together (see
        dispatch.fire_many); empty when a firing already holds `job_id`. Their own timers are cancelled."""
        now = self.now()
        with self._timer_lock:
            if job_id in self._taken:
                return []
            taken = [job_id, *[other for other, when in self._timed.items()
                               if other != job_id and other not in self._taken and when <= now]][:FIRE_TOGETHER]
            self._taken.update(taken)
        with self._scheduler_lock:
            for other in taken[1:]:
                if not self.stopping.is_set():
                    try:
                        self.scheduler.remove_job(f"planned-{other}")
                    except JobLookupError:
                        pass  # already running on another thread: it finds the job taken and returns
        return taken

    def _give_back(self, job_id: int) -> None:
        """Release a job whose firing failed (a cut connection, say): our heartbeat would keep it ours."""
        try:
            with unit_of_work() as uow:
                reminders.release_job(uow.session, job_id, worker=self.worker, now=uow.now)
        except Exception:  # still no database: the claim lapses with the lease
            log.exception("could not give back planned job %s", job_id)

    def _run_now(self, job_id: str) -> None:
        """Bring an interval job's next run forward to now, unless we are stopping."""
        with self._scheduler_lock:
            if self.stopping.is_set():
                return
            try:
                self.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
            except Exception:  # its interval run finds the work anyway
                log.debug("could not run %s now", job_id, exc_info=True)

    def wake_load(self) -> None:
        """Load now: a job was planned to fall due within seconds."""
        self._run_now("load")

    def wake_delivery(self) -> None:
        """Deliver now: start the delivery job at once, or tell the running one to go on."""
        with self._mail_lock:
            self._mail_wanted.set()
            if self._delivering:
                return
            self._run_now("deliver")

    def deliver(self) -> None:
        with self._mail_lock:
            if self._delivering:
                return  # the running delivery sees the new rows; this interval tick has nothing to add
            self._delivering = True
        try:
            with self.app.app_context():
                batch = int(self.app.config["OUTBOX_BATCH_SIZE"])
                try:
                    if self._interrupted:
                        # Nothing of ours is in hand now: what is still claimed by us was left by the failed run.
                        released = outbox.release_own(db.session, worker=self.worker)
                        self._interrupted = False
                        if released:
                            log.warning("%d outbox message(s) an interrupted delivery held are queued again", released)
                    while not self.stopping.is_set():
                        self._mail_wanted.clear()
                        report = outbox.deliver(db.session, self.transports, self.app, worker=self.worker,
                                                clock=self.now, limit=batch, chunks=None, connections=self.transports.size,
                                                stopping=self.stopping.is_set, timeout=self.claim_timeout)
                        if not report.handled and not self._mail_wanted.is_set():
                            break
                except Exception:
                    self._interrupted = True
                    raise
                finally:
                    self.transports.close()
        finally:
            # Only now, with the connections closed: a delivery started before this point would run beside
            # this one (each with its own unmarked messages), and one started as it closes them would lose them.
            with self._mail_lock:
                self._delivering = False
                again = self._mail_wanted.is_set()  # mail queued after our last look waited for us
            if again:
                self._run_now("deliver")

    def expire_holds(self) -> None:
        with self.app.app_context(), unit_of_work() as uow:
            expired = signups.expire_holds(uow.session, now=uow.now,
                                           hold_hours=float(self.app.config["HOLD_EXPIRY_HOURS"]))
        if expired:
            log.info("%d pending hold(s) expired", expired)

    def plan_series(self) -> None:
        """Roll the series' window on: the occurrences it has reached become events."""
        with self.app.app_context(), unit_of_work() as uow:
            made = series_rules.plan_all(uow.session, now=uow.now, secret=self.app.config["SECRET_KEY"])
        if made:
            log.info("%d series occurrence(s) planned", made)


class HeldTransports:
    """`size` connections kept open across batches while the outbox drains; each call hands out the
    next, so the senders of one batch (at most `size`) each get a connection of their own. With `relay`
    (a standalone scheduler sending SMTP), each connection lives in a relay process of its own."""

    def __init__(self, config, size: int, *, relay: bool = False):
        self.size = size
        self.held = [HeldTransport(config, relay=relay) for _ in range(size)]
        self.turn = 0
        self.lock = threading.Lock()

    def __call__(self) -> HeldTransport:
        with self.lock:
            self.turn += 1
            return self.held[self.turn % self.size]

    def close(self) -> None:
        for held in self.held:
            held.close()

    def end(self) -> None:
        """Close the connections and end the relay processes (the scheduler stops)."""
        for held in self.held:
            held.end()


class HeldTransport:
    """A transport factory that keeps one connection open across batches while the outbox drains.

    Closed after an error (the next batch reconnects) and when the delivery run ends, so no idle
    connection is left for the server to time out.
    """

    def __init__(self, config, *, relay: bool = False):
        self.config = config
        self.relay = RelayTransport(config) if relay else None
        self.transport = None

    def __call__(self):
        return self

    def __enter__(self):
        if self.relay is not None:
            return self.relay.__enter__()
        if self.transport is None:
            self.transport = transport_from_config(self.config).__enter__()
        return self.transport

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.close()
        return False

    def close(self) -> None:
        if self.relay is not None:
            self.relay.close()
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.__exit__(None, None, None)

    def end(self) -> None:
        self.close()
        if self.relay is not None:
            self.relay.end()


# --- process model -----------------------------------------------------------------------------

#: Young objects collected after this many allocations, not Python's 700: a delivery batch's rows and
#: messages live for some milliseconds, and at 700 they were promoted to the old generation to die there,
#: where the full collections they caused paused every thread of the process for 80-160 ms.
GC_YOUNG_THRESHOLD = 10_000


#: How long a thread of a scheduler process may hold the GIL while another waits for it, not Python's 5 ms:
#: the thread that hands composed messages to the relay and the one that commits their marks each wait for
#: it after every few messages, and a relay left without its next message leaves the wire idle.
SWITCH_INTERVAL = 0.0005


def tune_process() -> None:
    """For a scheduler process, once set up: the objects of its set-up (the app, its templates and metadata)
    are moved out of the cyclic collector's reach, young collections made rarer, and the GIL passed sooner.

    bench/reminder_bench.py, 10,000 reminders: 0.9 s of collection pauses before, 0.3 s after; with the
    relay, 0.80 of plain smtplib's rate at a 5 ms switch interval, 0.98 at 0.5 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    sys.setswitchinterval(SWITCH_INTERVAL)


def start(app: Flask, *, mode: str) -> Runner:
    """Start the scheduler for this app in this process, once."""
    with _started_lock:
        runner = _started.get(id(app))
        if runner is None:
            runner = _started[id(app)] = Runner(app, mode=mode).start()
            if mode == "embedded":
                atexit.register(runner.shutdown)
        return runner


def _flask_run_serving() -> bool | None:
    """Under `flask run`: True in the process that serves (not the reloader's watcher parent).

    False under any other flask command; None outside the flask CLI (a WSGI server imported us).
    """
    from flask.helpers import get_debug_flag
    from werkzeug.serving import is_running_from_reloader

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    if ctx.command.name != "run":
        return False
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return is_running_from_reloader() or not reload


def init_app(app: Flask) -> None:
    """The `flask scheduler` commands, and the embedded scheduler when the mode asks for it."""
    app.cli.add_command(scheduler_cli)
    if app.config["SCHEDULER_MODE"] != "embedded":
        return
    autostart = app.config.get("SCHEDULER_AUTOSTART")  # True/False forces; None decides below
    if autostart is False or (autostart is None and app.config.get("TESTING")):
        return
    serving = True if autostart else _flask_run_serving()
    if serving:
        start(app, mode="embedded")
    elif serving is None:
        # A WSGI server (gunicorn, waitress): start in a worker that serves, at a request, so a
        # --preload master never owns the threads; of `gunicorn -w N` workers only the one holding
        # the instance folder's lock runs it, and another takes over if that worker dies.
        next_try = [0.0]

        @app.before_request
        def start_embedded_scheduler():
            if id(app) in _started or time.monotonic() < next_try[0]:
                return
            next_try[0] = time.monotonic() + EMBEDDED_LOCK_RETRY
            if hold_embedded_lock(app.instance_path):
                start(app, mode="embedded")


#: How often a worker without the embedded scheduler checks whether its holder has gone.
EMBEDDED_LOCK_RETRY = 5.0
_lock_files: list[int] = []


def hold_embedded_lock(instance_path: str) -> bool:
    """Take instance/scheduler.lock for the life of this process; False if another process has it."""
    fd = os.open(os.path.join(instance_path, "scheduler.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _lock_files.append(fd)  # never closed: the kernel releases it when the process ends
    return True


@click.group("scheduler")
def scheduler_cli():
    """Reminders and speaker jobs: run the scheduler, see what is due."""


@scheduler_cli.command("run")
@with_appcontext
def run_command():
    """Run a standalone scheduler until SIGTERM or Ctrl-C; run several for failover."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per tick
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    stop = threading.Event()

    def stopping(*_):
        stop.set()
        # A second signal while we stop (an impatient supervisor) must not kill the clean stop under way,
        # nor the exit after it: the interpreter puts the default handlers back as it shuts down.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stopping)
    tune_process()
    runner = start(app, mode="standalone")
    click.echo(f"Scheduler {runner.worker} running (poll {runner.poll:g} s). Stop with Ctrl-C or SIGTERM.")
    while not stop.wait(0.2):
        pass
    runner.shutdown()
    click.echo("Scheduler stopped.")


@scheduler_cli.command("status")
@with_appcontext
def status_command():
    """Show scheduler heartbeats and the next jobs due."""
    from flask import current_app

    now = clock.now()
    beats = db.session.scalars(select(SchedulerHeartbeat).order_by(SchedulerHeartbeat.beat_at.desc())).all()
    limit = stale_after(current_app.config)
    for beat in beats:
        age = (now - beat.beat_at).total_seconds()
        click.echo(f"{beat.id}  {beat.mode}  last beat {age:.1f} s ago{'  (stale)' if age > limit else ''}")
    if not beats:
        click.echo("No scheduler is running.")
    for job in reminders.next_due(db.session, now=now):
        click.echo(f"{job.due_at:%Y-%m-%d %H:%M:%S} UTC  {job.kind:<9} event {job.event_id}  {job.state}")
