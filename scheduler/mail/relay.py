"""SMTP from a process of its own: the relay a scheduler process sends through.

A scheduler process renders, composes and marks while it sends, and all of that holds Python's GIL:
every reply of the server waited for the GIL before the next command could go out, four times a
message, and the wire ran at the pace of the busiest thread. A relay child does nothing but the SMTP
dialogue. The parent hands it composed messages ahead (as many as may be out unmarked), so the child
always has the next one and the wire runs at the server's pace; the outcomes come back in order.

The child speaks length-prefixed pickles over its stdin and stdout, pipes only the parent holds:
("open",), ("send", generation, message) and ("close",) in; ("ok",), ("skipped",) or
("error", kind, text) out, one reply per request. Each batch's sends carry a generation of their own: after
a lost connection the relay skips the rest of that batch (not attempted), and opens a new connection for
the next.
It exits when its stdin closes, or before a send when its parent is gone: a scheduler killed
mid-batch leaves at most the message in hand on the wire.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from types import SimpleNamespace

from .transports import ConnectionLost, PermanentError, TransientError, transport_from_config

_HEADER = struct.Struct("!I")
_ERRORS = {"permanent": PermanentError, "lost": ConnectionLost, "transient": TransientError}
#: The outcome of a send the relay skipped: its connection was lost before, so it was never attempted.
NOT_SENT = object()


def _write(stream, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream):
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the pipe closed")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed")
    return pickle.loads(data)


class RelayTransport:
    """A transport whose SMTP connection lives in a relay process, started at once and kept until end().

    As a context manager it opens the connection (raising TransientError when it cannot) and leaves it
    open; close() closes it. submit() hands a message over without waiting; send() waits for it.
    """

    def __init__(self, config):
        self.config = {"MAIL_URL": config["MAIL_URL"], "MAIL_TIMEOUT": config["MAIL_TIMEOUT"]}
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()  # a request and its place among the pending outcomes go together
        self.pending: deque[Callable[[object], None]] = deque()
        self.idle = threading.Condition(self.lock)
        self.generation = 0
        self.start()

    def start(self) -> None:
        """Start the process if it is not running (it imports while the scheduler starts)."""
        with self.lock:
            self._started()

    def _started(self) -> subprocess.Popen:
        if self.process is None:
            process = subprocess.Popen([sys.executable, "-m", "scheduler.mail.relay"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, close_fds=True)
            _write(process.stdin, self.config)
            # Each process its own queue of outcomes: a dead one's reader fails only what was handed to it.
            self.process, self.pending = process, deque()
            threading.Thread(target=self._read_replies, args=(process, self.pending), name="townhall-relay-reader",
                             daemon=True).start()
        return self.process

    def submit(self, message, done: Callable[[object], None]) -> None:
        """Hand `message` to the relay; `done(outcome)` is called from another thread once it is known:
        None when the server accepted it, the error, or NOT_SENT."""
        data = getattr(message, "data", None)
        # The envelope and bytes only: pickling the message's tree would cost more than sending it.
        payload = (message.sender, tuple(message.recipients), data) if data is not None else message.message
        self._request(("send", self.generation, payload), done)

    def _request(self, request, done) -> None:
        with self.lock:
            process = self._started()
            self.pending.append(done)
            try:
                _write(process.stdin, request)
            except OSError:
                pass  # the process died: its reader fails every pending outcome as it sees the pipe close

    def _call(self, *request) -> None:
        """A request whose outcome we wait for."""
        self._wait(lambda done: self._request(request, done))

    @staticmethod
    def _wait(hand_over: Callable[[Callable[[object], None]], None]) -> None:
        """Hand over with a callback, wait for its outcome, and raise it if it is not a success."""
        outcome: list = []
        known = threading.Event()

        def done(value):
            outcome.append(value)
            known.set()

        hand_over(done)
        known.wait()
        if outcome[0] is NOT_SENT:
            raise ConnectionLost("the connection was lost before this message")
        if outcome[0] is not None:
            raise outcome[0]

    def _read_replies(self, process: subprocess.Popen, pending: deque) -> None:
        error: Exception | None = None
        while True:
            try:
                reply = _read(process.stdout)
                outcome = None if reply[0] == "ok" else NOT_SENT if reply[0] == "skipped" else _ERRORS[reply[1]](reply[2])
            except Exception as exc:  # the pipe closed (the process ended), or a reply we cannot read
                error = ConnectionLost(f"the mail relay process ended: {exc}")
                break
            with self.lock:
                done = pending.popleft()
            done(outcome)
            with self.lock:
                if not pending:
                    self.idle.notify_all()
        with self.lock:
            if self.process is process:
                self.process = None
            failed = list(pending)
            pending.clear()
            self.idle.notify_all()
        process.kill()  # nothing more can be read from it; it may still be alive after a reply it could not write
        process.stdout.close()
        for n, done in enumerate(failed):
            done(error if n == 0 else NOT_SENT)  # the first was in hand; the rest were never attempted
        process.wait()

    def drain(self) -> None:
        """Wait until every outcome handed over is known."""
        with self.lock:
            while self.pending:
                self.idle.wait()

    def send(self, message) -> None:
        """Send one message and wait for the server's answer."""
        self._wait(lambda done: self.submit(message, done))

    def __enter__(self):
        """A batch begins: its sends carry a new generation, so a connection lost in the last one is opened again."""
        with self.lock:
            self.generation += 1
        self._call("open")
        return self

    def __exit__(self, *exc):
        return False

    def close(self) -> None:
        """Close the SMTP connection (the next message opens another); the process stays."""
        if self.process is not None:
            try:
                self._call("close")
            except TransientError:
                pass

    def end(self) -> None:
        """Close the connection and end the process: its stdin closes, it says QUIT and exits."""
        with self.lock:
            process, self.process = self.process, None
        if process is None:
            return
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _kind(exc: Exception) -> str:
    if isinstance(exc, PermanentError):
        return "permanent"
    return "lost" if isinstance(exc, ConnectionLost) else "transient"


