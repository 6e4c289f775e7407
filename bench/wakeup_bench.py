"""From a signup's HTTP response to its confirmation at the SMTP server, with web workers that run no scheduler (issue 16).

Each run: a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards), the recording SMTP
server (bench/smtp_recorder.py), one `flask scheduler run` process with the default settings, and
gunicorn (--workers sync workers, SCHEDULER_MODE=off) serving the app, all on 127.0.0.1. One
published event without double opt-in, so that every signup takes a seat and queues its
confirmation. After --warm-up signups (not counted), --signups signups are posted over real HTTP,
one every --spacing seconds, each with its own address and the form's CSRF token; for each, the
time from its response to the recorder accepting its confirmation.

Prints per run p50, p99 and max of that time (negative: the mail was accepted before the response
had been read), and whether p99 is within the target: 200 ms.

    .venv/bin/python bench/wakeup_bench.py [--runs 5] [--signups 100] [--spacing 0.05] [--workers 2]
        [--warm-up 5] [--logs DIR]

Exit status 0 whatever the figures, 1 if a run could not be set up.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.failover_bench import percentile, site, verdict  # noqa: E402
from tests.support import gunicorn, wait_for  # noqa: E402

TARGET_MS = 200.0
SLOW = 1.0  # seconds: a confirmation later than this is looked into (its outbox row, the scheduler's warnings)
TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


class Signups:
    """Signs people up to one event over HTTP as a browser would: the form's cookie and CSRF token, then POSTs."""

    def __init__(self, base: str, slug: str):
        self.http = requests.Session()
        self.path = f"{base}/events/{slug}/signup"
        page = self.http.get(self.path, timeout=30)
        if page.status_code != 200 or not TOKEN.search(page.text):
            raise RuntimeError(f"GET {self.path} answered {page.status_code} without a CSRF token")
        self.token = TOKEN.search(page.text).group(1)

    def sign_up(self, email: str) -> float:
        """POST one signup; the time (time.time()) its response was read."""
        response = self.http.post(self.path, timeout=30, data={
            "csrf_token": self.token, "name": f"Late {email.split('@')[0]}", "email": email,
            "timezone": "Europe/Berlin", "consent": "y", "question": "", "website": ""})
        done = time.time()
        if response.status_code != 200:
            raise RuntimeError(f"the signup of {email} answered {response.status_code}")
        return done


def one_run(n: int, args) -> dict:
    with site("townhall-wakeup", args.logs) as world:
        event_id, _, _ = world.reminder_event(0, lead=2 * 86400, offset=3600, n=n)
        world.scheduler("a")
        with gunicorn(world.instance, workers=args.workers) as base:
            people = Signups(base, f"bench-{n}")
            warm = [f"warm{i}@example.org" for i in range(args.warm_up)]
            for email in warm:
                people.sign_up(email)
            if not wait_for(lambda: set(warm) <= set(world.recorder.recipients()), 30):
                raise RuntimeError(f"the warm-up confirmations did not arrive:\n{world.log_tail('a')}")
            answered: dict[str, float] = {}
            began = time.monotonic()
            for i in range(args.signups):
                # Spaced from the start, not from the last answer: a slow response does not spread the rest.
                wait_for(lambda i=i: time.monotonic() - began >= i * args.spacing, args.spacing * 2 + 1, step=0.002)
                email = f"wake{i}@example.org"
                answered[email] = people.sign_up(email)
            arrived = wait_for(lambda: set(answered) <= set(world.recorder.recipients()), 60)
        accepted: dict[str, float] = {}
        for record in world.recorder.read():
            for rcpt in record["rcpt"]:
                accepted.setdefault(rcpt, record["t"])
        slow = [email for email in answered if accepted.get(email, float("inf")) - answered[email] > SLOW]
        if slow:  # what the outbox says of them, before the database goes
            print(f"  {len(slow)} confirmation(s) took more than {SLOW:g} s (times after the first one's response): {world.fate(None, slow, answered[slow[0]])}")
            for line in world.log_tail("a", 200_000).splitlines():
                if " WARNING " in line or " ERROR " in line:
                    print(f"    scheduler: {line[:300]}")
    delays = [1000 * (accepted[email] - answered[email]) for email in answered if email in accepted]
    missing = len(answered) - len(delays)
    result = {"p50": percentile(delays, 0.5), "p99": percentile(delays, 0.99), "max": max(delays),
              "missing": missing, "early": sum(d < 0 for d in delays)}
    result["ok"] = arrived and result["p99"] <= TARGET_MS
    print(f"run {n}: {len(delays)} of {len(answered)} confirmations arrived; response to acceptance p50 "
          f"{result['p50']:.0f} ms, p99 {result['p99']:.0f} ms, max {result['max']:.0f} ms "
          f"({result['early']} accepted before the response was read) [{verdict(result['ok'])} p99 <= {TARGET_MS:.0f} ms]",
          flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="independent runs, each on a fresh database")
    parser.add_argument("--signups", type=int, default=100)
    parser.add_argument("--spacing", type=float, default=0.05, help="seconds between two signups")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--warm-up", type=int, default=5, help="signups before the measured ones, not counted")
    parser.add_argument("--logs", type=Path, default=None, help="keep the scheduler's logs in this folder")
    args = parser.parse_args()
    if min(args.runs, args.signups, args.workers) < 1 or args.spacing < 0 or args.warm_up < 0:
        parser.error("--runs, --signups and --workers must be at least 1, --spacing and --warm-up not negative")
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    print(f"wake-up: signup response to confirmation at SMTP, PostgreSQL, gunicorn -w {args.workers} "
          f"(SCHEDULER_MODE=off) and one `flask scheduler run`, {args.signups} signups {args.spacing * 1000:.0f} ms "
          f"apart, {args.runs} run(s)", flush=True)
    results = []
    for n in range(1, args.runs + 1):
        try:
            results.append(one_run(n, args))
        except RuntimeError as error:
            print(f"run {n}: could not be run: {error}")
            return 1
    p99s = [r["p99"] for r in results]
    print(f"p99 median {statistics.median(p99s):.0f} ms (range {min(p99s):.0f}-{max(p99s):.0f} ms); p50 median "
          f"{statistics.median(r['p50'] for r in results):.0f} ms; at most {TARGET_MS:.0f} ms (p99) in "
          f"{sum(r['ok'] for r in results)} of {len(results)} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
