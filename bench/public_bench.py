"""Public pages and the feed over HTTP against a hello served by the same gunicorn, in the same run.

Each run: a fresh database (a SQLite file, or a PostgreSQL database on 127.0.0.1:5432 dropped
afterwards) holding the demo event (`flask seed-demo`) and 1,000 more published events in 8
timezones and 5 tags (bench/calendar_bench.py's), then gunicorn (sync workers, --preload) serving
bench/wsgi_bench.py: app.py plus a minimal Flask hello at /bench/hello.

Load: an asyncio client in this process (wrk is not installed here) keeps --connections requests
in flight, each on a new connection (sync workers close them), for --seconds per route in
--rounds turns that alternate between the routes, so a busy moment of the machine falls on all.
Every request sends `Accept-Encoding: gzip`, as browsers and calendar apps do:

- hello: /bench/hello;
- event: the demo event's page; home: the home page (20 of the 1,000 events);
- feed: /calendar.ics, unchanged (the 200 from stored gzip bytes, about 25 KB);
- feed 304: /calendar.ics with If-None-Match of its gzip ETag.

The ratio is requests per second against hello's, as wrk would measure it; the client shares the
machine's cores with the server, so the script also prints the server's CPU time per request
(gunicorn master and workers, from /proc) and that ratio, which the client does not move.

Cold feed after a change: one event's title is changed through the domain (as the admin would),
FEED_CHECK_SECONDS later one GET of /calendar.ics (gzip) is timed from this process: the server
checks the data, reads the 1,000 events' versions, loads and writes the changed one (the others'
VEVENTs are kept per version), compresses the feed and sends it. Median of --cold tries, per event.
Reported beside it: the same after every event changed (all five series renamed), which writes
all 1,000 VEVENTs again, as a worker's first request does.

A run is void unless every request answered as expected (200, or 304 for the conditional GET).

Targets (issue 18): event and home pages at least 0.5x hello with p99 at most 50 ms; the unchanged
feed at least 0.5x hello, its 304 at least 0.8x; the cold feed at most 40 us per event.

    .venv/bin/python bench/public_bench.py [--db sqlite|postgres] [--runs 5] [--workers 2]
        [--connections 32] [--seconds 3] [--rounds 3] [--cold 7]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.calendar_bench import seed, server_cpu  # noqa: E402
from bench.signup_bench import Turns, drive  # noqa: E402
from tests.support import fresh_database, gunicorn, write_instance  # noqa: E402

HOST = "127.0.0.1"
PG_ADMIN = f"postgresql+psycopg://postgres@{HOST}:5432/postgres"
EVENTS = 1000
#: route -> (ratio to hello at least, p99 in ms at most or None)
TARGETS = {"event": (0.5, 50.0), "home": (0.5, 50.0), "feed": (0.5, None), "feed 304": (0.8, None)}
COLD_TARGET_US = 40.0


def request(path: str, port: int, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close", "Accept-Encoding: gzip",
             *headers, "", ""]
    return "\r\n".join(lines).encode()


def head(port: int, path: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        connection.request("GET", path, headers={"Accept-Encoding": "gzip"})
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def measure(port: int, routes: dict[str, tuple[bytes, int]], args) -> tuple[dict[str, Turns], dict[str, float]]:
    """Warm every route up on every worker, then let them take turns; each route's figures and server CPU."""
    def turn(name: str, into: Turns, *, connections: int, seconds: float) -> None:
        raw, _ = routes[name]
        asyncio.run(drive(port, lambda state, n, i: raw, into, connections=connections, seconds=seconds))

    warm = {name: Turns() for name in routes}
    for name in routes:
        turn(name, warm[name], connections=8, seconds=0.5)
    turns = {name: Turns() for name in routes}
    cpu = dict.fromkeys(routes, 0.0)
    for _ in range(args.rounds):
        for name in routes:
            before = server_cpu(str(port))
            turn(name, turns[name], connections=args.connections, seconds=args.seconds / args.rounds)
            cpu[name] += server_cpu(str(port)) - before
    failures = [f"{name}: statuses {dict(sorted(t.statuses.items()))}" for name, t in (warm | turns).items()
                if set(t.statuses) != {routes[name][1]}]
    if failures:
        raise RuntimeError("; ".join(failures))
    return turns, {name: cpu[name] / len(turns[name].latencies) * 1e6 for name in routes}


