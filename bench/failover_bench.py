"""Reminders when a scheduler process dies, loses its database connections, or is told to stop (issue 16).

Each run: a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards), the recording SMTP
server (bench/smtp_recorder.py), real `flask scheduler run` processes with the default settings, and
one published event with --recipients confirmed registrations whose reminder ("starts in 10
minutes") falls due a few seconds after set-up.

--mode kill: two schedulers (application_name townhall-a and townhall-b); at a random moment of the
  fan-out (once between the first and 80 % of the reminders have reached the recorder) the process
  holding the most claimed mail is SIGKILLed.
--mode terminate: the same, but every PostgreSQL backend of that process is ended with
  pg_terminate_backend (found by its application_name) instead; both processes must live on.
--mode shutdown: one scheduler gets SIGTERM in the middle of the fan-out ("fan-out"), at a random
  moment while it loads --load-jobs planned jobs every 0.5 s ("load"), within 0.5 s of its first
  heartbeat ("start"), or mid fan-out and again 0-300 ms later ("twice"); the phases take turns
  (or --phase picks one). Then a second process finishes the work.

Settled means: every recipient has a reminder at the recorder, no outbox row is queued or
sending, and the reminder job has finished; waited for up to --settle-timeout seconds, then the
run is reported as it stands. What arrived is counted after every process has stopped.

Prints per run: lost (registrations without a reminder), duplicates (extra copies, and how many
recipients got more than one), whether every extra copy has its first copy's Message-ID, seconds
from the kill/termination to the last message, which processes are alive; for shutdown, the exit
time and code of every SIGTERMed process. Then how many runs met each target:

    kill:      0 lost, at most 10 duplicates, the same Message-ID, all delivered within 15 s of the kill
    terminate: 0 lost, at most 10 duplicates, no process exits
    shutdown:  each SIGTERMed process exits within 5 s with code 0; 0 lost after the second process

    .venv/bin/python bench/failover_bench.py [--mode kill|terminate|shutdown] [--runs 10]
        [--recipients 2000] [--settle-timeout 120] [--phase fan-out|load|start|twice] [--seed N] [--logs DIR]

Exit status 0 whatever the figures, 1 if a run could not be set up.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from bench.smtp_recorder import Recorder  # noqa: E402
from tests.support import add_confirmed, flask_process, fresh_database, wait_for, write_instance  # noqa: E402

HOST = "127.0.0.1"  # every server here is started by the bench and serves this machine only
PG_ADMIN = f"postgresql+psycopg://postgres@{HOST}:5432/postgres"
OFFSET = 600  # the reminder's offset: "starts in 10 minutes"
LEAD = 5.0  # seconds from creating the event to its reminder's due time: the schedulers time it meanwhile
MAX_DUPLICATES = 10
TAKEOVER_SECONDS = 15.0
EXIT_SECONDS = 5.0
PHASES = ("fan-out", "load", "start", "twice")
FINISHED = ("done", "skipped", "cancelled")


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered) - 1e-9) - 1))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


class Site:
    """One run's world: instance folder, database, recorder, the bench's own app, and the processes started."""

    def __init__(self, tmp: Path, url: str, recorder: Recorder, logs: Path, settings: dict):
        from scheduler import create_app
        from scheduler.config import ENV_VARS
        from scheduler.extensions import db

        self.url, self.recorder, self.logs = url, recorder, logs
        # SCHEDULER_MODE off: web workers started on this folder run no scheduler; `flask scheduler run` does.
        # MAIL_CONNECTIONS: the scheduler's SMTP connections (issue 16); a version without it ignores it.
        self.config = dict(DATABASE_URL=url, MAIL_URL=recorder.url, SECRET_KEY="bench-secret",
                           BASE_URL="https://townhall.example.org", MAIL_FROM="Townhall <events@townhall.example.org>",
                           SCHEDULER_MODE="off", RATELIMIT_ENABLED=False, MAIL_CONNECTIONS=4) | settings
        self.instance = write_instance(tmp / "instance", **self.config)
        for name in ENV_VARS:
            os.environ.pop(name, None)
        os.environ["TOWNHALL_INSTANCE"] = str(self.instance)
        self.app = create_app()
        self.context = self.app.app_context()
        self.context.push()
        db.create_all()
        self.processes: dict[str, subprocess.Popen] = {}

    # --- processes ---------------------------------------------------------------------------

    def scheduler(self, name: str, **env) -> subprocess.Popen:
        """Start `flask scheduler run` as townhall-<name> (its application_name); returned once it beats."""
        process = flask_process(self.instance, "scheduler", "run", log=self.logs / f"scheduler-{name}.log",
                                DATABASE_URL=f"{self.url}?application_name=townhall-{name}", **env)
        self.processes[name] = process
        if not wait_for(lambda: self.beating(process.pid) or process.poll() is not None, 60, step=0.02):
            raise RuntimeError(f"scheduler {name} gave no heartbeat within 60 s:\n{self.log_tail(name)}")
        if process.poll() is not None:
            raise RuntimeError(f"scheduler {name} exited with {process.returncode}:\n{self.log_tail(name)}")
        return process

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.logs / f"scheduler-{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def stop_processes(self) -> None:
        """SIGTERM every process still running, and SIGKILL any that has not exited 15 s later."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        from scheduler.extensions import db

        self.stop_processes()
        db.session.remove()
        db.engine.dispose()
        self.context.pop()

    # --- what the database says --------------------------------------------------------------

    def scalar(self, statement):
        from scheduler.extensions import db

        try:
            return db.session.scalar(statement)
        finally:
            db.session.commit()  # no transaction left open while the schedulers work

    def rows(self, statement) -> list:
        from scheduler.extensions import db

        try:
            return list(db.session.execute(statement))
        finally:
            db.session.commit()

    def beating(self, pid: int) -> bool:
        from scheduler.models import SchedulerHeartbeat

        return bool(self.scalar(select(func.count()).select_from(SchedulerHeartbeat)
                                .where(SchedulerHeartbeat.id.like(f"%:{pid}:%"))))

    def pending(self, event_id: int) -> int:
        """Outbox rows of the event still to be sent (queued, or claimed and not marked)."""
        from scheduler.models import OutboxMessage

        return self.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.event_id == event_id, OutboxMessage.state.in_(("queued", "sending"))))

    def job(self, event_id: int) -> tuple[str, str | None]:
        """(state, claimed_by) of the event's reminder job."""
        from scheduler.models import PlannedJob

        return tuple(self.rows(select(PlannedJob.state, PlannedJob.claimed_by).where(
            PlannedJob.event_id == event_id, PlannedJob.kind == "reminder"))[0])

    def claims(self) -> dict[int, int]:
        """Process id -> outbox rows it has claimed and not yet marked."""
        from scheduler.models import OutboxMessage

        found = self.rows(select(OutboxMessage.claimed_by, func.count()).where(OutboxMessage.state == "sending")
                          .group_by(OutboxMessage.claimed_by))
        return {pid_of(worker): n for worker, n in found if worker}

    def terminate_backends(self, name: str) -> int:
        """End every PostgreSQL backend of townhall-<name>; how many there were."""
        return self.scalar(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND application_name = :name"
                                ).bindparams(name=f"townhall-{name}"))

    # --- what to send ------------------------------------------------------------------------

    def reminder_event(self, recipients: int, *, lead: float = LEAD, offset: int = OFFSET,
                       n: int = 0) -> tuple[int, list[str], float]:
        """A published event with `recipients` confirmed registrations and one reminder due `lead` seconds
        from now: (its id, the addresses, the due time as a timestamp)."""
        from scheduler.domain import events as event_rules
        from scheduler.extensions import db

        now = datetime.now(UTC)
        start = now + timedelta(seconds=lead + offset)
        event = event_rules.create_event(
            db.session, now=now, title=f"Bench event {n}", slug=f"bench-{n}", timezone="Europe/Berlin",
            starts_at=start, ends_at=start + timedelta(hours=1), join_url=f"https://meet.example.org/bench-{n}",
            reminder_offsets=[offset], briefing_enabled=False, nudge_enabled=False, thanks_enabled=False,
            double_opt_in=False)
        event_rules.publish_event(db.session, event, now=now)
        db.session.commit()
        emails = add_confirmed(db.session, event.id, recipients, now=now, domain="bench.test") if recipients else []
        return event.id, emails, (start - timedelta(seconds=offset)).timestamp()

    def planned_jobs(self, count: int, *, first: float, last: float) -> None:
        """`count` reminder jobs of an event without registrations, due between `first` and `last`
        seconds from now: work for every load of the lookahead, nothing to send (rows inserted in bulk)."""
        from scheduler.extensions import db
        from scheduler.models import PlannedJob

        event_id, _, _ = self.reminder_event(0, lead=last + 60, offset=3600, n=999_999)
        now = datetime.now(UTC)
        db.session.execute(insert(PlannedJob), [
            dict(event_id=event_id, kind="reminder", offset_seconds=10_000 + i, state="planned", messages_queued=0,
                 due_at=now + timedelta(seconds=first + (last - first) * i / count), created_at=now, updated_at=now)
            for i in range(count)])
        db.session.commit()

    def fate(self, event_id: int | None, addresses: list[str], since: float) -> str:
        """What the outbox says of these addresses' messages (of one event, or all): rows by state, and a few
        of them in full (times in seconds after `since`, a timestamp)."""
        from scheduler.models import OutboxMessage

        found = self.rows(select(OutboxMessage.to_addr, OutboxMessage.state, OutboxMessage.attempts,
                                 OutboxMessage.claimed_by, OutboxMessage.created_at, OutboxMessage.sent_at,
                                 OutboxMessage.last_error, OutboxMessage.message_id)
                          .where(OutboxMessage.to_addr.in_(addresses),
                                 *([] if event_id is None else [OutboxMessage.event_id == event_id]))
                          .order_by(OutboxMessage.id))
        states = Counter(row.state for row in found)
        without = len(set(addresses) - {row.to_addr for row in found})

        def when(moment) -> str:
            return "-" if moment is None else f"{moment.timestamp() - since:+.3f} s"
        return (f"outbox rows {dict(states)}, {without} address(es) without a row; "
                + "; ".join(f"{row.to_addr}: {row.state}, {row.attempts} attempt(s), claimed by {row.claimed_by}, "
                            f"queued {when(row.created_at)}, sent_at {when(row.sent_at)}, {row.message_id}, error {(row.last_error or '-')[:120]}"
                            for row in found[:4]))

    def settle(self, event_id: int, emails: list[str], timeout: float) -> bool:
        """Wait until every address has its reminder, no row is left to send and the job has finished."""
        wanted = set(emails)

        def settled() -> bool:
            return (wanted <= set(self.recorder.recipients()) and self.pending(event_id) == 0
                    and self.job(event_id)[0] in FINISHED)
        return wait_for(settled, timeout, step=0.2)


