"""Any series rule (Hypothesis draws the zone, frequency, interval, weekdays, n-th weekday, day of the month,
first day, time, count and skipped dates): the public feed, expanded by recurring-ical-events, lists exactly
the database's occurrences at the same UTC instants, all at one wall-clock time in the series' zone."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar
from sqlalchemy import select

from scheduler.domain import recurrence
from scheduler.domain import series as series_rules
from scheduler.errors import RuleGivesNothing
from scheduler.extensions import db
from scheduler.models import Event

ZONES = ("Europe/Berlin", "America/Los_Angeles", "Australia/Sydney", "UTC", "Asia/Kolkata")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@pytest.fixture
def backend() -> str:
    return "sqlite"  # what is tested is the rule's expansion, not the database


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(zone=st.sampled_from(ZONES), freq=st.sampled_from(("weekly", "monthly")), interval=st.integers(1, 3),
       days=st.lists(st.sampled_from(WEEKDAYS), min_size=0, max_size=3, unique=True),
       nth=st.sampled_from(("", "1", "2", "3", "4", "-1")), monthday=st.one_of(st.none(), st.integers(1, 31)),
       day=st.dates(min_value=date(2026, 11, 3), max_value=date(2027, 6, 30)),
       clock_time=st.times(), count=st.one_of(st.none(), st.integers(1, 12)),
       skips=st.lists(st.integers(0, 5), max_size=2, unique=True))
def test_any_rule_expands_in_the_feed_as_in_the_database(app, client, now, zone, freq, interval, days, nth, monthday,
                                                          day, clock_time, count, skips):
    byday = ",".join(nth + d if freq == "monthly" else d for d in days[:1 if freq == "monthly" else 3])
    try:
        rule = recurrence.rule_fields(timezone=zone, freq=freq, interval=interval, byday=byday,
                                      bymonthday=monthday if freq == "monthly" else None, day=day,
                                      start_time=clock_time.replace(second=0, microsecond=0), count=count,
                                      until=None, now=now)
    except RuleGivesNothing:
        return
    series = series_rules.create_series(db.session, now=now, title="Any rule", double_opt_in=False,
                                        duration_minutes=45, **rule)
    series_rules.publish_series(db.session, series, now=now, secret=app.config["SECRET_KEY"])
    made = series_rules.occurrences(db.session, series.id)
    for index in skips:
        if index < len(made) - 1:
            series_rules.skip_occurrence(db.session, made[index], now=now)
    db.session.commit()
    uid = f"series-{series.id}@townhall.test"
    rows = db.session.scalars(select(Event).where(Event.series_id == series.id).order_by(Event.starts_at)).all()
    end = max((e.starts_at for e in rows), default=now) + timedelta(minutes=1)
    feed = Calendar.from_ical(client.get("/calendar.ics").get_data(as_text=True))
    expanded = sorted(e.start.astimezone(UTC) for e in recurring_ical_events.of(feed).between(now, end)
                      if str(e["UID"]) == uid)
    assert expanded == [e.starts_at for e in rows]
    local = {e.starts_at.astimezone(ZoneInfo(zone)).time() for e in rows}
    assert len(local) <= 1  # one wall-clock time, whatever the offset (a time a DST change skips aside)
