"""The relay processes a standalone scheduler speaks SMTP from (mail/relay.py), against a real SMTP server:
the same outcomes as sending in process, marks that keep up with the wire, a lost connection that loses
nothing, a relay that dies and is replaced, and no relay left sending after its scheduler is gone."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from scheduler import jobs
from scheduler.extensions import db
from scheduler.mail import outbox, relay
from scheduler.mail.transports import PermanentError
from scheduler.models import OutboxMessage
from tests.mail.test_delivery_reliability import MarkProbe, _queue, _recipients, _states
from tests.support import SMTPSink, children_of, process_gone, wait_for


@pytest.fixture
def relays(app):
    """HeldTransports over relay processes, as a standalone Runner makes them; ended after the test."""
    made = []

    def make(connections: int = 1) -> jobs.HeldTransports:
        held = jobs.HeldTransports(app.config, connections, relay=True)
        made.append(held)
        return held

    yield make
    for held in made:
        held.end()


def _deliver(app, transports, *, at, worker: str = "test", **options):
    return outbox.deliver(db.session, transports, app, worker=worker, clock=lambda: at, connections=transports.size,
                          **options)


def _processes(transports) -> list[subprocess.Popen]:
    return [held.relay.process for held in transports.held]


def test_a_batch_goes_out_once_through_relay_processes_and_they_end_with_the_scheduler(app, create_event, sink,
                                                                                      relays, now):
    transports = relays(2)
    _queue(create_event(), 30, now)
    assert _deliver(app, transports, at=now).sent == 30
    assert sink.wait_for(30)
    assert _recipients(sink) == sorted(f"p{n}@example.org" for n in range(30))
    assert _states() == {"sent": 30}
    processes = _processes(transports)
    assert all(p.poll() is None and p.pid != os.getpid() for p in processes)
    # The delivery run's end closes the connections; the processes stay for the next run.
    transports.close()
    _queue(create_event(slug="second"), 3, now)
    db.session.execute(sa.update(OutboxMessage).where(OutboxMessage.state == "queued").values(next_attempt_at=now))
    db.session.commit()
    assert _deliver(app, transports, at=now).sent == 3
    assert _processes(transports) == processes
    transports.end()
    assert all(p.poll() is not None for p in processes)


def test_marks_keep_up_with_the_wire_through_the_relay(app, create_event, relays, now):
    """The relay has messages handed to it ahead, but never more than may be out unmarked."""
    probe = MarkProbe(db.engine.url).start()
    try:
        app.config["MAIL_URL"] = probe.url
        _queue(create_event(), 60, now)
        assert _deliver(app, relays(2), at=now, limit=10, chunks=None).sent == 60
    finally:
        probe.stop()
        probe.engine.dispose()
    assert len(probe.unmarked) == 60
    assert max(probe.unmarked) <= 10, probe.unmarked
    assert _states() == {"sent": 60}


def test_refusals_come_back_from_the_relay_as_from_smtplib(app, create_event, sink, relays, now):
    transports = relays()
    _queue(create_event(), 2, now)
    sink.reply_code = "451 4.3.0 try again later"
    report = _deliver(app, transports, at=now)
    assert (report.sent, report.retried) == (0, 2)
    sink.reply_code = "550 5.1.1 no such user"
    report = _deliver(app, transports, at=now + timedelta(hours=2))
    assert (report.sent, report.failed) == (0, 2)
    db.session.expire_all()
    assert {row.last_error for row in db.session.scalars(select(OutboxMessage))} == {"550 5.1.1 no such user"}
    # Sent one at a time, waiting for each answer, the same.
    message = SimpleNamespace(sender="events@townhall.test", recipients=("a@example.org",), data=b"Subject: x\r\n\r\nhi\r\n")
    with transports() as transport:
        with pytest.raises(PermanentError, match="550 5.1.1"):
            transport.send(message)
        sink.reply_code = None
        transport.send(message)
    assert sink.wait_for(1)


class DroppingSink(SMTPSink):
    """Drops the connection at the `at`-th MAIL FROM, once: that message never arrives."""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.mails = at, 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mails += 1
        if self.mails == self.at:
            server.transport.close()
            return "421 4.4.2 closing"
        envelope.mail_from = address
        return "250 OK"


def test_a_connection_lost_mid_batch_sends_the_rest_later_and_nobody_twice(app, create_event, relays, now):
    server = DroppingSink(at=5).start()
    try:
        app.config["MAIL_URL"] = server.url
        transports = relays()
        _queue(create_event(), 20, now)
        first = _deliver(app, transports, at=now)
        # Four went out; the fifth was in hand when the connection dropped, and the ones handed over behind it
        # were skipped by the relay, not sent: every one of them is queued again.
        assert first.sent == 4 and first.retried == 16
        assert _states() == {"sent": 4, "queued": 16}
        # The relay opens a new connection for the next batch.
        assert _deliver(app, transports, at=now + timedelta(hours=2)).sent == 16
        assert server.wait_for(20)
    finally:
        server.stop()
    assert _recipients(server) == sorted(f"p{n}@example.org" for n in range(20))


def test_a_relay_that_died_is_replaced(app, create_event, sink, relays, now):
    transports = relays()
    _queue(create_event(), 3, now)
    assert _deliver(app, transports, at=now).sent == 3
    held = transports.held[0].relay
    dead = held.process
    dead.kill()
    assert wait_for(lambda: held.process is None, timeout=10)  # its reader saw the pipe close
    _queue(create_event(slug="after"), 3, now)
    db.session.execute(sa.update(OutboxMessage).where(OutboxMessage.state == "queued").values(next_attempt_at=now))
    db.session.commit()
    assert _deliver(app, transports, at=now).sent == 3
    assert held.process is not None and held.process.pid != dead.pid
    assert sink.wait_for(6)


def test_a_message_to_a_non_ascii_address_goes_through_the_relay_whole(app, create_event, relays, now):
    from aiosmtpd.controller import Controller

    from tests.support import free_port

    sink = SMTPSink()
    sink.port = free_port()
    sink.controller = Controller(sink, hostname="127.0.0.1", port=sink.port, enable_SMTPUTF8=True)
    sink.controller.start()
    try:
        app.config["MAIL_URL"] = sink.url
        event = create_event()
        outbox.queue(db.session, kind="reminder", to_addr="zoë@example.org", dedupe_key=f"utf8:{event.id}", now=now,
                     event_id=event.id, event=event, name="Zoë", when="soon", starts_in="1 hour",
                     manage_url="http://townhall.test/r/x", unsubscribe_url="http://townhall.test/r/x/unsubscribe")
        db.session.commit()
        assert _deliver(app, relays(), at=now).sent == 1
        assert sink.wait_for(1)
    finally:
        sink.stop()
    assert sink.envelopes[0].rcpt_tos == ["zoë@example.org"]
    assert "Zoë" in sink.messages[0].get_body(("plain",)).get_content()


def _frames(*values) -> io.BytesIO:
    stream = io.BytesIO()
    for value in values:
        relay._write(stream, value)
    stream.seek(0)
    return stream


def test_a_relay_whose_scheduler_is_gone_sends_nothing_more(sink):
    """Checked before each send: what a killed scheduler handed over stays unsent (and claimed, so it lapses)."""
    envelope = ("events@townhall.test", ("a@example.org",), b"Subject: hi\r\n\r\nhello\r\n")
    replies = io.BytesIO()
    relay.serve(_frames(("send", 0, envelope)), replies, {"MAIL_URL": sink.url, "MAIL_TIMEOUT": 5.0},
                parent_alive=lambda: False)
    assert replies.getvalue() == b""
    assert not sink.wait_for(1, timeout=0.5)
    # While it lives, the same request is sent and answered.
    replies = io.BytesIO()
    relay.serve(_frames(("send", 0, envelope)), replies, {"MAIL_URL": sink.url, "MAIL_TIMEOUT": 5.0},
                parent_alive=lambda: True)
    replies.seek(0)
    assert relay._read(replies) == ("ok",)
    assert sink.wait_for(1)


def test_a_relay_exits_when_its_scheduler_is_killed(sink, tmp_path):
    code = ("import sys, time; from scheduler.mail.relay import RelayTransport; "
            f"r = RelayTransport({{'MAIL_URL': {sink.url!r}, 'MAIL_TIMEOUT': 5.0}}); r.__enter__(); "
            "print(r.process.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert children_of(parent.pid) == [child]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_for(lambda: process_gone(child), timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_standalone_runner_sends_through_relays_and_ends_them_when_it_stops(app, sink):
    runner = jobs.Runner(app, mode="standalone")
    processes = _processes(runner.transports)
    assert len(processes) == app.config["MAIL_CONNECTIONS"] and all(p.poll() is None for p in processes)
    runner.shutdown()
    assert all(p.poll() is not None for p in processes)
    # Embedded in a web process, or with the relay turned off, it sends from its own threads.
    app.config["MAIL_RELAY"] = False
    assert all(held.relay is None for held in jobs.Runner(app, mode="standalone").transports.held)
    app.config["MAIL_RELAY"] = True
    assert all(held.relay is None for held in jobs.Runner(app, mode="embedded").transports.held)
