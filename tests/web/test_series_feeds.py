"""Issue 20's series in calendars: "every third Wednesday at 17:00 Europe/Berlin" across a DST change,
with one skipped date, one moved occurrence and one cancelled one. The database, the public feed expanded
by recurring-ical-events, the same feed expanded by ical.js, and the personal feed of a whole-series
registrant list the same occurrences at the same UTC instants; the download of one occurrence stays one
event; the tag and speaker feeds follow the series."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar
from sqlalchemy import select

from scheduler.domain import events as event_rules
from scheduler.domain import series as series_rules
from scheduler.domain import series_signups
from scheduler.extensions import db
from scheduler.models import Event, Registration
from scheduler.tokens import feed_token
from scheduler.web.feeds import speaker_feed_url
from tests.test_calendars_parsers import JS, node_or_skip

BERLIN = ZoneInfo("Europe/Berlin")
#: The window the expansions are read over: past the series' last occurrence.
FROM, TO = datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC)


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def community_call(app, now):
    """The series, its skip, move and cancellation, and Ann, signed up for all of it."""
    speaker = event_rules.create_speaker(db.session, now=now, name="Grace Hopper", email="grace@speakers.test")
    series = series_rules.create_series(
        db.session, now=now, title="Community call", timezone="Europe/Berlin", freq="monthly", byday="3WE",
        first_start=berlin(2026, 11, 18, 17), duration_minutes=60, count=6, double_opt_in=False,
        join_url="https://meet.example.org/call", tags=["Calls"], speakers=[[speaker.id, "host"]])
    secret = app.config["SECRET_KEY"]
    series_rules.publish_series(db.session, series, now=now, secret=secret)
    by_day = {e.recurrence_id.astimezone(BERLIN).date().isoformat(): e for e in series_rules.occurrences(
        db.session, series.id)}
    series_rules.skip_occurrence(db.session, by_day["2026-12-16"], now=now)
    series_rules.edit_occurrence(db.session, by_day["2027-01-20"], now=now, starts_at=berlin(2027, 1, 21, 18),
                                 ends_at=berlin(2027, 1, 21, 19), title="Community call (Thursday)")
    series_rules.cancel_occurrence(db.session, by_day["2027-02-17"], now=now)
    subscription, outcome = series_signups.subscribe(db.session, series, name="Ann", email="ann@example.org",
                                                     timezone="Europe/Paris", now=now, secret=secret)
    assert outcome == "active"
    speaker_url = speaker_feed_url(db.session, speaker)
    db.session.commit()
    return series, subscription, speaker_url


def database_starts(series) -> list[str]:
    return [utc(e.starts_at) for e in db.session.scalars(
        select(Event).where(Event.series_id == series.id, Event.status == "published").order_by(Event.starts_at))]


def expand_python(text: str) -> list[tuple[str, str]]:
    found = recurring_ical_events.of(Calendar.from_ical(text)).between(FROM, TO)
    return sorted((utc(e.start), str(e.get("STATUS", "CONFIRMED"))) for e in found)


def expand_js(text: str, node: str) -> list[tuple[str, str]]:
    done = subprocess.run([node, str(JS / "expand_ics.mjs"), utc(TO)], input=text, capture_output=True,
                          text=True, cwd=JS, timeout=30, check=True)
    return sorted((e["start"], e["status"] or "CONFIRMED") for e in json.loads(done.stdout))


def held(expanded: list[tuple[str, str]]) -> list[str]:
    return [start for start, status in expanded if status != "CANCELLED"]


def test_series_across_dst_is_the_same_in_database_and_every_reader(app, client, community_call):
    series, subscription, speaker_url = community_call
    expected = ["2026-11-18T16:00:00Z", "2027-01-21T17:00:00Z", "2027-03-17T16:00:00Z", "2027-04-21T15:00:00Z"]
    assert database_starts(series) == expected  # 17:00 Berlin before the change is 16:00Z, after it 15:00Z

    public = client.get("/calendar.ics").get_data(as_text=True)
    assert public.count("BEGIN:VEVENT") == 3  # the master, the moved one and the cancelled one
    assert "RRULE:FREQ=MONTHLY;BYDAY=3WE;COUNT=6\r\n" in public
    assert "EXDATE;TZID=Europe/Berlin:20261216T170000\r\n" in public
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20270120T170000\r\n" in public
    assert held(expand_python(public)) == expected
    assert ("2027-02-17T16:00:00Z", "CANCELLED") in expand_python(public)

    registration = db.session.scalar(select(Registration).where(Registration.subscription_id == subscription.id))
    personal = client.get(f"/feeds/{feed_token(app.config['SECRET_KEY'], registration)}.ics").get_data(as_text=True)
    assert held(expand_python(personal)) == expected
    assert "BEGIN:VALARM" in personal

    for path in ("/calendar/calls.ics", speaker_url.removeprefix("http://townhall.test")):
        assert held(expand_python(client.get(path).get_data(as_text=True))) == expected, path

    node = node_or_skip()
    assert held(expand_js(public, node)) == expected
    assert held(expand_js(personal, node)) == expected


def test_download_of_one_occurrence_is_a_single_event(client, community_call):
    series, _subscription, _url = community_call
    first = series_rules.occurrences(db.session, series.id)[0]
    text = client.get(f"/events/{first.slug}.ics").get_data(as_text=True)
    events = Calendar.from_ical(text).events
    assert [utc(e.start) for e in events] == ["2026-11-18T16:00:00Z"]
    assert (events[0].get("RRULE"), events[0].get("RECURRENCE-ID")) == (None, None)
    assert str(events[0]["UID"]) == f"event-{first.id}@townhall.test"


def test_dropped_occurrence_is_cancelled_in_the_personal_feed_only(app, client, community_call, now):
    from scheduler.domain import signups

    series, subscription, _url = community_call
    places = series_signups.subscription_places(db.session, subscription)
    signups.cancel_registration(db.session, places[-1], now=now)
    db.session.commit()
    token = feed_token(app.config["SECRET_KEY"], places[0])
    personal = expand_python(client.get(f"/feeds/{token}.ics").get_data(as_text=True))
    assert ("2027-04-21T15:00:00Z", "CANCELLED") in personal
    assert held(personal) == ["2026-11-18T16:00:00Z", "2027-01-21T17:00:00Z", "2027-03-17T16:00:00Z"]
    assert "2027-04-21T15:00:00Z" in held(expand_python(client.get("/calendar.ics").get_data(as_text=True)))



def test_this_and_all_following_is_two_rules_in_every_feed(app, client, community_call, now):
    from datetime import time

    series, subscription, _url = community_call
    march = next(e for e in series_rules.occurrences(db.session, series.id)
                 if e.recurrence_id == berlin(2027, 3, 17, 17))
    part = series_rules.edit_following(db.session, march, now=now, start_time=time(18, 30))
    db.session.commit()
    expected = ["2026-11-18T16:00:00Z", "2027-01-21T17:00:00Z", "2027-03-17T17:30:00Z", "2027-04-21T16:30:00Z"]
    assert sorted(database_starts(series) + database_starts(part)) == expected
    public = client.get("/calendar.ics").get_data(as_text=True)
    assert public.count("RRULE:FREQ=MONTHLY") == 2 and "UNTIL=20270317T155959Z" in public
    assert held(expand_python(public)) == expected
    registration = db.session.scalar(select(Registration).where(Registration.subscription_id == subscription.id))
    personal = client.get(f"/feeds/{feed_token(app.config['SECRET_KEY'], registration)}.ics").get_data(as_text=True)
    assert held(expand_python(personal)) == expected
    node = node_or_skip()
    assert held(expand_js(public, node)) == expected


def test_series_own_feed(client, community_call):
    series, _subscription, _url = community_call
    response = client.get("/series/community-call.ics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "X-WR-CALNAME:Townhall: Community call\r\n" in text
    assert held(expand_python(text)) == database_starts(series)
    assert "webcal://townhall.test/series/community-call.ics" in client.get("/series/community-call").get_data(
        as_text=True)
    assert client.get("/series/no-such-series.ics").status_code == 404
