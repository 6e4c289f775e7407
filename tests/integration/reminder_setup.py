"""Setup for the scheduler tests: bulk registrations, an SMTP sink that notes arrival times."""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from datetime import datetime

from sqlalchemy import insert

from scheduler.models import Registration
from tests.conftest import SMTPSink

ZONES = ("Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo")


def add_confirmed(session, event_id: int, count: int, *, now: datetime, domain: str = "example.org") -> list[str]:
    """Insert `count` confirmed registrations in one statement (signing up one by one is slow); their emails."""
    emails = [f"person{i}@e{event_id}.{domain}" for i in range(count)]
    session.execute(insert(Registration), [
        dict(event_id=event_id, name=f"Person {i}", email=email, email_key=email, question="",
             timezone=ZONES[i % len(ZONES)], state="confirmed", token_nonce=secrets.token_hex(16),
             reminders_opt_out=False, ics_sequence=0, consent_at=now, created_at=now, updated_at=now,
             email_verified_at=now, confirmed_at=now)
        for i, email in enumerate(emails)
    ])
    session.commit()
    return emails


class TimedSink(SMTPSink):
    """The conftest SMTP sink, also noting when each message arrived (time.time())."""

    def __init__(self):
        super().__init__()
        self.arrivals: list[float] = []
        self.addresses: list[str] = []
        # Re-entrant: predicates passed to wait_until() read the messages under the same lock.
        self.lock = threading.RLock()
        self.received = threading.Condition(self.lock)

    async def handle_DATA(self, server, session, envelope):
        arrived = time.time()
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            with self.lock:
                self.arrivals.append(arrived)
                self.addresses.append(self.messages[-1]["To"].addresses[0].addr_spec)
        return reply

    def recipients(self, suffix: str = "") -> Counter:
        """How many messages each address received (addresses parsed once, on arrival)."""
        with self.lock:
            return Counter(a for a in self.addresses if a.endswith(suffix))

    def first_arrival(self, suffix: str = "") -> float | None:
        with self.lock:
            times = [t for t, a in zip(self.arrivals, self.addresses, strict=True) if a.endswith(suffix)]
        return min(times) if times else None

    def wait_until(self, predicate, timeout: float) -> bool:
        with self.received:
            return self.received.wait_for(predicate, timeout=timeout)
