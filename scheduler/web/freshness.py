"""Has the data behind a feed or page changed? A cheap query's answer, kept a moment per process.

Feeds and cached pages both ask one small query (counts and update times, or ids and versions)
whether what they serve is still current, and key their stored bytes by its answer. Asking on
every request would cost a query each; instead the answer is kept for a few seconds per process
(FEED_CHECK_SECONDS, PAGE_CHECK_SECONDS), and any commit in this process makes every kept answer
void at once: a process's own writes show on its next request, other processes' within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

T = TypeVar("T")
#: Kept answers per app, at most; past that they are dropped together (each costs one query to refill).
MAX_KEPT = 4096

_commits = [0]  # bumped by every commit in this process


@sa_event.listens_for(Session, "after_commit")
def _count_commit(_session) -> None:
    _commits[0] += 1


def fresh(key, compute: Callable[[], T], *, seconds: float) -> T:
    """compute()'s answer for `key`, asked again at most every `seconds` in this process (0: every time)."""
    checked = current_app.extensions.setdefault("townhall_freshness", {})
    now = time.monotonic()
    hit = checked.get(key)
    if hit is not None and hit[0] == _commits[0] and hit[1] > now:
        return hit[2]
    commits = _commits[0]  # read before the query: a commit while it runs makes the answer void
    answer = compute()
    if seconds > 0:
        if len(checked) >= MAX_KEPT:
            checked.clear()
        checked[key] = (commits, now + seconds, answer)
    return answer