def pid_of(worker: str) -> int:
    """The process id in a worker name (host:pid:random)."""
    parts = worker.split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else -1


@contextmanager
def site(prefix: str, logs: Path | None, **settings):
    """A Site for one run; the schedulers' logs go to `logs` (a new folder there) or into the run's temporary folder."""
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as tmpdir:
        tmp = Path(tmpdir)
        if logs is not None:
            logs = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=logs))
        with fresh_database("postgres", tmp, prefix=prefix.replace("-", "_"), admin_url=PG_ADMIN) as url, \
                Recorder(tmp / "mail.jsonl") as recorder:
            world = Site(tmp, url, recorder, logs or tmp, settings)
            try:
                yield world
            finally:
                world.close()


def stop(process: subprocess.Popen, *, again_after: float | None = None,
         patience: float = 30.0) -> tuple[float | None, int | None]:
    """SIGTERM (and a second one `again_after` seconds later if still running); (seconds to exit, code),
    or (None, None) if it had not exited after `patience` seconds (then it is killed)."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    if again_after is not None:
        wait_for(lambda: process.poll() is not None or time.monotonic() - began >= again_after, again_after + 1,
                 step=0.005)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    try:
        process.wait(patience)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None, None
    return time.monotonic() - began, process.returncode


def delivered(recorder: Recorder, emails: list[str]) -> dict:
    """Lost, duplicates, and whether each extra copy carries its first copy's Message-ID."""
    ids: dict[str, list[str]] = {email: [] for email in emails}
    for record in recorder.read():
        for rcpt in record["rcpt"]:
            if rcpt in ids:
                ids[rcpt].append(record["message_id"])
    repeated = {email: found for email, found in ids.items() if len(found) > 1}
    lost = [email for email, found in ids.items() if not found]
    return {"lost": len(lost), "lost_addresses": lost, "repeated_addresses": sorted(repeated),
            "duplicates": sum(len(found) - 1 for found in repeated.values()), "repeated": len(repeated),
            "same_id": sum(1 for found in repeated.values() if len(set(found)) == 1)}