def change_one(n: int) -> None:
    """An organiser edits one event's title."""
    from sqlalchemy import select

    from scheduler.domain import events as event_rules
    from scheduler.extensions import db
    from scheduler.models import Event

    event = db.session.scalar(select(Event).where(Event.slug == "event-501"))
    event_rules.update_event(db.session, event, now=event.updated_at + timedelta(seconds=1),
                             title=f"Event 501, edited {n}")


def change_all(n: int) -> None:
    """Every series is renamed: every event's VEVENT (its CATEGORIES) changes."""
    from sqlalchemy import select

    from scheduler.extensions import db
    from scheduler.models import Tag

    for tag in db.session.scalars(select(Tag)):
        tag.name = f"{tag.slug} ({n})"


def cold_feed(app, port: int, tries: int, check_seconds: float, change) -> list[float]:
    """Seconds of one gzip GET of /calendar.ics after `change(n)`, `tries` times."""
    from scheduler.extensions import db

    timings = []
    _, before = head(port, "/calendar.ics")
    for n in range(tries):
        with app.app_context():
            change(n)
            db.session.commit()
            db.session.remove()
        time.sleep(check_seconds + 0.1)  # each worker re-checks the data at most this often
        start = time.perf_counter()
        status, headers = head(port, "/calendar.ics")
        timings.append(time.perf_counter() - start)
        if status != 200 or headers["ETag"] == before["ETag"] or headers.get("Content-Encoding") != "gzip":
            raise RuntimeError(f"cold feed: {status}, {headers.get('ETag')}")
        before = headers
    return timings


