"""Series rules: the rule in its zone, the planned window, skips, edits of one or of all following
occurrences, whole-series signups, and reminders for each occurrence of a whole-series signup, fired
through the real dispatcher: exactly once each, never for a cancelled occurrence or a dropped one."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scheduler import dispatch
from scheduler.domain import recurrence, reminders, series_signups, signups
from scheduler.domain import series as series_rules
from scheduler.errors import Conflict, InvalidInput
from scheduler.extensions import db
from scheduler.models import Event, OutboxMessage, Registration, Series, SeriesSubscription

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


def make(app, now, publish=True, **fields) -> Series:
    fields.setdefault("title", "Maintainers' sync")
    fields.setdefault("timezone", "Europe/Berlin")
    fields.setdefault("freq", "weekly")
    fields.setdefault("byday", "WE")
    fields.setdefault("first_start", berlin(2026, 11, 4, 17))
    fields.setdefault("double_opt_in", False)
    series = series_rules.create_series(db.session, now=now, **fields)
    if publish:
        series_rules.publish_series(db.session, series, now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    return series


def local(events) -> list[str]:
    return [e.starts_at.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M") for e in events]


def test_rule_keeps_wall_clock_time_across_dst(app, now):
    series = make(app, now, freq="monthly", byday="-1FR", first_start=berlin(2027, 1, 29, 9), count=4,
                  publish=False)
    starts = recurrence.rule_starts(series)
    assert [s.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M") for s in starts] == [
        "2027-01-29 09:00", "2027-02-26 09:00", "2027-03-26 09:00", "2027-04-30 09:00"]
    assert [s.hour for s in starts] == [8, 8, 8, 7]  # UTC moves with the change, the wall clock does not
    assert recurrence.rrule_text(series) == "FREQ=MONTHLY;BYDAY=-1FR;COUNT=4"


def test_every_other_week_until_a_date(app, now):
    series = make(app, now, interval=2, byday="MO,TH", first_start=berlin(2026, 11, 5, 8, 30),
                  until=berlin(2026, 11, 30, 23), publish=False)
    assert [s.astimezone(BERLIN).strftime("%a %d") for s in recurrence.rule_starts(series)] == [
        "Thu 05", "Mon 16", "Thu 19", "Mon 30"]
    assert recurrence.rrule_text(series).endswith(";UNTIL=20261130T220000Z")


@pytest.mark.parametrize(("fields", "field"), [
    (dict(byday="3XX"), "byday"),
    (dict(byday="3WE"), "byday"),  # a number on a weekly rule
    (dict(freq="monthly", byday=""), "byday"),
    (dict(first_start=datetime(2026, 11, 5, 16, tzinfo=UTC)), "first_start"),  # a Thursday, the rule says WE
    (dict(first_start=datetime(2026, 10, 28, 16, tzinfo=UTC)), "first_start"),  # past
    (dict(count=3, until=datetime(2027, 1, 1, tzinfo=UTC)), "count"),
    (dict(interval=0), "interval"),
    (dict(duration_minutes=0), "duration_minutes"),
    (dict(timezone="Mars/Olympus"), "timezone"),
])
def test_bad_rules_are_refused_with_the_field(app, now, fields, field):
    with pytest.raises(InvalidInput) as refused:
        make(app, now, publish=False, **fields)
    assert field in refused.value.fields
    db.session.rollback()
    assert db.session.scalar(select(Series.id)) is None


def test_window_rolls_on_and_subscribers_follow(app, now):
    series = make(app, now, capacity=1)
    made = series_rules.occurrences(db.session, series.id)
    assert local(made)[:2] == ["2026-11-04 17:00", "2026-11-11 17:00"]
    assert made[-1].starts_at < now + series_rules.HORIZON <= made[-1].starts_at + timedelta(weeks=1)
    subscription, outcome = series_signups.subscribe(db.session, series, name="Ann", email="Ann@Example.org",
                                                     now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert outcome == "active"
    assert len(series_signups.subscription_places(db.session, subscription)) == len(made)
    later = now + timedelta(days=30)
    added = series_rules.plan_all(db.session, now=later, secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert added == 4 or added == 5
    places = series_signups.subscription_places(db.session, subscription)
    assert len(places) == len(made) + added
    assert {p.state for p in places} == {"confirmed"}
    # Again: nothing new, nothing twice.
    assert series_rules.plan_all(db.session, now=later, secret=app.config["SECRET_KEY"]) == 0
    # Per-occurrence confirmations are not sent to a whole-series registrant (one series invitation is).
    assert db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == "confirmed")) is None


def test_skip_refused_while_someone_holds_a_place(app, now):
    series = make(app, now, count=3)
    first, second, _third = series_rules.occurrences(db.session, series.id)
    signups.sign_up(db.session, first, name="Bo", email="bo@example.org", now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    with pytest.raises(Conflict):
        series_rules.skip_occurrence(db.session, first, now=now)
    db.session.rollback()
    series_rules.skip_occurrence(db.session, db.session.get(Event, second.id), now=now)
    db.session.commit()
    series = db.session.get(Series, series.id)
    assert local(series_rules.occurrences(db.session, series.id)) == ["2026-11-04 17:00", "2026-11-18 17:00"]
    assert [s.recurrence_id for s in series.skips] == [berlin(2026, 11, 11, 17)]
    # Planning again does not bring the skipped date back.
    series_rules.plan_occurrences(db.session, series, now=now, secret=app.config["SECRET_KEY"])
    assert len(series_rules.occurrences(db.session, series.id)) == 2


def test_this_and_all_following_splits_the_series(app, now):
    series = make(app, now, count=4)
    subscription, _ = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now,
                                               secret=app.config["SECRET_KEY"])
    events = series_rules.occurrences(db.session, series.id)
    db.session.commit()
    new = series_rules.edit_following(db.session, events[2], now=now, start_time=time(18, 30),
                                      venue="Room 2")
    db.session.commit()
    old = db.session.get(Series, series.id)
    assert (old.count, old.until) == (None, berlin(2026, 11, 18, 17) - timedelta(seconds=1))
    assert (new.count, new.root_id, new.venue) == (2, series.id, "Room 2")
    assert local(series_rules.occurrences(db.session, old.id)) == ["2026-11-04 17:00", "2026-11-11 17:00"]
    moved = series_rules.occurrences(db.session, new.id)
    assert local(moved) == ["2026-11-18 18:30", "2026-11-25 18:30"]
    assert [e.venue for e in moved] == ["Room 2", "Room 2"]
    assert [e.recurrence_id for e in moved] == recurrence.rule_starts(new)
    # The whole-series signup follows both parts; the moved ones were told (an updated invitation each).
    assert len(series_signups.subscription_places(db.session, subscription)) == 4
    assert db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == "event_updated")) is not None


def test_leaving_the_series_gives_up_every_place(app, now):
    series = make(app, now, count=3)
    subscription, _ = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now,
                                               secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert series_signups.cancel_subscription(db.session, subscription, now=now) == 3
    db.session.commit()
    assert {p.state for p in series_signups.subscription_places(db.session, subscription)} == {"cancelled"}
    assert series_signups.cancel_subscription(db.session, subscription, now=now) == 0


def fire_everything_due(app, until: datetime) -> None:
    """What the scheduler does: at each due time, take the work due and fire it through the dispatcher."""
    while True:
        pending = db.session.scalars(select(reminders.PlannedJob.due_at).where(
            reminders.PlannedJob.state == "planned", reminders.PlannedJob.due_at <= until)
            .order_by(reminders.PlannedJob.due_at)).first()
        db.session.commit()
        if pending is None:
            return
        at = pending + timedelta(seconds=1)
        app.config["CLOCK"] = lambda at=at: at
        for job_id, _when in reminders.work_due(db.session, now=at, horizon=timedelta(0)):
            db.session.commit()
            firing = dispatch.fire(db.session, job_id, worker="test", clock=lambda at=at: at)
            while firing.outcome == "more":
                firing = dispatch.resume(db.session, job_id, after=firing.after, worker="test",
                                         clock=lambda at=at: at)


def test_reminders_once_per_occurrence_never_for_cancelled_or_dropped(app, now):
    series = make(app, now, count=4, reminder_offsets=[86400, 3600])
    subscription, _ = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now,
                                               secret=app.config["SECRET_KEY"])
    first, second, third, fourth = series_rules.occurrences(db.session, series.id)
    places = {p.event_id: p for p in series_signups.subscription_places(db.session, subscription)}
    signups.cancel_registration(db.session, places[second.id], now=now)  # dropped by Ann
    series_rules.cancel_occurrence(db.session, third, now=now)  # cancelled by the organiser
    db.session.commit()

    fire_everything_due(app, until=fourth.starts_at)
    fire_everything_due(app, until=fourth.starts_at)  # a second pass finds nothing to send again

    sent = db.session.execute(select(OutboxMessage.event_id, OutboxMessage.dedupe_key).where(
        OutboxMessage.kind == "reminder", OutboxMessage.to_addr == "ann@example.org")).all()
    by_event = {}
    for event_id, key in sent:
        by_event.setdefault(event_id, []).append(key.split(":")[2])
    assert {k: sorted(v) for k, v in by_event.items()} == {first.id: ["3600", "86400"],
                                                           fourth.id: ["3600", "86400"]}
    assert len(sent) == len({key for _, key in sent}) == 4
    assert db.session.scalar(select(Registration.state).where(Registration.id == places[second.id].id)) == \
        "cancelled"


def test_cli_plans_the_window(app, now, runner):
    series = make(app, now, publish=False)
    series.status = "published"  # published without planning: the command makes the occurrences
    db.session.commit()
    result = runner.invoke(args=["series", "plan"])
    assert result.exit_code == 0, result.output
    made = len(series_rules.occurrences(db.session, series.id))
    assert result.output == f"{made} occurrence(s) planned.\n" and made == 26  # Wednesdays from 4 November within 183 days
    assert runner.invoke(args=["series", "plan"]).output == "0 occurrence(s) planned.\n"


def test_following_without_a_change_splits_nothing(app, now):
    series = make(app, now, count=3)
    third = series_rules.occurrences(db.session, series.id)[2]
    assert series_rules.edit_following(db.session, third, now=now, start_time=time(17, 0),
                                       title="Maintainers' sync") is series
    assert db.session.scalar(select(func.count()).select_from(Series)) == 1


def test_the_same_address_twice_at_once_is_one_signup(app, now):
    import threading

    series = make(app, now, count=2)
    series_id = series.id
    db.session.commit()
    barrier, outcomes, errors = threading.Barrier(2), [], []

    def sign_up():
        with app.app_context():
            try:
                found = db.session.get(Series, series_id)
                db.session.commit()
                barrier.wait()
                outcomes.append(series_signups.subscribe(db.session, found, name="Ann", email="ann@example.org",
                                                         now=now, secret=app.config["SECRET_KEY"])[1])
                db.session.commit()
            except Exception as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sign_up) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(outcomes) == ["active", "repeat"]
    assert db.session.scalar(select(func.count()).select_from(SeriesSubscription)) == 1
    assert db.session.scalar(select(func.count()).select_from(Registration)) == 2


def test_coming_back_after_leaving(app, now):
    series = make(app, now, count=2)
    subscription, _ = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now,
                                               secret=app.config["SECRET_KEY"])
    series_signups.cancel_subscription(db.session, subscription, now=now)
    again, outcome = series_signups.subscribe(db.session, series, name="Ann B.", email="ann@example.org", now=now,
                                              secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert (again.id, outcome, again.state, again.name) == (subscription.id, "active", "active", "Ann B.")
    assert [p.state for p in series_signups.subscription_places(db.session, again)] == ["confirmed", "confirmed"]


def test_coming_back_keeps_a_single_drop(app, now):
    series = make(app, now, count=2)
    subscription, _ = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now,
                                               secret=app.config["SECRET_KEY"])
    first, _second = series_signups.subscription_places(db.session, subscription)
    signups.cancel_registration(db.session, first, now=now - timedelta(minutes=5))  # dropped on its own
    series_signups.cancel_subscription(db.session, subscription, now=now)
    series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now + timedelta(hours=1),
                             secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert [p.state for p in series_signups.subscription_places(db.session, subscription)] == ["cancelled",
                                                                                              "confirmed"]
