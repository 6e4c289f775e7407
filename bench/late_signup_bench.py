"""Signups during a running reminder fan-out: each must get the reminder or "Starting soon", exactly one (issue 16).

Each run: a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards), the recording SMTP
server (bench/smtp_recorder.py), one `flask scheduler run` process with the default settings, and
gunicorn (--workers sync workers, SCHEDULER_MODE=off), all on 127.0.0.1. One published event
without double opt-in, --recipients confirmed registrations and a reminder ("starts in 10 minutes")
due a few seconds after set-up. --signups people sign up over real HTTP while it goes out: the
k-th once the recorder has seen k/--signups of the reminders, from the first one on (any left when
the last reminder has arrived follow at once). With --burst N, the first N instead sign up one
after the other as soon as the reminder job is running (the moment a signup can race the fan-out).

Once settled (every reminder at the recorder, every late registrant with a reminder or "Starting
soon", nothing queued or sending, the job finished; at most --settle-timeout seconds), the mails of
each late registrant are counted by subject ("Reminder: ..." and "Starting soon: ..."), and the
signups are told apart by the reminder job's state just before each was posted.

Prints per run how many got exactly one, both, or neither, and the target: all of them exactly one.

    .venv/bin/python bench/late_signup_bench.py [--runs 5] [--recipients 2000] [--signups 40]
        [--burst 0] [--workers 2] [--settle-timeout 120] [--logs DIR]

Exit status 0 whatever the figures, 1 if a run could not be set up.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.failover_bench import site, verdict  # noqa: E402
from bench.wakeup_bench import Signups  # noqa: E402
from tests.support import gunicorn, wait_for  # noqa: E402

REMINDER, STARTING_SOON = "Reminder: ", "Starting soon: "  # templates/email/reminder.txt, starting_soon.txt


def one_run(n: int, args) -> dict:
    with site("townhall-late-signup", args.logs) as world:
        world.scheduler("a")
        with gunicorn(world.instance, workers=args.workers) as base:
            event_id, emails, due = world.reminder_event(args.recipients, n=n)
            people = Signups(base, f"bench-{n}")
            late = [f"late{n}-{i}@example.org" for i in range(args.signups)]
            states: dict[str, str] = {}
            if args.burst:
                started = wait_for(lambda: world.job(event_id)[0] != "planned", 60, step=0.002)
            else:
                started = wait_for(lambda: world.recorder.count() >= 1, 60)
            if not started:
                raise RuntimeError(f"the reminder did not start:\n{world.log_tail('a')}")
            spread = args.signups - args.burst
            for i, email in enumerate(late):
                if i >= args.burst:
                    threshold = 1 + (i - args.burst) * args.recipients // spread
                    wait_for(lambda t=threshold: world.recorder.count() >= t or delivered(world, event_id), 60,
                             step=0.005)
                states[email] = world.job(event_id)[0]
                people.sign_up(email)
            wanted = set(emails)

            def settled() -> bool:
                kinds = mail_by_kind(world.recorder.read())
                return (wanted <= set(kinds[REMINDER]) and all(kinds[REMINDER][e] + kinds[STARTING_SOON][e] for e in late)
                        and delivered(world, event_id))
            ok = wait_for(settled, args.settle_timeout, step=0.2)
        world.stop_processes()  # what arrived is counted once nothing more can
        kinds = mail_by_kind(world.recorder.read())
    got = {email: (kinds[REMINDER][email], kinds[STARTING_SOON][email]) for email in late}
    exactly = sum(r + s == 1 for r, s in got.values())
    result = {"exactly": exactly, "both": sum(r >= 1 and s >= 1 for r, s in got.values()),
              "neither": sum(r + s == 0 for r, s in got.values()), "more": sum(r > 1 or s > 1 for r, s in got.values()),
              "lost": len(set(emails) - set(kinds[REMINDER])), "settled": ok}
    result["ok"] = exactly == len(late)
    by_state = Counter(states.values())
    wrong = Counter(states[email] for email, (r, s) in got.items() if r + s != 1)
    print(f"run {n}: {'settled' if ok else 'NOT settled'}; of {len(late)} late registrants, exactly one reminder-or-"
          f"starting-soon: {exactly} [{verdict(result['ok'])} all]; both: {result['both']}; neither: "
          f"{result['neither']}; a copy twice: {result['more']}; signed up while the job was "
          + ", ".join(f"{state}: {count}" for state, count in sorted(by_state.items()))
          + (" (not exactly one: " + ", ".join(f"{state} {count}" for state, count in sorted(wrong.items())) + ")"
             if wrong else "")
          + f"; reminders lost: {result['lost']}", flush=True)
    return result


def delivered(world, event_id: int) -> bool:
    """The reminder job has finished and none of the event's rows is left to send."""
    return world.job(event_id)[0] in ("done", "skipped") and world.pending(event_id) == 0


def mail_by_kind(records: list[dict]) -> dict[str, Counter]:
    """Subject prefix -> how many messages with it each recipient got."""
    kinds = {REMINDER: Counter(), STARTING_SOON: Counter()}
    for record in records:
        for prefix, counts in kinds.items():
            if (record["subject"] or "").startswith(prefix):
                counts.update(record["rcpt"])
    return kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="independent runs, each on a fresh database")
    parser.add_argument("--recipients", type=int, default=2000, help="registrations before the reminder")
    parser.add_argument("--signups", type=int, default=40, help="signups during the fan-out")
    parser.add_argument("--burst", type=int, default=0,
                        help="of these, how many sign up one after the other as soon as the job runs")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--settle-timeout", type=float, default=120.0)
    parser.add_argument("--logs", type=Path, default=None, help="keep the scheduler's logs in this folder")
    args = parser.parse_args()
    if min(args.runs, args.recipients, args.signups, args.workers) < 1 or not 0 <= args.burst < args.signups:
        parser.error("every count must be at least 1, and --burst below --signups")
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    print(f"late signups: PostgreSQL, one `flask scheduler run`, gunicorn -w {args.workers} (SCHEDULER_MODE=off), "
          f"{args.signups} signups ({args.burst} as soon as the job runs, the rest spread) over a "
          f"{args.recipients:,}-recipient reminder, {args.runs} run(s)", flush=True)
    results = []
    for n in range(1, args.runs + 1):
        try:
            results.append(one_run(n, args))
        except RuntimeError as error:
            print(f"run {n}: could not be run: {error}")
            return 1
    print(f"every late registrant got exactly one in {sum(r['ok'] for r in results)} of {len(results)} run(s); "
          f"both in total: {sum(r['both'] for r in results)}, neither: {sum(r['neither'] for r in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