def diagnose(world: Site, event_id: int, result: dict, since: float) -> str:
    """The outbox rows behind what was lost or sent twice, and when the recorder accepted each copy
    sent twice (times after the kill, termination or signal)."""
    lines = []
    if result["lost"]:
        lines.append(f"    lost: {world.fate(event_id, result['lost_addresses'], since)}")
    if result["duplicates"]:
        repeated = result["repeated_addresses"]
        times = {email: [f"{r['t'] - since:+.3f} s" for r in world.recorder.read() if email in r["rcpt"]]
                 for email in repeated[:4]}
        lines.append(f"    sent twice: {world.fate(event_id, repeated, since)}; accepted at "
                     + "; ".join(f"{email} {', '.join(at)}" for email, at in times.items()))
    for name in world.processes:
        noted = [line for line in world.log_tail(name, 200_000).splitlines() if " WARNING " in line or " ERROR " in line]
        if noted:
            lines.append(f"    scheduler {name} logged {len(noted)} warning(s)/error(s), the last: " + " | ".join(noted[-3:]))
    return "\n".join(lines)


def wait_for_progress(recorder: Recorder, count: int, timeout: float) -> bool:
    return wait_for(lambda: recorder.count() >= count, timeout, step=0.005)


# --- kill and terminate --------------------------------------------------------------------------

