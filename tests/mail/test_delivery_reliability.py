"""Delivery that survives crashes and cut connections, against a real SMTP server: one Message-ID per message
on every attempt, sent marks that keep up with the wire, marks retried on a new connection, claims kept by
a heartbeat, a clean stop that gives back what was not started, and several connections at once."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.mail.compose import message_id_for
from scheduler.mail.transports import transport_from_config
from scheduler.models import OutboxMessage
from tests.support import SMTPSink, beat


def _queue(event, count: int, now) -> None:
    """`count` rendered reminder rows (composed when queued: delivery reads nothing else)."""
    for n in range(count):
        outbox.queue(db.session, kind="reminder", to_addr=f"p{n}@example.org", dedupe_key=f"test:{event.id}:{n}",
                     now=now, event_id=event.id, event=event, name=f"Person {n}", when="soon", starts_in="1 hour",
                     manage_url="http://townhall.test/r/x", unsubscribe_url="http://townhall.test/r/x/unsubscribe")
    db.session.commit()


def _deliver(app, *, at, worker: str = "test", **options):
    return outbox.deliver(db.session, lambda: transport_from_config(app.config), app, worker=worker,
                          clock=lambda: at, **options)


def _states() -> dict[str, int]:
    db.session.expire_all()
    rows = db.session.execute(select(OutboxMessage.state, sa.func.count()).group_by(OutboxMessage.state))
    return dict(rows.all())


def _recipients(sink: SMTPSink) -> list[str]:
    return sorted(rcpt for envelope in sink.envelopes for rcpt in envelope.rcpt_tos)


def test_the_message_id_is_fixed_when_queued_and_the_same_on_every_attempt(app, create_event, sink, now):
    event = create_event()
    _queue(event, 1, now)
    [row] = db.session.scalars(select(OutboxMessage)).all()
    assert row.message_id == message_id_for(row.dedupe_key, app.config)
    assert row.message_id.endswith("@townhall.test>") and row.dedupe_key not in row.message_id
    # Refused for now, then accepted: the second attempt carries the first one's Message-ID.
    sink.reply_code = "451 4.3.0 try again later"
    assert _deliver(app, at=now).retried == 1
    sink.reply_code = None
    assert _deliver(app, at=now + timedelta(hours=1)).sent == 1
    assert sink.wait_for(1)
    assert sink.messages[0]["Message-ID"] == row.message_id
    # A crashed deliverer's batch sent again (its claim lapsed) keeps the Message-ID as well.
    _queue(event, 2, now)  # the first key exists already: one new row
    [second] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.state == "queued")).all()
    outbox.claim(db.session, worker="crashed", now=now)
    assert _deliver(app, at=now + outbox.LEASE + timedelta(seconds=1), worker="survivor").sent == 1
    assert sink.wait_for(2)
    assert sink.messages[1]["Message-ID"] == second.message_id == message_id_for(second.dedupe_key, app.config)


class MarkProbe(SMTPSink):
    """For each message, counts the messages accepted before it whose sent mark is not yet committed."""

    def __init__(self, url):
        super().__init__()
        self.engine = sa.create_engine(url)
        self.unmarked: list[int] = []

    async def handle_DATA(self, server, session, envelope):
        with self.engine.connect() as conn:
            marked = conn.scalar(sa.text("SELECT count(*) FROM outbox WHERE state = 'sent'"))
        self.unmarked.append(len(self.messages) - marked)
        return await super().handle_DATA(server, session, envelope)


def test_sent_marks_keep_up_with_the_wire(app, create_event, now):
    """At most 10 accepted messages are ever unmarked: a process killed now re-sends at most those."""
    probe = MarkProbe(db.engine.url).start()
    try:
        app.config["MAIL_URL"] = probe.url
        _queue(create_event(), 60, now)
        assert _deliver(app, at=now, limit=10, chunks=None).sent == 60  # across chunks claimed on the way
    finally:
        probe.stop()
        probe.engine.dispose()
    assert len(probe.unmarked) == 60
    assert max(probe.unmarked) <= 10, probe.unmarked  # the bound, not the constant: it must not creep up
    assert _states() == {"sent": 60}


class ConnectionCutter(SMTPSink):
    """At the 15th message, ends every other PostgreSQL connection to the test database (pg_terminate_backend)."""

    def __init__(self, url):
        super().__init__()
        self.engine = sa.create_engine(url, poolclass=sa.NullPool)
        self.cut = 0

    async def handle_DATA(self, server, session, envelope):
        if len(self.messages) == 14:
            with self.engine.connect() as conn:
                self.cut = len(conn.execute(sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
        return await super().handle_DATA(server, session, envelope)


def test_a_cut_database_connection_while_marking_is_survived_without_resending(app, create_event, now, backend):
    if backend != "postgres":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    cutter = ConnectionCutter(db.engine.url).start()
    try:
        app.config["MAIL_URL"] = cutter.url
        _queue(create_event(), 40, now)
        report = _deliver(app, at=now)  # does not raise: the marks are written on a new connection
    finally:
        cutter.stop()
        cutter.engine.dispose()
    assert cutter.cut >= 1
    assert report.sent == 40
    assert _recipients(cutter) == sorted(f"p{n}@example.org" for n in range(40))  # each once
    assert _states() == {"sent": 40}
    assert _deliver(app, at=now + timedelta(days=1)).handled == 0


def test_a_beating_deliverer_keeps_its_claim_and_a_silent_one_loses_it_after_ten_seconds(app, create_event, sink,
                                                                                          now):
    _queue(create_event(), 3, now)
    beat("slow", now)
    assert len(outbox.claim(db.session, worker="slow", now=now)) == 3
    # An hour on, past every lease, it still beats: the rows are still its own.
    beat("slow", now + timedelta(hours=1))
    assert _deliver(app, at=now + timedelta(hours=1, seconds=5), worker="other").handled == 0
    # It stops beating: 10 s after its last beat the rows are taken over and sent.
    assert _deliver(app, at=now + timedelta(hours=1, seconds=9), worker="other").handled == 0
    assert _deliver(app, at=now + timedelta(hours=1, seconds=11), worker="other").sent == 3
    assert sink.wait_for(3)


def test_stopping_finishes_the_message_in_hand_and_gives_back_the_rest(app, create_event, sink, now):
    _queue(create_event(), 20, now)
    sent = []
    report = _deliver(app, at=now, on_sent=sent.append, stopping=lambda: len(sent) >= 3)
    assert report.sent == len(sent) >= 3 and report.released == 20 - report.sent
    db.session.expire_all()
    given_back = db.session.scalars(select(OutboxMessage).where(OutboxMessage.state != "sent")).all()
    assert {(r.state, r.attempts, r.claimed_by) for r in given_back} == {("queued", 0, None)}
    assert len(given_back) == report.released
    # Anyone sends them at once (no backoff), and nobody gets a second copy.
    assert _deliver(app, at=now, worker="next").sent == report.released
    assert sink.wait_for(20)
    assert _recipients(sink) == sorted(f"p{n}@example.org" for n in range(20))


def test_one_delivery_claims_chunk_after_chunk_until_nothing_is_due(app, create_event, sink, now):
    _queue(create_event(), 25, now)
    assert _deliver(app, at=now, limit=10).sent == 10  # one chunk by default
    assert _deliver(app, at=now, limit=10, chunks=None, connections=2).sent == 15
    assert sink.wait_for(25)
    assert _recipients(sink) == sorted(f"p{n}@example.org" for n in range(25))
    assert _states() == {"sent": 25}
    assert _deliver(app, at=now, limit=10, chunks=None).handled == 0


class DueMaker(SMTPSink):
    """At the 3rd message, makes the rows of `event_id` due a minute before all the others, as the first
    recipients of another reminder queued during a fan-out are."""

    def __init__(self, url, event_id: int, due):
        super().__init__()
        self.engine = sa.create_engine(url, poolclass=sa.NullPool)
        self.event_id, self.due = event_id, due

    async def handle_DATA(self, server, session, envelope):
        if len(self.messages) == 2:
            with self.engine.begin() as conn:
                conn.execute(sa.update(OutboxMessage.__table__).where(OutboxMessage.event_id == self.event_id)
                             .values(next_attempt_at=self.due))
        return await super().handle_DATA(server, session, envelope)


def test_rows_due_earlier_that_appear_during_a_delivery_go_out_in_its_next_chunk(app, create_event, now):
    """A delivery does not finish the queue it saw first: what falls due ahead of it meanwhile is claimed next."""
    _queue(create_event(), 40, now)
    other = create_event(slug="other")
    for n in range(5):
        outbox.queue(db.session, kind="reminder", to_addr=f"first{n}@example.org", dedupe_key=f"other:{n}",
                     now=now + timedelta(hours=1), event_id=other.id, event=other, name="First", when="soon",
                     starts_in="1 hour", manage_url="http://townhall.test/r/x",
                     unsubscribe_url="http://townhall.test/r/x/unsubscribe")
    db.session.commit()
    server = DueMaker(db.engine.url, other.id, now - timedelta(minutes=1)).start()
    try:
        app.config["MAIL_URL"] = server.url
        assert _deliver(app, at=now, limit=10, chunks=None).sent == 45
    finally:
        server.stop()
        server.engine.dispose()
    order = [envelope.rcpt_tos[0] for envelope in server.envelopes]
    firsts = [n for n, rcpt in enumerate(order) if rcpt.startswith("first")]
    # Due when the first chunk was out: in the second (claimed with half the first still to go) or the third.
    assert len(firsts) == 5 and max(firsts) < 25, order
    assert sorted(order) == sorted([f"p{n}@example.org" for n in range(40)] + [f"first{n}@example.org" for n in range(5)])


class PeerSink(SMTPSink):
    """Notes the client port of each message: one port per connection."""

    def __init__(self):
        super().__init__()
        self.peers: list = []

    async def handle_DATA(self, server, session, envelope):
        self.peers.append(session.peer)
        return await super().handle_DATA(server, session, envelope)


def test_several_connections_share_a_batch_and_each_message_goes_once(app, create_event, now):
    server = PeerSink().start()
    try:
        app.config["MAIL_URL"] = server.url
        _queue(create_event(), 80, now)
        assert _deliver(app, at=now, connections=4).sent == 80
        assert server.wait_for(80)
    finally:
        server.stop()
    assert len(set(server.peers)) == 4
    assert _recipients(server) == sorted(f"p{n}@example.org" for n in range(80))
    assert _states() == {"sent": 80}


def test_a_connection_that_cannot_be_opened_leaves_the_batch_queued_for_a_retry(app, create_event, now):
    from tests.support import free_port

    app.config["MAIL_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nobody listens
    _queue(create_event(), 5, now)
    report = _deliver(app, at=now, connections=4)
    assert (report.sent, report.retried) == (0, 5) and "cannot connect" in report.errors[0]
    assert _states() == {"queued": 5}


@contextmanager
def fault(verb: str, marker: str, error: Exception, *, skip: int = 0):
    """A database fault: `error` raised before every statement that begins with `verb` and names `marker`,
    but the first `skip` of them."""
    seen = []

    def inject(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(verb) and marker in statement:
            seen.append(statement)
            if len(seen) > skip:
                raise error

    sa.event.listen(db.engine, "before_cursor_execute", inject)
    try:
        yield
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", inject)


def test_a_claim_whose_rows_cannot_be_read_back_claims_nothing(app, create_event, sink, now):
    """The connection fails as the rows are claimed and read back: a live scheduler's heartbeat would keep
    a claim whose rows never reached it from ever lapsing, so it must not be committed."""
    _queue(create_event(), 3, now)
    beat("live", now)

    with fault("UPDATE", "dedupe_key", ConnectionError("the connection was cut before the rows were read")), \
            pytest.raises(ConnectionError):
        outbox.claim(db.session, worker="live", now=now)
    db.session.rollback()
    assert _states() == {"queued": 3}
    # The same live scheduler sends them on its next try.
    assert _deliver(app, at=now, worker="live").sent == 3
    assert sink.wait_for(3)


def test_a_claim_that_fails_during_a_delivery_ends_it_without_losing_anything(app, create_event, sink, now):
    """The next chunk's claim fails: the rows in hand still go out with their marks, nothing escapes,
    nothing stays claimed, and the next delivery sends the rest."""
    _queue(create_event(), 25, now)
    cut = sa.exc.OperationalError("SELECT", {}, ConnectionError("the connection was cut"))
    with fault("UPDATE", "dedupe_key", cut, skip=1):  # the first chunk is claimed, the second is not
        report = _deliver(app, at=now, limit=10, chunks=None, connections=2)
    assert report.sent == 10
    assert _states() == {"sent": 10, "queued": 15}
    assert _deliver(app, at=now, limit=10, chunks=None).sent == 15
    assert sink.wait_for(25)
    assert _recipients(sink) == sorted(f"p{n}@example.org" for n in range(25))


def test_a_claim_committed_with_its_answer_lost_is_given_back(app, create_event, sink, now):
    """The second chunk's claim is committed but its commit's answer never arrives: the run ends after the rows
    in hand, and the rows that claim took are queued again, not left with a worker whose heartbeat keeps them."""
    _queue(create_event(), 25, now)
    claims = []

    def note_claim(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE") and "dedupe_key" in statement:
            claims.append(statement)

    def lose_answer(conn):  # the commit is made, then its answer is lost
        if len(claims) == 2 and not lost:
            lost.append(True)
            conn.connection.dbapi_connection.commit()
            raise sa.exc.OperationalError("COMMIT", {}, ConnectionError("the connection was cut after the commit"))

    lost: list = []
    sa.event.listen(db.engine, "before_cursor_execute", note_claim)
    sa.event.listen(db.engine, "commit", lose_answer)
    try:
        report = _deliver(app, at=now, limit=10, chunks=None)
    finally:
        sa.event.remove(db.engine, "commit", lose_answer)
        sa.event.remove(db.engine, "before_cursor_execute", note_claim)
    assert lost and report.sent == 10 and report.released == 10
    assert _states() == {"sent": 10, "queued": 15}
    assert _deliver(app, at=now, limit=10, chunks=None).sent == 15
    assert sink.wait_for(25)
    assert _recipients(sink) == sorted(f"p{n}@example.org" for n in range(25))


def test_a_delivery_that_ends_in_an_error_leaves_no_claim_behind(app, create_event, sink, now):
    """A scheduler's claims never lapse while it beats: what a failed delivery run held is queued again by
    its next run, and every message goes out."""
    from scheduler import jobs

    _queue(create_event(), 12, now)
    app.config["CLOCK"] = lambda: now
    runner = jobs.Runner(app, mode="standalone")
    beat(runner.worker, now)

    with fault("UPDATE", "sent_at=", RuntimeError("an error the delivery does not expect, while marking")), \
            pytest.raises(RuntimeError):
        runner.deliver()
    db.session.rollback()
    assert _states().get("sending", 0) > 0  # left claimed by a worker that still beats
    db.session.commit()  # the runner works in a session of its own: on SQLite this one would hold the write lock
    runner.deliver()
    assert _states() == {"sent": 12}
    assert sink.wait_for(12)
    assert set(_recipients(sink)) == {f"p{n}@example.org" for n in range(12)}


class QuitHook(SMTPSink):
    """Runs `on_quit()` (once) while a client says QUIT, before answering it."""

    def __init__(self, on_quit):
        super().__init__()
        self.on_quit = on_quit

    async def handle_QUIT(self, server, session, envelope):
        on_quit, self.on_quit = self.on_quit, None
        if on_quit is not None:
            on_quit()
        return "221 Bye"


def test_a_tick_while_a_delivery_closes_its_connections_starts_no_second_delivery(app, create_event, now):
    """Two deliveries at once would each have their own unmarked messages, twice the bound a killed process
    sends again: the delivery counts as running until its connections are closed."""
    from scheduler import jobs

    clock = [now]
    app.config["CLOCK"] = lambda: clock[0]
    _queue(create_event(), 3, now)
    _queue(create_event(slug="later"), 2, now)
    later = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(2)).all()
    for row in later:
        row.next_attempt_at = now + timedelta(seconds=1)
    db.session.commit()
    tick: dict = {}

    def on_quit():
        # The first delivery is closing its connection (this server answers only after this returns): an
        # interval tick now, with the two later messages due, must return at once and send nothing.
        clock[0] = now + timedelta(seconds=2)
        second = threading.Thread(target=runner.deliver, daemon=True)
        started = time.monotonic()
        second.start()
        second.join(5)
        tick["returned_after"] = None if second.is_alive() else time.monotonic() - started

    server = QuitHook(on_quit).start()
    app.config["MAIL_URL"] = server.url
    runner = jobs.Runner(app, mode="embedded")
    beat(runner.worker, now)
    db.session.commit()
    try:
        runner.deliver()
        assert tick["returned_after"] is not None and tick["returned_after"] < 1, tick
        assert _states() == {"sent": 3, "queued": 2}
        db.session.commit()
        runner.deliver()  # the next tick sends them
        assert _states() == {"sent": 5}
        assert server.wait_for(5)
    finally:
        server.stop()


def test_mail_woken_for_while_a_delivery_closes_its_connections_goes_out_at_once(app, create_event, now):
    """The running delivery had its last look already: the wake-up it was told of starts the next run."""
    from scheduler import jobs

    clock = [now]
    app.config.update(CLOCK=lambda: clock[0], OUTBOX_POLL_SECONDS=3600.0)  # no interval tick to cover for it
    _queue(create_event(), 3, now)
    _queue(create_event(slug="later"), 2, now)
    for row in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(2)):
        row.next_attempt_at = now + timedelta(seconds=1)
    db.session.commit()

    def on_quit():
        clock[0] = now + timedelta(seconds=2)
        runner.wake_delivery()

    server = QuitHook(on_quit).start()
    app.config["MAIL_URL"] = server.url
    runner = jobs.Runner(app, mode="embedded")
    try:
        runner.start()  # its first delivery runs at once, and says QUIT when the three are sent
        assert server.wait_for(5, timeout=10), len(server.messages)
    finally:
        runner.shutdown()
        server.stop()
