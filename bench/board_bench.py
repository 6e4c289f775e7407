"""The live question board under load (issue 19): --boards open boards while votes arrive at --rate per second.

Each run: a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards) with one published event
whose board visitors may read, --questions questions and --voters registrants; then gunicorn as the
README serves it (gevent workers, no --preload) with --workers workers.

Load, all from this process: an asyncio client opens --boards Server-Sent Event streams on the public
board (/events/<slug>/questions/live), --connect at a time, and reads every message (an asyncio Protocol:
one callback per read, no line splitting); once all have their first snapshot (and a settling moment),
voters send votes through the server (POST .../vote with their CSRF token, as board.js does) from a pool
of threads at --rate per second for --seconds, each vote on the question next in turn, so votes on one
question are --questions / --rate seconds apart.

Printed besides the latency: the vote request's own time, the CPU the server (gunicorn's processes) and
this client used while voting, how long each was runnable but waiting for a CPU (the kernel's schedstat:
on a machine shared with other work, the part of the latency that is waiting for a turn), and the load
average, so that a client or a machine that cannot keep up shows as such.

Measured per vote and per board: from just before the vote's POST was sent to the arrival, on that board,
of the first message whose count for the question includes the vote. The p99 is over every (vote,
board) pair; a pair whose board never got it counts as missing. A stream that ends before the client
closes it is a dropped connection.

Target (issue 19): p99 at most 1 s, nothing missing, no connection dropped.

    .venv/bin/python bench/board_bench.py [--boards 1000] [--rate 20] [--seconds 30] [--workers 2]
        [--questions 40] [--voters 40] [--connect 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.failover_bench import percentile, verdict  # noqa: E402
from tests.support import CSRF_RE, fresh_database, gunicorn, write_instance  # noqa: E402

HOST = "127.0.0.1"
PG_ADMIN = f"postgresql+psycopg://postgres@{HOST}:5432/postgres"
SECRET = "board-bench-secret"
TARGET_P99 = 1.0
QUESTION = re.compile(rb'"id":(\d+),"body":.*?"votes":(\d+)')


def seed(settings: dict, *, questions: int, voters: int) -> tuple[str, list[str], list[int]]:
    """The event (its slug), the voters' private tokens, and the questions' ids."""
    from sqlalchemy import update

    from scheduler import create_app
    from scheduler.domain import board
    from scheduler.domain import events as event_rules
    from scheduler.extensions import db
    from scheduler.models import Registration, utcnow
    from scheduler.tokens import manage_token, new_nonce, token_hash

    app = create_app({**settings, "TESTING": True})
    now = utcnow()
    with app.app_context():
        db.create_all()
        start = now + timedelta(days=1)
        event = event_rules.create_event(db.session, now=now, title="Board bench", starts_at=start,
                                         ends_at=start + timedelta(hours=2), timezone="UTC", board_public=True,
                                         capacity=None, double_opt_in=False)
        event_rules.publish_event(db.session, event, now=now)
        people = [Registration(event_id=event.id, name=f"Voter {n}", email=f"v{n}@bench.example.org",
                               email_key=f"v{n}@bench.example.org", question="", timezone="UTC", state="confirmed",
                               token_nonce=new_nonce(), reminders_opt_out=True, ics_sequence=0, consent_at=now,
                               email_verified_at=now, confirmed_at=now, created_at=now, updated_at=now)
                  for n in range(voters)]
        db.session.add_all(people)
        db.session.flush()
        tokens = [manage_token(SECRET, person) for person in people]
        for person, token in zip(people, tokens, strict=True):
            db.session.execute(update(Registration).where(Registration.id == person.id)
                               .values(token_hash=token_hash(token)))
        organiser = board.Actor(organiser=True)  # put up by a moderator: every voter may vote for each
        ids = [board.ask(db.session, event, organiser, body=f"Question {n} of the bench?", display_name="Bench",
                         now=now).id for n in range(questions)]
        db.session.commit()
        slug = event.slug
        db.session.remove()
        db.engine.dispose()
    return slug, tokens, ids


class Board(asyncio.Protocol):
    """One open stream, read as the bytes arrive (no line splitting): when each (question, count) first
    arrived. One callback per read keeps the client's own cost per message small next to the server's."""

    def __init__(self, request: bytes, stop: asyncio.Event):
        self.request, self.stop = request, stop
        self.seen: dict[tuple[int, int], float] = {}
        self.last: dict[int, int] = {}
        self.snapshot = asyncio.Event()
        self.closed = asyncio.Event()
        self.dropped = False
        self.pending = b""

    def connection_made(self, transport) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        # Only whole messages (a read may end inside one): up to the last blank line.
        data = self.pending + data
        end = data.rfind(b"\n\n") + 2
        whole, self.pending = data[:end], data[end:]
        if not whole:
            return
        if b"event: snapshot" in whole:
            self.snapshot.set()
        for qid, votes in QUESTION.findall(whole):
            qid, votes = int(qid), int(votes)
            for count in range(self.last.get(qid, -1) + 1, votes + 1):
                self.seen.setdefault((qid, count), at)
            self.last[qid] = max(votes, self.last.get(qid, 0))

    def connection_lost(self, exc) -> None:
        self.dropped = not self.stop.is_set()
        self.closed.set()


async def open_board(url: str, path: str, stop: asyncio.Event) -> tuple[asyncio.Transport, Board]:
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    return await loop.create_connection(lambda: Board(request, stop), HOST, int(url.rsplit(":", 1)[1]))


def scheduled(pid: int) -> tuple[float, float]:
    """Seconds the threads of `pid` spent on a CPU, and runnable but waiting for one (the kernel's schedstat)."""
    ran = waited = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            on_cpu, on_queue, _slices = (int(n) for n in task.read_text().split())
        except (OSError, ValueError):
            continue
        ran, waited = ran + on_cpu / 1e9, waited + on_queue / 1e9
    return ran, waited


def server_time(pid: int) -> tuple[float, float]:
    """Seconds every process under `pid` (the server: gunicorn's master and workers) spent on a CPU, and
    runnable but waiting for one (the kernel's schedstat, summed over their threads)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry.name))
    ran = waited = 0.0
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        todo.extend(children.get(child, []))
        on_cpu, on_queue = scheduled(child)
        ran, waited = ran + on_cpu, waited + on_queue
    return ran, waited


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def voter_sessions(url: str, tokens: list[str]) -> list[tuple[requests.Session, str, str]]:
    """Each voter's session, board path and CSRF token, read from their board as a browser would."""
    out = []
    for token in tokens:
        session = requests.Session()
        response = session.get(f"{url}/r/{token}/questions", timeout=30)
        match = CSRF_RE.search(response.text)
        if match is None:
            raise SystemExit(f"the voter's board answered {response.status_code} without a form: "
                             f"{response.text[:300]!r}")
        out.append((session, f"{url}/r/{token}/questions", match.group(1) or match.group(2)))
    return out


def run(args) -> bool:
    with tempfile.TemporaryDirectory() as tmp, \
            fresh_database("postgres", Path(tmp), prefix="townhall_board_bench", admin_url=PG_ADMIN) as db_url:
        settings = {"SECRET_KEY": SECRET, "DATABASE_URL": db_url, "SCHEDULER_MODE": "off", "MAIL_URL": "",
                    "BASE_URL": "http://townhall.test", "OUTBOX_DIR": str(Path(tmp) / "outbox"),
                    "RATELIMIT_ENABLED": False}
        slug, tokens, questions = seed(settings, questions=args.questions, voters=args.voters)
        worker = ("-k", "gevent", "--worker-connections", str(args.boards + 200))
        with gunicorn(write_instance(Path(tmp) / "instance", **settings), workers=args.workers, preload=False,
                      args=worker, timeout=60) as url:
            voters = voter_sessions(url, tokens)
            return asyncio.run(load(args, url, slug, voters, questions))


async def load(args, url: str, slug: str, voters, questions: list[int]) -> bool:
    stop = asyncio.Event()
    opened: list[tuple[asyncio.Transport, Board]] = []
    started = time.monotonic()
    path = f"/events/{slug}/questions/live"
    for n in range(0, args.boards, args.connect):
        batch = await asyncio.gather(*(open_board(url, path, stop) for _ in range(min(args.connect, args.boards - n))))
        opened += batch
        await asyncio.wait_for(asyncio.gather(*(board.snapshot.wait() for _t, board in batch)), 120)
    boards = [board for _t, board in opened]
    print(f"{args.boards} boards open in {time.monotonic() - started:.1f} s")
    await asyncio.sleep(2.0)  # every worker's LISTEN connection is up (its resync snapshot sent)

    loop = asyncio.get_running_loop()
    sent: list[tuple[int, int, float]] = []  # (question, count with this vote, sent at)
    failures = 0
    pairs = ((voters[(n // len(questions)) % len(voters)], questions[n % len(questions)])
             for n in range(int(args.rate * args.seconds)))

    answered_in: list[float] = []

    def vote(voter, qid) -> tuple[float, dict | None]:
        session, page, csrf = voter
        at = time.monotonic()
        response = session.post(f"{page}/{qid}/vote", data={"csrf_token": csrf, "up": "1"}, timeout=30,
                                headers={"Accept": "application/json"})
        answered_in.append(time.monotonic() - at)
        return at, response.json() if response.status_code == 200 else None

    pending = []
    loop.set_default_executor(ThreadPoolExecutor(max_workers=32))  # a slow answer does not hold the next vote back
    load_before = os.getloadavg()
    cpu_before = (time.monotonic(), own_cpu(), *server_time(os.getpid()), scheduled(os.getpid())[1])
    begin = time.monotonic()
    for n, (voter, qid) in enumerate(pairs):
        await asyncio.sleep(max(0.0, begin + n / args.rate - time.monotonic()))
        pending.append((qid, loop.run_in_executor(None, vote, voter, qid)))
    for qid, future in pending:
        at, answer = await future
        if answer is None or not answer["voted"]:
            failures += 1
        else:
            sent.append((qid, answer["votes"], at))
    await asyncio.sleep(2.0)  # the last votes' messages
    elapsed = time.monotonic() - cpu_before[0]
    client_cpu = (own_cpu() - cpu_before[1]) / elapsed
    ran, waited = server_time(os.getpid())
    server_cpu, server_waited = (ran - cpu_before[2]) / elapsed, (waited - cpu_before[3]) / elapsed
    client_waited = (scheduled(os.getpid())[1] - cpu_before[4]) / elapsed
    load_after = os.getloadavg()
    stop.set()
    for transport, _board in opened:
        transport.close()

    latencies, missing = [], 0
    for qid, count, at in sent:
        for board in boards:
            arrived = board.seen.get((qid, count))
            if arrived is None:
                missing += 1
            else:
                latencies.append(max(0.0, arrived - at))
    dropped = sum(b.dropped for b in boards)
    p50, p99, worst = (percentile(latencies, p) for p in (0.5, 0.99, 1.0)) if latencies else (0, 0, 0)
    ok = p99 <= TARGET_P99 and missing == 0 and dropped == 0 and failures == 0
    print(f"votes: {len(sent)} at {args.rate}/s ({failures} failed); pairs measured: {len(latencies)}, "
          f"missing {missing}; dropped connections: {dropped}")
    if answered_in:
        print(f"the vote's own request (POST to its answer): p50 {percentile(answered_in, 0.5) * 1000:.0f} ms, "
              f"p99 {percentile(answered_in, 0.99) * 1000:.0f} ms")
    print(f"CPU while voting, in cores: server {server_cpu:.2f} (gunicorn and its workers), client {client_cpu:.2f} "
          f"(this process); runnable but waiting for a CPU, in seconds per second: server {server_waited:.2f}, "
          f"client {client_waited:.2f}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} cores)")
    print(f"vote to arrival on every board: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {worst * 1000:.0f} ms (target p99 <= {TARGET_P99 * 1000:.0f} ms) {verdict(ok)}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boards", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--voters", type=int, default=40)
    parser.add_argument("--connect", type=int, default=100)
    args = parser.parse_args()
    if args.voters * args.questions < args.rate * args.seconds:
        parser.error("need --voters x --questions >= --rate x --seconds (each voter votes once per question)")
    return 0 if run(args) else 1


if __name__ == "__main__":
    sys.exit(main())
