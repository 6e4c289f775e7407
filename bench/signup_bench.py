"""Signup POST against a hello route on the same server, in the same run: the rate ratio and the signup's p99.

Each run: a fresh database (a SQLite file, or a PostgreSQL database on 127.0.0.1:5432 dropped
afterwards) holding one published event with room for everyone and no double opt-in, so every POST
takes a seat and queues its confirmation mail. gunicorn (sync workers, --preload) serves
bench/wsgi_bench.py on 127.0.0.1: app.py plus a /bench/hello route that returns a fixed string.
A client of --connections concurrent connections (a new one per request, as sync workers close
them) drives the two routes in turns, so a busy moment of the machine falls on both. Every POST
carries its own address and a real CSRF token (one form fetch per connection, before the clock
starts); the run is void unless every request answered 200 and every POST stored a registration.

Targets (issue 15): PostgreSQL at least 0.15x hello with p99 at most 100 ms at 32 connections;
SQLite: the figure is reported, no target.

    .venv/bin/python bench/signup_bench.py [--db sqlite|postgres] [--runs 5] [--workers 4]
        [--connections 32] [--seconds 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import fresh_database, gunicorn, seed_event, write_instance  # noqa: E402

HOST = "127.0.0.1"  # the bench starts its own server and talks to nothing else
PG_ADMIN = f"postgresql+psycopg://postgres@{HOST}:5432/postgres"
TARGETS = {"postgres": (0.15, 100.0)}  # database -> (ratio to hello at least, signup p99 in ms at most)
REQUEST_TIMEOUT = 30.0  # seconds; a request that takes longer counts as failed (status 0)
TOKEN_RE = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')
COOKIE_RE = re.compile(rb"Set-Cookie: (session=[^;]+)", re.IGNORECASE)


async def fetch(port: int, raw: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a new connection; status 0 if it failed or took too long."""
    async def exchange():
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(raw)
            await writer.drain()
            return await reader.read(-1)
        finally:
            writer.close()

    try:
        data = await asyncio.wait_for(exchange(), REQUEST_TIMEOUT)
        return int(data[9:12]), data
    except (OSError, ValueError, TimeoutError):
        return 0, b""


