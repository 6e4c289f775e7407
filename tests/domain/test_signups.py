"""Signup rules through the domain functions: seats, waitlist order, holds, promotion, repeats, windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from scheduler import signals
from scheduler.domain import queries, signups
from scheduler.domain.events import cancel_event, update_event
from scheduler.errors import EventCancelled, EventFull, InvalidTransition, SignupClosed
from scheduler.extensions import db
from scheduler.models import OutboxMessage, Registration

SECRET = "test-secret-key"


def join(event, email, now, **kw):
    result = signups.sign_up(db.session, event, name=email.split("@")[0], email=email, now=now, secret=SECRET, **kw)
    db.session.commit()
    return result


def kinds() -> list[tuple[str, str]]:
    return [(m.kind, m.to_addr) for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


def test_sign_up_fills_seats_then_waitlist_in_order(create_event, now):
    event = create_event(capacity=2)
    outcomes = [join(event, f"p{i}@example.org", now).outcome for i in range(5)]
    assert outcomes == ["confirmed", "confirmed", "waitlisted", "waitlisted", "waitlisted"]
    waiting = db.session.scalars(select(Registration).where(Registration.state == "waitlisted")
                                 .order_by(Registration.id)).all()
    assert [r.waitlist_seq for r in waiting] == [1, 2, 3]
    assert [queries.waitlist_position(db.session, r) for r in waiting] == [1, 2, 3]


def test_sign_up_unlimited_capacity_never_waitlists(create_event, now):
    event = create_event(capacity=None)
    assert {join(event, f"p{i}@example.org", now).outcome for i in range(5)} == {"confirmed"}


def test_sign_up_repeat_keeps_one_row_and_resends_link(create_event, now):
    event = create_event()
    first = join(event, "ada@example.org", now)
    again = join(event, "ADA@example.org", now)
    assert again.outcome == "repeat"
    assert again.registration.id == first.registration.id
    assert again.token == first.token
    assert kinds() == [("confirmed", "ada@example.org"), ("manage_link", "ada@example.org")]


def test_cancel_seat_promotes_head_and_cancel_twice_is_harmless(create_event, now):
    event = create_event(capacity=1)
    a, b, c = (join(event, f"{x}@example.org", now).registration for x in "abc")
    promoted = signups.cancel_registration(db.session, a, now=now)
    db.session.commit()
    assert [r.id for r in promoted] == [b.id]
    assert (b.state, c.state, queries.waitlist_position(db.session, c)) == ("confirmed", "waitlisted", 1)
    assert signups.cancel_registration(db.session, a, now=now) == []
    db.session.commit()
    assert kinds().count(("cancelled", "a@example.org")) == 1


def test_cancel_waitlisted_promotes_nobody(create_event, now):
    event = create_event(capacity=1)
    join(event, "a@example.org", now)
    b = join(event, "b@example.org", now).registration
    c = join(event, "c@example.org", now).registration
    assert signups.cancel_registration(db.session, b, now=now) == []
    db.session.commit()
    assert queries.waitlist_position(db.session, c) == 1


def test_pending_hold_takes_seat_and_expiry_passes_it_on(create_event, now):
    event = create_event(capacity=1, double_opt_in=True)
    a = join(event, "a@example.org", now, hold_hours=2).registration
    b = join(event, "b@example.org", now).registration
    assert (a.state, b.state) == ("pending", "waitlisted")
    assert a.hold_expires_at == now + timedelta(hours=2)
    assert signups.expire_holds(db.session, now=now + timedelta(hours=1)) == 0
    assert signups.expire_holds(db.session, now=now + timedelta(hours=3)) == 1
    db.session.commit()
    assert (a.state, b.state) == ("expired", "pending")  # b never confirmed their address: a hold, not a seat
    assert ("promoted", "b@example.org") in kinds()


def test_confirm_email_turns_hold_into_seat_once(create_event, now):
    event = create_event(double_opt_in=True)
    a = join(event, "a@example.org", now).registration
    assert signups.confirm_email(db.session, a, now=now) == "confirmed"
    assert signups.confirm_email(db.session, a, now=now) == "confirmed"
    db.session.commit()
    assert kinds() == [("signup_received", "a@example.org"), ("confirmed", "a@example.org")]


def test_confirm_email_after_expiry_when_full_goes_to_waitlist(create_event, now):
    event = create_event(capacity=1, double_opt_in=True)
    a = join(event, "a@example.org", now).registration
    signups.expire_holds(db.session, now=now + timedelta(hours=25))
    db.session.commit()
    b = join(event, "b@example.org", now + timedelta(hours=25)).registration
    assert b.state == "pending"
    assert signups.confirm_email(db.session, a, now=now + timedelta(hours=26)) == "waitlisted"


def test_confirm_cancelled_registration_is_refused(create_event, now):
    event = create_event()
    a = join(event, "a@example.org", now).registration
    signups.cancel_registration(db.session, a, now=now)
    with pytest.raises(InvalidTransition):
        signups.confirm_email(db.session, a, now=now)


def test_sign_up_again_after_cancelling_reuses_row(create_event, now):
    event = create_event(capacity=1)
    a = join(event, "a@example.org", now).registration
    signups.cancel_registration(db.session, a, now=now)
    db.session.commit()
    again = join(event, "a@example.org", now + timedelta(minutes=1))
    assert (again.outcome, again.registration.id) == ("confirmed", a.id)
    assert db.session.scalar(select(Registration).where(Registration.id == a.id)).cancelled_at is None


def test_raising_capacity_promotes_in_line_order(create_event, now):
    event = create_event(capacity=1)
    regs = [join(event, f"p{i}@example.org", now).registration for i in range(4)]
    update_event(db.session, event, now=now, capacity=3)
    db.session.commit()
    assert [r.state for r in regs] == ["confirmed", "confirmed", "confirmed", "waitlisted"]
    assert queries.waitlist_position(db.session, regs[3]) == 1


def test_promote_by_hand_requires_waitlisted_and_a_free_seat(create_event, now):
    event = create_event(capacity=1)
    a = join(event, "a@example.org", now).registration
    b = join(event, "b@example.org", now).registration
    with pytest.raises(EventFull):
        signups.promote(db.session, b, now=now)
    with pytest.raises(InvalidTransition):
        signups.promote(db.session, a, now=now)


def test_check_open_windows_and_states(create_event, now):
    event = create_event(signup_opens_at=now + timedelta(hours=1))
    with pytest.raises(SignupClosed, match="Signup has not opened yet."):
        signups.sign_up(db.session, event, name="x", email="x@example.org", now=now, secret=SECRET)
    db.session.rollback()
    closed = create_event(signup_closes_at=now - timedelta(minutes=1))
    with pytest.raises(SignupClosed, match="Signup for this event has closed."):
        signups.check_open(closed, now=now)
    started = create_event(starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1))
    with pytest.raises(SignupClosed, match="already started"):
        signups.check_open(started, now=now)
    gone = create_event()
    cancel_event(db.session, gone, now=now)
    with pytest.raises(EventCancelled):
        signups.check_open(gone, now=now)


def test_failed_sign_up_leaves_no_row_and_no_mail(create_event, now):
    event = create_event(signup_closes_at=now - timedelta(minutes=1))
    with pytest.raises(SignupClosed):
        signups.sign_up(db.session, event, name="x", email="x@example.org", now=now, secret=SECRET)
    db.session.rollback()
    assert db.session.scalars(select(Registration)).all() == []
    assert kinds() == []


def test_find_by_token_and_revoked_feed(app, create_event, now):
    from scheduler.tokens import feed_token, token_hash

    event = create_event()
    result = join(event, "a@example.org", now)
    assert signups.find_by_token(db.session, result.token).id == result.registration.id
    assert signups.find_by_token(db.session, result.token[:-1] + "x") is None
    old = feed_token(SECRET, result.registration)
    new = signups.revoke_feed(db.session, result.registration, secret=SECRET)
    assert new != old and result.registration.feed_token_hash == token_hash(new)


def test_waitlisted_again_after_cancelling_gets_its_waitlist_mail_again(create_event, now):
    event = create_event(capacity=1)
    join(event, "a@example.org", now)
    b = join(event, "b@example.org", now).registration
    signups.cancel_registration(db.session, b, now=now)
    db.session.commit()
    assert join(event, "b@example.org", now + timedelta(minutes=5)).outcome == "waitlisted"
    assert [k for k in kinds() if k[1] == "b@example.org"] == [
        ("waitlisted", "b@example.org"), ("cancelled", "b@example.org"), ("waitlisted", "b@example.org")]


def test_changes_within_one_second_each_get_their_mail(create_event, now):
    """Cancel, sign up again and cancel again within a second: every change is its own message."""
    event = create_event(capacity=5)
    a = join(event, "a@example.org", now).registration
    for step in range(1, 4):
        moment = now + timedelta(milliseconds=200 * step)
        if step % 2:
            signups.cancel_registration(db.session, a, now=moment)
            db.session.commit()
        else:
            assert join(event, "a@example.org", moment).outcome == "confirmed"
    assert [kind for kind, _ in kinds()] == ["confirmed", "cancelled", "confirmed", "cancelled"]
    again = signups.sign_up(db.session, event, name="a", email="a@example.org", now=now + timedelta(seconds=1),
                            secret=SECRET)
    signals.registration_confirmed.send(again.registration, session=db.session, now=now)  # the same change, twice
    db.session.commit()
    assert [kind for kind, _ in kinds()] == ["confirmed", "cancelled", "confirmed", "cancelled", "confirmed"]


def test_cancel_and_capacity_edit_hold_promoted_seats_for_the_given_hours(create_event, now):
    event = create_event(capacity=1, double_opt_in=True)
    a, b, c = (join(event, f"{x}@example.org", now).registration for x in "abc")
    signups.cancel_registration(db.session, a, now=now, hold_hours=2)
    update_event(db.session, event, now=now, capacity=2, hold_hours=3)
    db.session.commit()
    assert (b.state, b.hold_expires_at) == ("pending", now + timedelta(hours=2))
    assert (c.state, c.hold_expires_at) == ("pending", now + timedelta(hours=3))


def test_hold_never_lasts_past_the_event_start(create_event, now):
    start = now + timedelta(hours=5)
    event = create_event(capacity=1, double_opt_in=True, starts_at=start)
    a = join(event, "a@example.org", now, hold_hours=24).registration
    b = join(event, "b@example.org", now, hold_hours=24).registration
    assert (a.state, a.hold_expires_at) == ("pending", start)
    signups.cancel_registration(db.session, a, now=now + timedelta(hours=1), hold_hours=24)  # b is promoted
    db.session.commit()
    assert (b.state, b.hold_expires_at) == ("pending", start)
    c = join(create_event(double_opt_in=True), "c@example.org", now, hold_hours=24).registration
    assert c.hold_expires_at == now + timedelta(hours=24)  # far from the start: the full hold


def test_sign_up_by_slug_seats_repeats_and_waitlists_in_the_callers_transaction(create_event, now):
    """The web form's way: by slug, in the caller's session, which the caller commits."""
    slug = create_event(capacity=1).slug
    results = [signups.sign_up(db.session, slug, name="N", email=email, now=now, secret=SECRET)
               for email in ("new@example.org", "NEW@example.org", "next@example.org")]  # seat, repeat, waitlist
    assert db.session().in_transaction()  # nothing committed behind the caller's back
    db.session.commit()
    assert [r.outcome for r in results] == ["confirmed", "repeat", "waitlisted"]
    for result, email in zip(results, ["new@example.org"] * 2 + ["next@example.org"], strict=True):
        assert (result.registration.email_key, result.event.slug) == (email, slug)
    db.session.expire_all()
    assert [(r.email_key, r.state) for r in db.session.scalars(select(Registration).order_by(Registration.id))] == [
        ("new@example.org", "confirmed"), ("next@example.org", "waitlisted")]
    assert [m.kind for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))] == [
        "confirmed", "manage_link", "waitlisted"]
