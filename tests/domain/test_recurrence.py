"""The recurrence rule as plain functions of a Series row's columns: no database, no Flask."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from scheduler.domain import recurrence
from scheduler.errors import InvalidInput, RuleGivesNothing
from scheduler.models import Series, SeriesSkip

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def rule(**fields) -> Series:
    """A series that exists only in memory: what the rule functions read."""
    fields = {"timezone": "Europe/Berlin", "freq": "weekly", "interval": 1, "byday": "WE", "bymonthday": None,
              "count": None, "until": None, "duration_minutes": 60, **fields}
    series = Series(**fields)
    series.skips = []
    return series


def local(moments) -> list[str]:
    return [m.astimezone(BERLIN).strftime("%a %Y-%m-%d %H:%M") for m in moments]


def test_the_wall_clock_time_holds_across_the_dst_change():
    """The last Friday of each month at 17:00 in Berlin: 16:00 UTC in October, 16:00 UTC then 17:00 UTC after."""
    series = rule(freq="monthly", byday="-1FR", count=4,
                  first_start=datetime(2026, 10, 30, 17, tzinfo=BERLIN).astimezone(UTC))
    starts = recurrence.rule_starts(series)
    assert local(starts) == ["Fri 2026-10-30 17:00", "Fri 2026-11-27 17:00", "Fri 2026-12-25 17:00",
                             "Fri 2027-01-29 17:00"]
    assert [s.astimezone(UTC).hour for s in starts] == [16, 16, 16, 16]  # CET from 25 October on
    summer = rule(byday="TU", count=2, first_start=datetime(2026, 10, 20, 17, tzinfo=BERLIN).astimezone(UTC))
    assert [s.astimezone(UTC).hour for s in recurrence.rule_starts(summer)] == [15, 16]  # CEST, then CET
    assert recurrence.rrule_text(series) == "FREQ=MONTHLY;BYDAY=-1FR;COUNT=4"


def test_skipped_dates_are_left_out_and_the_rule_text_keeps_until_in_utc():
    series = rule(interval=2, first_start=datetime(2026, 11, 4, 17, tzinfo=BERLIN).astimezone(UTC),
                  until=datetime(2026, 12, 16, 23, 0, tzinfo=BERLIN).astimezone(UTC))
    starts = recurrence.rule_starts(series)
    assert local(starts) == ["Wed 2026-11-04 17:00", "Wed 2026-11-18 17:00", "Wed 2026-12-02 17:00",
                             "Wed 2026-12-16 17:00"]
    series.skips = [SeriesSkip(recurrence_id=starts[1])]
    assert recurrence.occurrence_starts(series) == [starts[0], starts[2], starts[3]]
    assert recurrence.rule_starts(series, before=starts[2]) == starts[:2]
    assert recurrence.rrule_text(series) == "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE;UNTIL=20261216T220000Z"


def test_rule_fields_from_a_first_day_take_the_days_weekday_and_the_earlier_end():
    """No weekday given: the first day's. A count and an end date: whichever ends the series first, as a COUNT."""
    fields = recurrence.rule_fields(timezone="Europe/Berlin", freq="weekly", interval=1, byday="", bymonthday=None,
                                    day=date(2026, 11, 4), start_time=time(17, 0), count=10,
                                    until=date(2026, 11, 25), now=NOW)
    assert fields["byday"] == "WE"
    assert fields["first_start"] == datetime(2026, 11, 4, 17, tzinfo=BERLIN)
    assert (fields["count"], fields["until"]) == (4, None)  # 4, 11, 18 and 25 November
    monthly = recurrence.rule_fields(timezone="Europe/Berlin", freq="monthly", interval=1, byday="3we",
                                     bymonthday=None, day=date(2026, 11, 1), start_time=time(17, 0), count=None,
                                     until=None, now=NOW)
    assert (monthly["byday"], monthly["first_start"]) == ("3WE", datetime(2026, 11, 18, 17, tzinfo=BERLIN))


@pytest.mark.parametrize(("changes", "error", "field"), [
    ({"byday": "XX"}, InvalidInput, "byday"),
    ({"until": date(2026, 11, 3)}, RuleGivesNothing, "until"),
    ({"day": date(2026, 10, 1), "byday": "", "count": None, "until": None, "interval": 1, "freq": "weekly",
      "start_time": time(17, 0)}, None, None),
])
def test_rule_fields_refuse_what_gives_nothing(changes, error, field):
    arguments = {"timezone": "Europe/Berlin", "freq": "weekly", "interval": 1, "byday": "WE", "bymonthday": None,
                 "day": date(2026, 11, 4), "start_time": time(17, 0), "count": None, "until": None, "now": NOW,
                 **changes}
    if error is None:  # a first day in the past: the rule's first start after now
        assert recurrence.rule_fields(**arguments)["first_start"] > NOW
        return
    with pytest.raises(error) as refused:
        recurrence.rule_fields(**arguments)
    assert refused.value.field == field
