"""A recording SMTP server for the benches: every accepted message becomes one JSON line in a file.

Run as a subprocess (`Recorder(...).start()` does that): aiosmtpd on 127.0.0.1, any number of
simultaneous connections, and per accepted message one line, written and flushed at once so the
parent can count while it runs:

    {"t": time.time() when accepted, "rcpt": [envelope recipients], "message_id": "<...>",
     "subject": "...", "x": {X-... headers}, "dedupe": X-...dedupe... header or null, "peer": client port}

Options: a delay per message (`--delay`, seconds, before the 250 reply; connections still run side
by side), and an outage: RCPT refused with `--outage-code` (421 or 451) for `--outage-seconds`, from
the `--outage-at-message`-th accepted message on, or whenever the server gets SIGUSR1
(`Recorder.outage()`). A refused recipient is written as {"t": ..., "rcpt": [...], "refused": code}.

The server stops on SIGTERM or SIGINT, and by itself when the process that started it has gone.

    .venv/bin/python bench/smtp_recorder.py --out FILE [--port 0] [--delay 0] [--outage-code 451]
        [--outage-seconds 0] [--outage-at-message N]

It prints the port it listens on as its first line of output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

HOST = "127.0.0.1"  # the recorder serves this machine only
_HEADERS = BytesHeaderParser(policy=compat32)
OUTAGE_REPLIES = {421: "421 4.3.2 Service not available, closing transmission channel",
                  451: "451 4.3.0 Temporary failure, try again later"}


# --- the server (this file run as a script) ----------------------------------------------------

def _decoded(value) -> str | None:
    if value is None:
        return None
    try:
        return str(make_header(decode_header(str(value)))).replace("\r\n", "").replace("\n", "")
    except (ValueError, LookupError):
        return str(value)


class RecordingHandler:
    """aiosmtpd handler: refuse during an outage, else wait `delay` and write one line per message."""

    def __init__(self, out, *, delay: float, outage_code: int, outage_seconds: float, outage_at: int | None):
        self.out = out
        self.delay = delay
        self.outage_reply = OUTAGE_REPLIES[outage_code]
        self.outage_code = outage_code
        self.outage_seconds = outage_seconds
        self.outage_at = outage_at
        self.outage_until = 0.0
        self.accepted = 0

    def begin_outage(self) -> None:
        self.outage_until = time.monotonic() + self.outage_seconds

    def _write(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if time.monotonic() < self.outage_until:
            self._write({"t": time.time(), "rcpt": [address], "refused": self.outage_code})
            return self.outage_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        head = envelope.content.split(b"\r\n\r\n", 1)[0]  # the parser would read the body line by line
        headers = _HEADERS.parsebytes(head)
        extra = {name: _decoded(value) for name, value in headers.items() if name.lower().startswith("x-")}
        dedupe = next((value for name, value in extra.items() if "dedupe" in name.lower()), None)
        self._write({"t": time.time(), "rcpt": list(envelope.rcpt_tos), "message_id": _decoded(headers["Message-ID"]),
                     "subject": _decoded(headers["Subject"]), "x": extra, "dedupe": dedupe,
                     "peer": session.peer[1] if session.peer else None})
        self.accepted += 1
        if self.outage_at is not None and self.accepted == self.outage_at:
            self.begin_outage()
        return "250 OK"


async def serve(args) -> None:
    from aiosmtpd.smtp import SMTP

    parent = os.getppid()
    loop = asyncio.get_running_loop()
    with open(args.out, "a", encoding="utf-8") as out:
        handler = RecordingHandler(out, delay=args.delay, outage_code=args.outage_code,
                                   outage_seconds=args.outage_seconds, outage_at=args.outage_at_message)
        # A fixed hostname: without one, aiosmtpd looks up this machine's FQDN for every connection.
        server = await loop.create_server(lambda: SMTP(handler, hostname="recorder.test", enable_SMTPUTF8=True),
                                          HOST, args.port, backlog=2048)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, handler.begin_outage)
        while not stop.is_set() and os.getppid() == parent:
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="file the JSON lines are appended to")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before accepting each message")
    parser.add_argument("--outage-code", type=int, choices=sorted(OUTAGE_REPLIES), default=451)
    parser.add_argument("--outage-seconds", type=float, default=0.0, help="how long an outage lasts")
    parser.add_argument("--outage-at-message", type=int, default=None,
                        help="begin the outage once this many messages were accepted")
    asyncio.run(serve(parser.parse_args()))
    return 0


# --- the parent's side -------------------------------------------------------------------------

class Recorder:
    """Starts the recording server as a subprocess and reads what it has recorded so far."""

    def __init__(self, out: Path, *, delay: float = 0.0, outage_code: int = 451, outage_seconds: float = 0.0,
                 outage_at_message: int | None = None):
        self.out = Path(out)
        self.options = ["--delay", str(delay), "--outage-code", str(outage_code),
                        "--outage-seconds", str(outage_seconds)]
        if outage_at_message is not None:
            self.options += ["--outage-at-message", str(outage_at_message)]
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.records: list[dict] = []  # accepted messages, in the order written
        self.refusals: list[dict] = []
        self._offset = 0
        self._tail = b""

    def start(self, timeout: float = 15.0) -> Recorder:
        """Start the server and wait until it says which port it listens on."""
        self.out.touch()
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--out", str(self.out),
                                         *self.options], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            line = self.process.stdout.readline() if selector.select(timeout) else b""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the SMTP recorder did not start")
        self.port = int(line)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()
        self.read()

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    def outage(self) -> None:
        """Begin an outage now (for --outage-seconds)."""
        self.process.send_signal(signal.SIGUSR1)

    def read(self) -> list[dict]:
        """Take in the lines written since the last call; every accepted message so far."""
        with open(self.out, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        self._offset += len(data)
        *lines, self._tail = (self._tail + data).split(b"\n")
        for line in lines:
            record = json.loads(line)
            (self.refusals if "refused" in record else self.records).append(record)
        return self.records

    def count(self) -> int:
        return len(self.read())

    def recipients(self, records: list[dict] | None = None) -> Counter:
        """How many messages each envelope recipient got."""
        return Counter(r for record in (self.read() if records is None else records) for r in record["rcpt"])


if __name__ == "__main__":
    sys.exit(main())