def serve(requests, replies, config: dict, parent_alive: Callable[[], bool]) -> None:
    """The child's loop: one reply per request until `requests` closes or the parent is gone."""
    transport = None
    lost = -1  # the generation whose connection was lost: its sends still in the pipe are skipped
    try:
        while True:
            try:
                request = _read(requests)
            except EOFError:
                return
            try:
                if request[0] == "send" and request[1] <= lost:
                    _write(replies, ("skipped",))
                    continue
                if request[0] == "send" and not parent_alive():
                    return  # the scheduler died: whatever it handed over stays unsent, still claimed
                if request[0] in ("open", "send") and transport is None:
                    transport = transport_from_config(config).__enter__()
                if request[0] == "send":
                    message = request[2]
                    if isinstance(message, tuple):
                        message = SimpleNamespace(sender=message[0], recipients=message[1], data=message[2])
                    try:
                        transport.send(message)
                    except ConnectionLost:
                        transport, lost = None, request[1]
                        raise
                elif request[0] == "close" and transport is not None:
                    current, transport = transport, None
                    current.__exit__(None, None, None)
                reply = ("ok",)
            except (PermanentError, TransientError) as exc:
                reply = ("error", _kind(exc), str(exc))
            except Exception as exc:  # anything else fails this message only; it is retried later
                reply = ("error", "transient", f"{type(exc).__name__}: {exc}")
            _write(replies, reply)
    except OSError:
        return  # the parent closed our stdout: it is gone
    finally:
        if transport is not None:
            transport.__exit__(None, None, None)


def main() -> int:
    # Ctrl-C and a supervisor's SIGTERM reach the whole process group: the scheduler stops cleanly and then
    # closes our stdin, so the message in hand is finished rather than cut.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    parent = os.getppid()
    serve(requests, replies, _read(requests), lambda: os.getppid() == parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