def get(path: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()


def post(path: str, port: int, cookie: bytes, form: dict) -> bytes:
    body = urlencode(form).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n")
    return head.encode() + b"Cookie: " + cookie + b"\r\n\r\n" + body


class Turns:
    """Latencies and statuses of one route over all its turns, and the time those turns took."""

    def __init__(self):
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.elapsed = 0.0

    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def percentile(self, p: float) -> float:
        """In milliseconds, nearest rank."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


async def drive(port: int, make_request, into: Turns, *, connections: int, seconds: float, states=None) -> None:
    """`connections` loops, each sending one request after another for `seconds`."""
    states = states or [None] * connections
    deadline = 0.0

    async def loop(n: int):
        i = 0
        while time.perf_counter() < deadline:
            raw = make_request(states[n], n, i)
            start = time.perf_counter()
            status, _ = await fetch(port, raw)
            into.latencies.append(time.perf_counter() - start)
            into.statuses[status] = into.statuses.get(status, 0) + 1
            i += 1

    # A collection in the client would stall all its connections at once and show as server
    # latency, so the client collects before a turn and not during it.
    gc.collect()
    gc.disable()
    try:
        began = time.perf_counter()
        deadline = began + seconds
        await asyncio.gather(*(loop(n) for n in range(connections)))
        into.elapsed += time.perf_counter() - began
    finally:
        gc.enable()


def confirmed(url: str, event_id: int) -> int:
    import sqlalchemy as sa

    from scheduler.models import Registration

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.select(sa.func.count()).select_from(Registration).where(
                Registration.event_id == event_id, Registration.state == "confirmed"))
    finally:
        engine.dispose()


def measure(port: int, form_path: str, args) -> dict[str, Turns]:
    """Warm both routes up, then let them take turns; each route's figures, the warm-ups' apart."""
    run_id = uuid.uuid4().hex[:6]
    sent = iter(range(10**9))  # every POST gets an address of its own

    async def form_states(connections: int) -> list:
        """A session cookie and CSRF token per connection, as a browser gets them from the form."""
        async def one():
            status, page = await fetch(port, get(form_path, port))
            if status != 200:
                raise SystemExit(f"GET {form_path} answered {status}")
            return COOKIE_RE.search(page).group(1), TOKEN_RE.search(page).group(1).decode()
        return await asyncio.gather(*(one() for _ in range(connections)))

    def signup_request(state, n, i):
        cookie, token = state
        return post(form_path, port, cookie, {
            "csrf_token": token, "name": f"Bench {n}-{i}", "email": f"b{run_id}-{next(sent)}@example.org",
            "timezone": "America/New_York", "consent": "y"})

    def hello_request(state, n, i):
        return get("/bench/hello", port)

    def turn(route: str, into: Turns, *, connections: int, seconds: float) -> None:
        async def go():
            if route == "signup":
                states = await form_states(connections)
                await drive(port, signup_request, into, connections=connections, seconds=seconds, states=states)
            else:
                await drive(port, hello_request, into, connections=connections, seconds=seconds)
        asyncio.run(go())

    turns = {name: Turns() for name in ("hello warm-up", "signup warm-up", "hello", "signup")}
    # Every worker warms up on both routes (imports, templates, compiled statements), untimed.
    turn("hello", turns["hello warm-up"], connections=8, seconds=1.0)
    turn("signup", turns["signup warm-up"], connections=8, seconds=1.0)
    for _ in range(args.rounds):
        for route in ("hello", "signup"):
            turn(route, turns[route], connections=args.connections, seconds=args.seconds / args.rounds)
    return turns


def one_run(args) -> dict:
    """A fresh database and server, both routes measured, everything stopped and removed; this run's figures."""
    with tempfile.TemporaryDirectory(prefix="townhall-bench-") as tmpdir, \
            fresh_database(args.db, Path(tmpdir), prefix="townhall_bench", admin_url=PG_ADMIN) as url:
        tmp = Path(tmpdir)
        settings = {"SECRET_KEY": "bench-secret", "DATABASE_URL": url, "SCHEDULER_MODE": "off", "MAIL_URL": "",
                    "BASE_URL": f"http://{HOST}", "OUTBOX_DIR": str(tmp / "outbox"), "RATELIMIT_ENABLED": False}
        slug, event_id = seed_event(settings, title="Benchmark talk", capacity=1_000_000, double_opt_in=False,
                                    starts_at=datetime.now(UTC) + timedelta(days=30),
                                    join_url="https://meet.example.org/bench")
        instance = write_instance(tmp / "instance", **settings)
        try:
            with gunicorn(instance, app="bench.wsgi_bench:app", workers=args.workers) as base:
                turns = measure(int(base.rsplit(":", 1)[1]), f"/events/{slug}/signup", args)
        except RuntimeError as error:  # the server did not start: say why
            log = (instance / "gunicorn.log").read_text(errors="replace").splitlines()
            raise SystemExit(f"{error}; the end of its log:\n" + "\n".join(log[-25:])) from None
        stored = confirmed(url, event_id)

    hello, signup = turns["hello"], turns["signup"]
    failures = [f"{name}: statuses {dict(sorted(t.statuses.items()))}"
                for name, t in turns.items() if set(t.statuses) != {200}]
    posts = sum(turns["signup warm-up"].statuses.values()) + sum(signup.statuses.values())
    if stored != posts:
        failures.append(f"{stored} registrations stored for {posts} POSTs")
    for name, t in (("hello", hello), ("signup", signup)):
        print(f"  {name:<6} {len(t.latencies):>7} requests  {t.rate():8.1f} req/s  "
              f"p50 {t.percentile(0.50):6.1f} ms  p99 {t.percentile(0.99):6.1f} ms")
    result = {"ratio": signup.rate() / hello.rate(), "p99": signup.percentile(0.99), "failures": failures}
    print(f"  signup/hello = {result['ratio']:.3f}, signup p99 {result['p99']:.1f} ms"
          + ("" if not failures else "  VOID: " + "; ".join(failures)))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", type=int, default=5, help="independent runs, each on a fresh database and server")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--connections", type=int, default=32, help="concurrent client connections")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per route and run")
    parser.add_argument("--rounds", type=int, default=3, help="turns each route takes per run")
    args = parser.parse_args()
    if min(args.runs, args.workers, args.connections, args.rounds) < 1 or args.seconds <= 0:
        parser.error("--runs, --workers, --connections and --rounds must be at least 1, --seconds above 0")

    print(f"signup POST vs hello GET: {args.db}, gunicorn -w {args.workers} on {HOST}, {args.connections} "
          f"connections, {args.seconds:g} s per route in {args.rounds} turns, {args.runs} run(s)")
    results = []
    for n in range(1, args.runs + 1):
        print(f"run {n}:")
        results.append(one_run(args))

    valid = [r for r in results if not r["failures"]]
    if not valid:
        print("no valid run")
        return 1
    ratios = [r["ratio"] for r in valid]
    p99s = [r["p99"] for r in valid]
    print(f"{len(valid)} valid run(s) of {len(results)}: signup/hello median {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f}); signup p99 median {statistics.median(p99s):.0f} ms "
          f"(range {min(p99s):.0f}-{max(p99s):.0f} ms)")
    if args.db in TARGETS:
        ratio_target, p99_target = TARGETS[args.db]
        met = sum(r["ratio"] >= ratio_target and r["p99"] <= p99_target for r in valid)
        print(f"target: signup/hello >= {ratio_target} with p99 <= {p99_target:.0f} ms in the same run: "
              f"met in {met} of {len(valid)} run(s)")
    else:
        print(f"target: none on {args.db} (reported only)")
    return 0 if len(valid) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