def one_run(args) -> dict:
    from scheduler import create_app
    from scheduler.cli import seed_demo
    from scheduler.extensions import db
    from scheduler.models import utcnow

    with tempfile.TemporaryDirectory(prefix="townhall-bench-") as tmpdir, \
            fresh_database(args.db, Path(tmpdir), prefix="townhall_bench", admin_url=PG_ADMIN) as url:
        tmp = Path(tmpdir)
        settings = {"SECRET_KEY": "bench-secret", "DATABASE_URL": url, "SCHEDULER_MODE": "off", "MAIL_URL": "",
                    "BASE_URL": f"http://{HOST}", "OUTBOX_DIR": str(tmp / "outbox"), "RATELIMIT_ENABLED": False}
        app = create_app({**settings, "TESTING": True})
        seed(app, EVENTS)
        with app.app_context():
            demo, _ = seed_demo(db.session, now=utcnow())
            demo_path = f"/events/{demo.slug}"
            db.session.commit()
            db.session.remove()
        instance = write_instance(tmp / "instance", **settings)
        try:
            with gunicorn(instance, app="bench.wsgi_bench:app", workers=args.workers) as base:
                port = int(base.rsplit(":", 1)[1])
                status, feed_headers = head(port, "/calendar.ics")
                assert status == 200 and feed_headers["Content-Encoding"] == "gzip", feed_headers
                routes = {
                    "hello": (request("/bench/hello", port), 200),
                    "event": (request(demo_path, port), 200),
                    "home": (request("/", port), 200),
                    "feed": (request("/calendar.ics", port), 200),
                    "feed 304": (request("/calendar.ics", port, f"If-None-Match: {feed_headers['ETag']}"), 304),
                }
                turns, cpu = measure(port, routes, args)
                cold = cold_feed(app, port, args.cold, app.config["FEED_CHECK_SECONDS"], change_one)
                rebuilt = cold_feed(app, port, 3, app.config["FEED_CHECK_SECONDS"], change_all)
        except RuntimeError as error:
            log = (instance / "gunicorn.log").read_text(errors="replace").splitlines()
            print(f"  VOID: {error}\n  " + "\n  ".join(log[-10:]))
            return {"void": True}
        finally:
            with app.app_context():
                db.engine.dispose()

    hello = turns["hello"]
    result = {"void": False, "cold_us": statistics.median(cold) / EVENTS * 1e6,
              "rebuilt_us": statistics.median(rebuilt) / EVENTS * 1e6}
    for name, t in turns.items():
        ratio, cpu_ratio = t.rate() / hello.rate(), cpu["hello"] / cpu[name]
        result[name] = {"ratio": ratio, "p99": t.percentile(0.99), "cpu_ratio": cpu_ratio}
        print(f"  {name:<9} {len(t.latencies):>6} requests {t.rate():7.0f} req/s  p50 {t.percentile(0.5):5.1f} ms  "
              f"p99 {t.percentile(0.99):6.1f} ms  server CPU {cpu[name]:5.0f} us/request"
              + ("" if name == "hello" else f"   = {ratio:.2f}x hello (CPU: {cpu_ratio:.2f}x)"))
    print(f"  cold feed after a change: {result['cold_us']:.1f} us per event "
          f"(median of {len(cold)}: {', '.join(f'{c * 1000:.0f}' for c in sorted(cold))} ms); every event changed: "
          f"{result['rebuilt_us']:.1f} us per event ({', '.join(f'{c * 1000:.0f}' for c in sorted(rebuilt))} ms)")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", type=int, default=5, help="independent runs, each on a fresh database and server")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--connections", type=int, default=32, help="concurrent client connections")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per route and run")
    parser.add_argument("--rounds", type=int, default=3, help="turns each route takes per run")
    parser.add_argument("--cold", type=int, default=7, help="cold feed requests per run")
    args = parser.parse_args()
    if min(args.runs, args.workers, args.connections, args.rounds, args.cold) < 1 or args.seconds <= 0:
        parser.error("--runs, --workers, --connections, --rounds and --cold must be at least 1, --seconds above 0")

    print(f"public pages and feed vs hello: {args.db}, gunicorn -w {args.workers} on {HOST}, {args.connections} "
          f"connections (asyncio client), {args.seconds:g} s per route in {args.rounds} turns, {args.runs} run(s)")
    results = []
    for n in range(1, args.runs + 1):
        print(f"run {n}:")
        results.append(one_run(args))
    valid = [r for r in results if not r["void"]]
    if not valid:
        print("no valid run")
        return 1
    print(f"{len(valid)} valid run(s) of {len(results)}: median (range)")
    for name, (ratio_target, p99_target) in TARGETS.items():
        ratios, p99s = [r[name]["ratio"] for r in valid], [r[name]["p99"] for r in valid]
        cpu = [r[name]["cpu_ratio"] for r in valid]
        met = sum(r[name]["ratio"] >= ratio_target and (p99_target is None or r[name]["p99"] <= p99_target)
                  for r in valid)
        print(f"  {name:<9} {statistics.median(ratios):.2f}x hello ({min(ratios):.2f}-{max(ratios):.2f}), "
              f"p99 {statistics.median(p99s):.0f} ms ({min(p99s):.0f}-{max(p99s):.0f}), "
              f"server CPU {statistics.median(cpu):.2f}x ({min(cpu):.2f}-{max(cpu):.2f}); target >= {ratio_target}x"
              + (f" with p99 <= {p99_target:.0f} ms" if p99_target else "") + f": met in {met} of {len(valid)}")
    colds = [r["cold_us"] for r in valid]
    met = sum(c <= COLD_TARGET_US for c in colds)
    print(f"  cold feed {statistics.median(colds):.1f} us per event ({min(colds):.1f}-{max(colds):.1f}); "
          f"target <= {COLD_TARGET_US:.0f}: met in {met} of {len(valid)}")
    rebuilt = [r["rebuilt_us"] for r in valid]
    print(f"  every event changed (reported): {statistics.median(rebuilt):.1f} us per event "
          f"({min(rebuilt):.1f}-{max(rebuilt):.1f})")
    return 0 if len(valid) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
