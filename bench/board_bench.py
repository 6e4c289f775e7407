"""The live question board under load (issue 19): --boards open boards while votes arrive at --rate per second.

Each run: a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards) with one published event
whose board visitors may read, --questions questions and --voters registrants; then gunicorn as the
README serves it (gevent workers, no --preload) with --workers workers.

Load, all from this process: an asyncio client opens --boards Server-Sent Event streams on the public
board (/events/<slug>/questions/live), --connect at a time, and reads every message; once all have their
first snapshot (and a settling moment), voters send votes through the server (POST .../vote with their
CSRF token, as board.js does) at --rate per second for --seconds, each vote on the question next in
turn, so votes on one question are --questions / --rate seconds apart.

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
import re
import sys
import tempfile
import time
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


class Board:
    """One open stream: when each (question, count) first arrived."""

    def __init__(self):
        self.seen: dict[tuple[int, int], float] = {}
        self.last: dict[int, int] = {}
        self.snapshot = asyncio.Event()
        self.dropped = False

    def take(self, data: bytes, at: float) -> None:
        for qid, votes in QUESTION.findall(data):
            qid, votes = int(qid), int(votes)
            for count in range(self.last.get(qid, -1) + 1, votes + 1):
                self.seen.setdefault((qid, count), at)
            self.last[qid] = max(votes, self.last.get(qid, 0))


async def open_board(url: str, path: str, board: Board, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(HOST, int(url.rsplit(":", 1)[1]))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    try:
        while not stop.is_set():
            line = await reader.readline()
            if not line:
                board.dropped = not stop.is_set()
                return
            if line.startswith(b"event: snapshot"):
                board.snapshot.set()
            elif b'"questions"' in line:
                board.take(line, time.monotonic())
    except (ConnectionError, asyncio.IncompleteReadError):
        board.dropped = not stop.is_set()
    finally:
        writer.close()


def voter_sessions(url: str, tokens: list[str]) -> list[tuple[requests.Session, str, str]]:
    """Each voter's session, board path and CSRF token, read from their board as a browser would."""
    out = []
    for token in tokens:
        session = requests.Session()
        page = session.get(f"{url}/r/{token}/questions", timeout=30).text
        match = CSRF_RE.search(page)
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
    boards = [Board() for _ in range(args.boards)]
    tasks = []
    started = time.monotonic()
    for n, board in enumerate(boards):
        tasks.append(asyncio.create_task(open_board(url, f"/events/{slug}/questions/live", board, stop)))
        if n % args.connect == args.connect - 1:
            await asyncio.gather(*(b.snapshot.wait() for b in boards[:n + 1]))
    await asyncio.wait_for(asyncio.gather(*(b.snapshot.wait() for b in boards)), 120)
    print(f"{args.boards} boards open in {time.monotonic() - started:.1f} s")
    await asyncio.sleep(2.0)  # every worker's LISTEN connection is up (its resync snapshot sent)

    loop = asyncio.get_running_loop()
    sent: list[tuple[int, int, float]] = []  # (question, count with this vote, sent at)
    failures = 0
    pairs = ((voters[(n // len(questions)) % len(voters)], questions[n % len(questions)])
             for n in range(int(args.rate * args.seconds)))

    def vote(voter, qid) -> tuple[float, dict | None]:
        session, page, csrf = voter
        at = time.monotonic()
        response = session.post(f"{page}/{qid}/vote", data={"csrf_token": csrf, "up": "1"}, timeout=30,
                                headers={"Accept": "application/json"})
        return at, response.json() if response.status_code == 200 else None

    pending = []
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
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

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