def failover_run(n: int, args, rng: random.Random) -> dict:
    with site("townhall-failover", args.logs) as world:
        processes = {name: world.scheduler(name) for name in ("a", "b")}
        event_id, emails, due = world.reminder_event(args.recipients, n=n)
        at = rng.randint(1, max(1, int(0.8 * args.recipients)))
        if not wait_for_progress(world.recorder, at, due - time.time() + 120):
            raise RuntimeError(f"only {world.recorder.count()} reminders arrived:\n{world.log_tail('a')}")
        claims = world.claims()
        pids = {process.pid: name for name, process in processes.items()}
        busiest = max(claims.get(pid, 0) for pid in pids)
        victim = rng.choice(sorted(name for pid, name in pids.items() if claims.get(pid, 0) == busiest))
        holder = pid_of(world.job(event_id)[1] or "")
        arrived = world.recorder.count()
        if args.mode == "kill":
            processes[victim].send_signal(signal.SIGKILL)
            struck = time.time()
            processes[victim].wait()
            what = f"SIGKILLed {victim}"
        else:
            ended = world.terminate_backends(victim)
            struck = time.time()
            what = f"ended the {ended} PostgreSQL backend(s) of {victim}"
        print(f"run {n}: {what} (pid {processes[victim].pid}) after {arrived:,} of {args.recipients:,} reminders "
              f"had arrived; it held {claims.get(processes[victim].pid, 0)} claimed message(s)"
              f"{' and the fan-out job' if holder == processes[victim].pid else ''}")
        settled = world.settle(event_id, emails, args.settle_timeout)
        waited = time.time() - struck
        alive = {name: process.poll() is None for name, process in processes.items()}
        left, job_state = world.pending(event_id), world.job(event_id)[0]
        for process in processes.values():
            if process.poll() is None:
                stop(process, patience=15)
        result = delivered(world.recorder, emails) | {"settled": settled, "alive": alive, "victim": victim}
        last = max(record["t"] for record in world.recorder.read())
        result["after"] = last - struck
        if result["lost"] or result["duplicates"]:
            diagnosis = diagnose(world, event_id, result, struck)
    print(f"  {'settled' if settled else f'NOT settled after {waited:.0f} s ({left} row(s) queued/sending, job {job_state})'}; "
          f"last message {result['after']:.1f} s after the {args.mode}; processes alive at the end: "
          + ", ".join(f"{name} {'yes' if up else 'no'}" for name, up in alive.items()))
    if result["lost"] or result["duplicates"]:
        print(diagnosis)
    checks = {"lost": result["lost"] == 0, "duplicates": result["duplicates"] <= MAX_DUPLICATES,
              "same_id": result["same_id"] == result["repeated"]}
    if args.mode == "kill":
        checks["takeover"] = settled and result["after"] <= TAKEOVER_SECONDS
    else:
        checks["alive"] = all(alive.values())
    result["checks"] = checks
    line = (f"  lost {result['lost']} [{verdict(checks['lost'])} 0]; duplicates {result['duplicates']} "
            f"({result['repeated']} recipient(s)) [{verdict(checks['duplicates'])} <= {MAX_DUPLICATES}]; "
            f"with the first copy's Message-ID: {result['same_id']} of {result['repeated']} "
            f"[{verdict(checks['same_id'])}]")
    if args.mode == "kill":
        line += f"; all delivered within {TAKEOVER_SECONDS:g} s of the kill [{verdict(checks['takeover'])}]"
    else:
        line += f"; no process exited [{verdict(checks['alive'])}]"
    print(line, flush=True)
    return result


