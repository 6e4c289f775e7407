"""The event's seat counter (seats_taken) and waitlist numbers (waitlist_last) agree with the registration rows
after every path that changes a registration: fast and locked signup, repeats, cancel, promotion, capacity edits,
hold expiry and email confirmation, and refused signups (by slug or by event)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scheduler.domain import queries, signups
from scheduler.domain.events import update_event
from scheduler.errors import Conflict, EventFull, EventNotOpen, NotFound, SignupClosed
from scheduler.extensions import db
from scheduler.models import Event, OutboxMessage, Registration


def join(app, event, email, now, **kw):
    result = signups.sign_up(db.session, event, name=email.split("@")[0], email=email, now=now,
                             secret=app.config["SECRET_KEY"], **kw)
    db.session.commit()
    return result


def rows(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def check_counters(event_id: int, *, seat_may_wait: bool = False) -> dict:
    """Assert the counters match the rows; return {"seats", "last", "states": {email: state}} for comparisons.

    `seat_may_wait`: after the start nobody is promoted automatically, so a free seat may sit beside a waitlist.
    """
    # Read the columns, not a possibly stale ORM object: the fast path changes the row with Core statements.
    seats, last, capacity = db.session.execute(
        select(Event.seats_taken, Event.waitlist_last, Event.capacity).where(Event.id == event_id)).one()
    regs = db.session.scalars(select(Registration).where(Registration.event_id == event_id)
                              .order_by(Registration.id).execution_options(populate_existing=True)).all()
    assert seats == sum(r.state in ("confirmed", "pending") for r in regs)
    if capacity is not None:  # no scenario here lowers the capacity, so the count never exceeds it
        assert seats <= capacity
    waiting = [r for r in regs if r.state == "waitlisted"]
    seqs = [r.waitlist_seq for r in waiting]
    assert None not in seqs
    assert len(set(seqs)) == len(seqs)
    assert all(1 <= s <= last for s in seqs)
    assert all(r.waitlist_seq is None for r in regs if r.state in ("confirmed", "pending"))
    waiting.sort(key=lambda r: r.waitlist_seq)
    assert [queries.waitlist_position(db.session, r) for r in waiting] == list(range(1, len(waiting) + 1))
    if not seat_may_wait and capacity is not None and seats < capacity:
        assert waiting == [], "a seat is free while someone waits"
    return {"seats": seats, "last": last, "states": {r.email_key: r.state for r in regs}}


def state(email: str) -> tuple[str, int | None]:
    reg = db.session.scalar(select(Registration).where(Registration.email_key == email)
                            .execution_options(populate_existing=True))
    return reg.state, queries.waitlist_position(db.session, reg)


def test_counter_through_repeats_cancels_returns_capacity_and_promote(app, create_event, now):
    start = now + timedelta(days=2)
    event = create_event(capacity=2, double_opt_in=False, starts_at=start)
    eid = event.id
    outcomes = [join(app, event, f"{x}@example.org", now).outcome for x in "abcd"]
    assert outcomes == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert check_counters(eid)["seats"] == 2

    # Repeats while full: the fast path draws a waitlist number, hits the unique key; no seat moves.
    a_id = db.session.scalar(select(Registration.id).where(Registration.email_key == "a@example.org"))
    again = join(app, event, "A@example.org", now)
    assert (again.outcome, again.registration.id) == ("repeat", a_id)
    snap = check_counters(eid)
    assert snap["seats"] == 2 and snap["states"]["a@example.org"] == "confirmed"
    assert join(app, event, "c@example.org", now).outcome == "repeat"
    snap = check_counters(eid)
    assert snap["seats"] == 2 and state("c@example.org") == ("waitlisted", 1)

    a = db.session.get(Registration, a_id)
    promoted = signups.cancel_registration(db.session, a, now=now)
    db.session.commit()
    assert [r.email_key for r in promoted] == ["c@example.org"]
    assert check_counters(eid)["seats"] == 2
    assert state("d@example.org") == ("waitlisted", 1)

    d = db.session.scalar(select(Registration).where(Registration.email_key == "d@example.org"))
    assert signups.cancel_registration(db.session, d, now=now) == []
    db.session.commit()
    snap = check_counters(eid)
    assert snap["seats"] == 2 and "waitlisted" not in snap["states"].values()

    # Cancelled people come back through the locked path, at the end of the line.
    assert join(app, event, "a@example.org", now).outcome == "waitlisted"
    assert join(app, event, "d@example.org", now).outcome == "waitlisted"
    check_counters(eid)
    assert (state("a@example.org"), state("d@example.org")) == (("waitlisted", 1), ("waitlisted", 2))

    update_event(db.session, db.session.get(Event, eid), now=now, capacity=3)
    db.session.commit()
    snap = check_counters(eid)
    assert snap["seats"] == 3 and state("a@example.org") == ("confirmed", None)
    assert state("d@example.org") == ("waitlisted", 1)

    update_event(db.session, db.session.get(Event, eid), now=now, capacity=5)
    db.session.commit()
    snap = check_counters(eid)
    assert snap["seats"] == 4 and state("d@example.org") == ("confirmed", None)

    # A repeat with a seat free: the fast path takes it, hits the unique key and gives it back.
    assert join(app, event, "b@example.org", now).outcome == "repeat"
    assert check_counters(eid)["seats"] == 4
    assert [join(app, event, f"{x}@example.org", now).outcome for x in "gh"] == ["confirmed", "waitlisted"]
    assert check_counters(eid)["seats"] == 5

    h = db.session.scalar(select(Registration).where(Registration.email_key == "h@example.org"))
    with pytest.raises(EventFull):
        signups.promote(db.session, h, now=now)
    db.session.rollback()
    assert check_counters(eid)["seats"] == 5

    # After the start a freed seat is not passed on by itself: the organiser promotes by hand.
    later = start + timedelta(minutes=1)
    g = db.session.scalar(select(Registration).where(Registration.email_key == "g@example.org"))
    assert signups.cancel_registration(db.session, g, now=later) == []
    db.session.commit()
    assert check_counters(eid, seat_may_wait=True)["seats"] == 4
    signups.promote(db.session, h, now=later)
    db.session.commit()
    snap = check_counters(eid)
    assert snap["seats"] == 5 and state("h@example.org") == ("confirmed", None)

    before = check_counters(eid)
    assert signups.expire_holds(db.session, now=later) == 0
    db.session.commit()
    assert check_counters(eid) == before


def test_counter_through_holds_expiry_and_confirmation(app, create_event, now):
    event = create_event(capacity=2, double_opt_in=True)
    eid = event.id
    outcomes = [join(app, event, f"{x}@example.org", now, hold_hours=2).outcome for x in "abc"]
    assert outcomes == ["pending", "pending", "waitlisted"]
    assert check_counters(eid)["seats"] == 2  # pending holds count as seats

    def reg(x):
        return db.session.scalar(select(Registration).where(Registration.email_key == f"{x}@example.org"))

    assert signups.confirm_email(db.session, reg("a"), now=now) == "confirmed"
    db.session.commit()
    assert check_counters(eid)["seats"] == 2
    assert signups.confirm_email(db.session, reg("a"), now=now) == "confirmed"
    db.session.commit()
    assert check_counters(eid)["seats"] == 2

    # b's hold lapses: its seat goes to c, who has not confirmed an address yet (a new hold).
    t3 = now + timedelta(hours=3)
    assert signups.expire_holds(db.session, now=t3, hold_hours=2) == 1
    db.session.commit()
    snap = check_counters(eid)
    assert snap["seats"] == 2
    assert snap["states"] == {"a@example.org": "confirmed", "b@example.org": "expired", "c@example.org": "pending"}

    # b confirms too late while full: to the end of the waitlist.
    assert signups.confirm_email(db.session, reg("b"), now=t3) == "waitlisted"
    db.session.commit()
    assert check_counters(eid)["seats"] == 2 and state("b@example.org") == ("waitlisted", 1)

    # c's hold lapses: b (address now confirmed) takes the seat as confirmed.
    t6 = now + timedelta(hours=6)
    assert signups.expire_holds(db.session, now=t6, hold_hours=2) == 1
    db.session.commit()
    snap = check_counters(eid)
    assert snap["seats"] == 2
    assert snap["states"] == {"a@example.org": "confirmed", "b@example.org": "confirmed", "c@example.org": "expired"}

    assert signups.cancel_registration(db.session, reg("a"), now=t6) == []
    db.session.commit()
    assert check_counters(eid)["seats"] == 1

    # c confirms late with a seat free: re-seated, confirmed.
    assert signups.confirm_email(db.session, reg("c"), now=t6) == "confirmed"
    db.session.commit()
    snap = check_counters(eid)
    assert snap["seats"] == 2 and snap["states"]["c@example.org"] == "confirmed"


def test_sign_up_by_slug_matches_sign_up_by_event(app, create_event, now):
    by_object = create_event(capacity=2)
    by_slug = create_event(capacity=2)
    ids, slug = (by_object.id, by_slug.id), by_slug.slug
    emails = ["a@example.org", "b@example.org", "c@example.org", "A@example.org", "c@example.org", "d@example.org"]
    first = [join(app, by_object, e, now).outcome for e in emails]
    second = [join(app, slug, e, now).outcome for e in emails]
    assert first == second == ["confirmed", "confirmed", "waitlisted", "repeat", "repeat", "waitlisted"]
    assert check_counters(ids[0]) == check_counters(ids[1])


def test_refused_sign_up_changes_nothing(app, create_event, now):
    draft = create_event(publish=False, capacity=None)
    closing = create_event(capacity=1, signup_closes_at=now + timedelta(hours=1))
    for x in "ab":
        join(app, closing, f"{x}@example.org", now)
    after_close = now + timedelta(hours=2)

    def attempt(target, at, error):
        before = [check_counters(draft.id), check_counters(closing.id), rows(Registration), rows(OutboxMessage)]
        with pytest.raises(error) as raised:
            signups.sign_up(db.session, target, name="x", email="x@example.org", now=at,
                            secret=app.config["SECRET_KEY"])
        # Checked inside the failed transaction, before rollback could hide a change.
        after = [check_counters(draft.id), check_counters(closing.id), rows(Registration), rows(OutboxMessage)]
        db.session.rollback()
        assert after == before
        return raised.value

    assert attempt("no-such-event", now, NotFound)
    for target in (draft, draft.slug):
        assert isinstance(attempt(target, now, Conflict), EventNotOpen)
    for target in (closing, closing.slug):
        assert isinstance(attempt(target, after_close, Conflict), SignupClosed)
    assert check_counters(closing.id)["seats"] == 1 and rows(Registration) == 2


def test_counter_update_never_overshoots(app, create_event, now):
    event = create_event(capacity=3)
    outcomes = [join(app, event, f"p{i}@example.org", now).outcome for i in range(10)]
    assert outcomes == ["confirmed"] * 3 + ["waitlisted"] * 7
    snap = check_counters(event.id)
    assert snap["seats"] == 3 and snap["last"] == 7
    assert list(snap["states"].values()).count("waitlisted") == 7


def test_seat_freed_after_signup_read_the_event_full_goes_to_that_signup(app, create_event, now, backend):
    if backend != "postgres":
        pytest.skip("SQLite serialises whole write transactions")
    secret = app.config["SECRET_KEY"]
    ev = create_event(title="Tight", capacity=1)
    eid, slug = ev.id, ev.slug
    ann = signups.sign_up(db.session, ev, name="Ann", email="ann@example.org", now=now, secret=secret)
    ann_id = ann.registration.id
    db.session.commit()
    fired = []

    def after(conn, cursor, statement, params, context, executemany):
        # Bob's signup has read the event (full) and written his row, and not yet locked the event.
        if not fired and statement.startswith("INSERT INTO registrations"):
            fired.append(1)
            # Meanwhile another request: Ann cancels and commits (nobody is waitlisted yet).
            with Session(db.engine) as other:
                signups.cancel_registration(other, other.get(Registration, ann_id), now=now)
                other.commit()

    sa_event.listen(db.engine, "after_cursor_execute", after)
    try:
        bob = signups.sign_up(db.session, slug, name="Bob", email="bob@example.org", now=now, secret=secret)
        db.session.commit()
    finally:
        sa_event.remove(db.engine, "after_cursor_execute", after)
    assert fired
    db.session.expire_all()
    event = db.session.get(Event, eid)
    actual = db.session.scalar(select(func.count()).select_from(Registration).where(
        Registration.event_id == eid, Registration.state.in_(("confirmed", "pending"))))
    assert event.seats_taken == actual
    assert not (bob.outcome == "waitlisted" and event.seats_taken < event.capacity), \
        "Bob waits on the waitlist while the only seat is free"
