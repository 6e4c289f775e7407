"""A thread that LISTENs on PostgreSQL channels over a connection of its own: how a process hears what
other processes' transactions announced with NOTIFY (wake-ups for schedulers, question-board changes)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import psycopg
from sqlalchemy.engine import URL

log = logging.getLogger(__name__)


class Listener(threading.Thread):
    """LISTEN on `channels` and pass each notification to handle(channel, payload).

    After every (re)connection `on_listening` is called: notifications sent while the connection was
    down are lost, so whoever listens can read the current state again. Reconnects a second after an
    error, until `stop` is set.
    """

    def __init__(self, url: URL, channels: Iterable[str], handle: Callable[[str, str], None],
                 stop: threading.Event, *, name: str, on_listening: Callable[[], None] = lambda: None):
        super().__init__(name=name, daemon=True)
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channels = tuple(channels)
        self.handle = handle
        self.on_listening = on_listening
        self.stop = stop
        self.listening = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as connection:
                    for channel in self.channels:
                        connection.execute(f"LISTEN {channel}")
                    self.listening.set()
                    self.on_listening()
                    while not self.stop.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            self.handle(notice.channel, notice.payload)
            except psycopg.Error:
                self.listening.clear()
                if not self.stop.is_set():
                    log.warning("lost the LISTEN connection (%s); listening again in 1 s", self.name, exc_info=True)
                    self.stop.wait(1.0)