def failover_summary(results: list[dict], mode: str) -> None:
    runs = len(results)

    def met(name: str) -> int:
        return sum(r["checks"][name] for r in results)

    duplicates = [r["duplicates"] for r in results]
    after = [r["after"] for r in results]
    print(f"{mode}: {runs} run(s)")
    print(f"  0 lost: met in {met('lost')} of {runs} (lost: max {max(r['lost'] for r in results)})")
    print(f"  at most {MAX_DUPLICATES} duplicates: met in {met('duplicates')} of {runs} "
          f"(median {statistics.median(duplicates):g}, max {max(duplicates)})")
    print(f"  every duplicate with its first copy's Message-ID: met in {met('same_id')} of {runs}")
    if mode == "kill":
        print(f"  all delivered within {TAKEOVER_SECONDS:g} s of the kill: met in {met('takeover')} of {runs} "
              f"(last message after the kill: median {statistics.median(after):.1f} s, max {max(after):.1f} s)")
    else:
        print(f"  no process exits: met in {met('alive')} of {runs}")
    print(f"  every target met in {sum(all(r['checks'].values()) for r in results)} of {runs} run(s)")


# --- shutdown ------------------------------------------------------------------------------------

LOAD_POLL = 0.5  # the "load" phase's SCHEDULER_POLL_SECONDS: loads of the whole lookahead twice a second


def shutdown_run(n: int, args, rng: random.Random) -> dict:
    phase = args.phase or PHASES[(n - 1) % len(PHASES)]
    with site("townhall-shutdown", args.logs) as world:
        env = {}
        if phase == "load":
            world.planned_jobs(args.load_jobs, first=40, last=58)  # timed by every load, fired after the run
            env["SCHEDULER_POLL_SECONDS"] = str(LOAD_POLL)
        if phase in ("start", "load"):  # due once the SIGTERM has been sent: the second process sends it all
            event_id, emails, due = world.reminder_event(args.recipients, lead=LEAD + 5, n=n)
        first = world.scheduler("a", **env)
        if phase == "start":
            time.sleep(rng.uniform(0, 0.5))  # a random moment, not a wait for anything
            when = "within 0.5 s of its first heartbeat"
        elif phase == "load":
            time.sleep(rng.uniform(LOAD_POLL, 3 * LOAD_POLL))
            when = f"while it loads {args.load_jobs:,} planned jobs every {LOAD_POLL:g} s"
        else:
            event_id, emails, due = world.reminder_event(args.recipients, n=n)
            at = rng.randint(1, max(1, int(0.8 * args.recipients)))
            if not wait_for_progress(world.recorder, at, due - time.time() + 120):
                raise RuntimeError(f"only {world.recorder.count()} reminders arrived:\n{world.log_tail('a')}")
            when = f"after {world.recorder.count():,} of {args.recipients:,} reminders had arrived"
        signalled = time.time()
        seconds, code = stop(first, again_after=rng.uniform(0, 0.3) if phase == "twice" else None)
        ok_exit = seconds is not None and seconds <= EXIT_SECONDS and code == 0
        exit_text = (f"exited after {seconds:.2f} s with code {code}" if seconds is not None
                     else "had not exited after 30 s (killed)")
        print(f"run {n} ({phase}): SIGTERM{' twice' if phase == 'twice' else ''} {when}: {exit_text} "
              f"[{verdict(ok_exit)} <= {EXIT_SECONDS:g} s, code 0]")
        if not ok_exit:
            tail = world.log_tail("a", 1500).splitlines()
            if seconds is not None and tail and tail[-1] == "Scheduler stopped.":
                print("  (its log ends with 'Scheduler stopped.': the signal came while the interpreter was exiting)")
            else:
                print("  its log ends:\n    " + "\n    ".join(tail[-12:]))
        second = world.scheduler("b")
        settled = world.settle(event_id, emails, args.settle_timeout)
        left, job_state = world.pending(event_id), world.job(event_id)[0]
        then, then_code = stop(second)
        result = delivered(world.recorder, emails) | {"phase": phase, "seconds": seconds, "code": code,
                                                      "settled": settled, "second": then, "second_code": then_code}
        if result["lost"] or result["duplicates"]:
            diagnosis = diagnose(world, event_id, result, signalled)
    result["checks"] = {"exit": ok_exit, "lost": result["lost"] == 0,
                        "second": then is not None and then <= EXIT_SECONDS and then_code == 0}
    print(f"  second process: {'settled' if settled else f'NOT settled ({left} row(s) queued/sending, job {job_state})'}; "
          f"lost {result['lost']} [{verdict(result['checks']['lost'])} 0]; duplicates {result['duplicates']}; "
          f"it then " + (f"exited after {then:.2f} s with code {then_code}" if then is not None
                         else "had not exited after 30 s") + f" [{verdict(result['checks']['second'])}]",
          flush=True)
    if result["lost"] or result["duplicates"]:
        print(diagnosis, flush=True)
    return result


