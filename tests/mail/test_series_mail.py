"""A whole-series signup's mail: one REQUEST with the series' RRULE (not one invitation per occurrence), an
update for one RECURRENCE-ID when one occurrence changes, a new REQUEST when the rule changes, a CANCEL
when they leave; with double opt-in, a confirmation link first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import recurring_ical_events
from icalendar import Calendar
from sqlalchemy import select

from scheduler.domain import recurrence, series_signups
from scheduler.domain import series as series_rules
from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.models import OutboxMessage

BERLIN = ZoneInfo("Europe/Berlin")
FIRST = datetime(2026, 11, 4, 17, tzinfo=BERLIN).astimezone(UTC)


def make(app, now, **fields):
    series = series_rules.create_series(db.session, now=now, title="Weekly sync", timezone="Europe/Berlin",
                                        freq="weekly", byday="WE", first_start=FIRST, count=fields.pop("count", 4),
                                        double_opt_in=fields.pop("double_opt_in", False), **fields)
    series_rules.publish_series(db.session, series, now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    return series


def mails(kind: str) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                   .order_by(OutboxMessage.id)))


def starts(ics: str) -> list[datetime]:
    found = recurring_ical_events.of(Calendar.from_ical(ics)).between(FIRST - timedelta(days=1),
                                                                      FIRST + timedelta(days=60))
    return sorted(e.start.astimezone(UTC) for e in found if str(e.get("STATUS", "")) != "CANCELLED")


def test_one_request_for_the_series_then_one_recurrence_id_per_change(app, now):
    series = make(app, now)
    subscription, _ = series_signups.subscribe(db.session, series, name="Ann, B.", email="ann@example.org",
                                               now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    (welcome,) = mails("series_subscribed")
    assert mails("confirmed") == []
    calendar = Calendar.from_ical(welcome.ics)
    (master,) = calendar.events
    assert (str(calendar["METHOD"]), welcome.ics_method) == ("REQUEST", "REQUEST")
    assert str(master["UID"]).startswith(f"series-{series.id}@")
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=4;BYDAY=WE"
    assert 'ATTENDEE;CN="Ann, B.";' in welcome.ics and "ORGANIZER" in welcome.ics
    database = [e.starts_at for e in series_rules.occurrences(db.session, series.id)]
    assert starts(welcome.ics) == database
    assert "/s/" in welcome.body_text

    second = series_rules.occurrences(db.session, series.id)[1]
    series_rules.edit_occurrence(db.session, second, now=now, starts_at=second.starts_at + timedelta(hours=1),
                                 ends_at=second.ends_at + timedelta(hours=1))
    db.session.commit()
    (update,) = mails("event_updated")
    (changed,) = Calendar.from_ical(update.ics).events
    assert str(changed["UID"]) == str(master["UID"])
    assert changed["RECURRENCE-ID"].dt.astimezone(UTC) == database[1]
    assert changed.start.astimezone(UTC) == database[1] + timedelta(hours=1)
    assert "RRULE" not in changed


def test_a_skipped_date_updates_the_series_invitation(app, now):
    series = make(app, now, count=None)  # weekly without end: planned for the window only
    series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now,
                             secret=app.config["SECRET_KEY"])
    db.session.commit()
    made = series_rules.occurrences(db.session, series.id)
    later = recurrence.rule_starts(series, before=made[-1].starts_at + timedelta(weeks=3))[-1]
    assert later > made[-1].starts_at  # not made yet: nobody holds a place, so it can be skipped
    series_rules.skip_date(db.session, series, later, now=now)
    # Ann holds a place in the third: it is cancelled (she is told), not skipped.
    series_rules.cancel_occurrence(db.session, made[2], now=now)
    db.session.commit()
    (update,) = mails("series_updated")
    local = later.astimezone(BERLIN).strftime("%Y%m%dT%H%M%S")
    assert f"EXDATE;TZID=Europe/Berlin:{local}" in update.ics
    assert starts(update.ics) == [e.starts_at for e in made if e.starts_at < FIRST + timedelta(days=60)]
    (cancel,) = mails("event_cancelled")
    (occurrence,) = Calendar.from_ical(cancel.ics).events
    assert (str(occurrence["UID"]), occurrence["RECURRENCE-ID"].dt.astimezone(UTC)) == (
        f"series-{series.id}@townhall.test", made[2].recurrence_id)


def test_double_opt_in_then_leaving(app, now, client):
    series = make(app, now, double_opt_in=True)
    subscription, outcome = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org",
                                                     now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    assert outcome == "pending"
    assert series_signups.subscription_places(db.session, subscription) == []
    (confirm,) = mails("series_confirm")
    link = next(line for line in confirm.body_text.splitlines() if "/confirm" in line).strip()
    path = link.removeprefix("http://townhall.test")
    assert client.get(path).status_code == 200  # a GET (a link scanner) changes nothing
    assert mails("series_subscribed") == []
    page = client.get(path).get_data(as_text=True)
    csrf = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    assert client.post(path, data={"csrf_token": csrf}).status_code == 303
    assert len(series_signups.subscription_places(db.session, subscription)) == 4
    assert len(mails("series_subscribed")) == 1
    series_signups.cancel_subscription(db.session, db.session.get(type(subscription), subscription.id), now=now)
    db.session.commit()
    (left,) = mails("series_left")
    assert left.ics_method == "CANCEL" and "STATUS:CANCELLED" in left.ics


def test_cancelled_series_is_one_cancel_for_a_whole_series_registrant(app, now):
    from scheduler.domain import signups

    series = make(app, now)
    series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now,
                             secret=app.config["SECRET_KEY"])
    first = series_rules.occurrences(db.session, series.id)[0]
    signups.sign_up(db.session, first, name="Bo", email="bo@example.org", now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    series_rules.cancel_series(db.session, series, now=now)
    db.session.commit()
    (cancelled,) = mails("series_cancelled")
    assert cancelled.ics_method == "CANCEL" and cancelled.to_addr == "ann@example.org"
    (master,) = Calendar.from_ical(cancelled.ics).events
    assert str(master["STATUS"]) == "CANCELLED" and "RRULE" in master
    # Bo, signed up for one occurrence, is told about it; Ann not once per occurrence.
    assert [m.to_addr for m in mails("event_cancelled")] == ["bo@example.org"]


def test_an_occurrence_held_on_its_own_stays_out_of_the_series_invitation(app, now):
    from scheduler.domain import signups

    series = make(app, now)
    first = series_rules.occurrences(db.session, series.id)[0]
    signups.sign_up(db.session, first, name="Ann", email="ann@example.org", now=now, secret=app.config["SECRET_KEY"])
    series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org", now=now,
                             secret=app.config["SECRET_KEY"])
    db.session.commit()
    (own,) = mails("confirmed")  # the occurrence's own invitation, with its own UID
    ics = outbox.fill(own).ics  # composed at delivery
    assert str(Calendar.from_ical(ics).events[0]["UID"]) == f"event-{first.id}@townhall.test"
    (welcome,) = mails("series_subscribed")
    database = [e.starts_at for e in series_rules.occurrences(db.session, series.id)]
    assert starts(welcome.ics) == database[1:]  # not twice in their calendar