def shutdown_summary(results: list[dict]) -> None:
    exits = [r["seconds"] for r in results if r["seconds"] is not None]
    print(f"shutdown: {len(results)} run(s)")
    for phase in PHASES:
        mine = [r for r in results if r["phase"] == phase]
        if mine:
            times = [r["seconds"] for r in mine if r["seconds"] is not None]
            print(f"  {phase}: exited within {EXIT_SECONDS:g} s with code 0 in {sum(r['checks']['exit'] for r in mine)} "
                  f"of {len(mine)}; hung {len(mine) - len(times)}; exit time "
                  + (f"median {statistics.median(times):.2f} s, max {max(times):.2f} s" if times else "-"))
    if exits:
        print(f"  all SIGTERMs: exit time p50 {percentile(exits, 0.5):.2f} s, max {max(exits):.2f} s; codes "
              f"{sorted({r['code'] for r in results if r['code'] is not None})}")
    print(f"  0 lost after the second process: met in {sum(r['checks']['lost'] for r in results)} of {len(results)}; "
          f"duplicates in total {sum(r['duplicates'] for r in results)}")
    print(f"  the second process (plain SIGTERM when idle) exited within {EXIT_SECONDS:g} s with code 0 in "
          f"{sum(r['checks']['second'] for r in results)} of {len(results)}")
    print(f"  every target met in {sum(all(r['checks'].values()) for r in results)} of {len(results)} run(s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("kill", "terminate", "shutdown"), default="kill")
    parser.add_argument("--runs", type=int, default=None, help="10 (kill, terminate) or 50 (shutdown)")
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--settle-timeout", type=float, default=120.0,
                        help="seconds to wait for everything to be delivered before reporting as it stands")
    parser.add_argument("--phase", choices=PHASES, help="shutdown: only this phase (default: each in turn)")
    parser.add_argument("--load-jobs", type=int, default=2000, help="shutdown, load phase: planned jobs to load")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="keep the schedulers' logs in this folder")
    args = parser.parse_args()
    args.runs = args.runs or (50 if args.mode == "shutdown" else 10)
    if min(args.runs, args.recipients) < 1:
        parser.error("--runs and --recipients must be at least 1")
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    print(f"failover bench, mode {args.mode}: PostgreSQL, {args.recipients:,} recipients, {args.runs} run(s), "
          f"settle timeout {args.settle_timeout:g} s, seed {seed}", flush=True)
    results = []
    for n in range(1, args.runs + 1):
        try:
            results.append((shutdown_run if args.mode == "shutdown" else failover_run)(n, args, rng))
        except RuntimeError as error:
            print(f"run {n}: could not be run: {error}")
            return 1
    if args.mode == "shutdown":
        shutdown_summary(results)
    else:
        failover_summary(results, args.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
