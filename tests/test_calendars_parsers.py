"""Every kind of calendar output, read back by four parsers that must all agree.

icalendar (which the app uses for VTIMEZONEs), vobject, ics (python) and ical.js (Thunderbird's,
run under Node) parse the download, each feed, a REQUEST and a CANCEL. They must agree on UID,
summary, start and end — in UTC and as wall-clock time in the event's zone across a DST change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import ics
import pytest
import vobject
from icalendar import Calendar
from sqlalchemy import select

from scheduler.domain import events as event_rules
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.models import OutboxMessage
from scheduler.tokens import feed_token
from scheduler.web.feeds import speaker_feed_url

HOSTILE = "a, b; c\\ d\nnext line 🎉 Evil\r\nATTENDEE:mailto:x@y"
CLEAN = "a, b; c\\ d next line 🎉 Evil ATTENDEE:mailto:x@y"
LA = ZoneInfo("America/Los_Angeles")
JS = Path(__file__).resolve().parent / "js"


@pytest.fixture
def backend() -> str:
    return "sqlite"  # what is tested is the bytes, not the database: one backend keeps this fast


def node_or_skip() -> str:
    node = shutil.which("node")
    if node and (JS / "node_modules" / "ical.js").is_dir():
        return node
    reason = "node and tests/js/node_modules/ical.js are needed (make test runs npm ci)"
    if os.environ.get("REQUIRE_NODE") == "1" or os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wall(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _row(uid, summary, start: datetime, end: datetime) -> dict:
    return {"uid": str(uid), "summary": str(summary), "start": _utc(start), "end": _utc(end),
            "start_wall": _wall(start), "end_wall": _wall(end)}


def with_icalendar(text: str) -> list[dict]:
    return [_row(e["UID"], e["SUMMARY"], e.start, e.end) for e in Calendar.from_ical(text).events]


def with_vobject(text: str) -> list[dict]:
    calendar = vobject.readOne(text)
    return [_row(e.uid.value, e.summary.value, e.dtstart.value, e.dtend.value)
            for e in calendar.contents.get("vevent", [])]


def with_ics(text: str) -> list[dict]:
    events = sorted(ics.Calendar(text).events, key=lambda e: (e.begin, e.uid))
    return [_row(e.uid, e.name, e.begin.datetime, e.end.datetime) for e in events]


def with_icaljs(text: str, node: str) -> list[dict]:
    done = subprocess.run([node, str(JS / "parse_ics.mjs")], input=text, capture_output=True, text=True,
                          cwd=JS, timeout=30, check=True)
    return [{"uid": e["uid"], "summary": e["summary"], "start": e["start_utc"].replace(".000Z", "Z"),
             "end": e["end_utc"].replace(".000Z", "Z"), "start_wall": e["start_wall"], "end_wall": e["end_wall"]}
            for e in json.loads(done.stdout)["events"]]


def by_start(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["start"], r["uid"]))


def dst_thursdays(now: datetime) -> tuple[datetime, datetime]:
    """09:00 Los Angeles on the Thursdays before and after the next spring-forward."""
    year = now.year + 1
    first = date(year, 3, 1)
    second_sunday = first + timedelta(days=(6 - first.weekday()) % 7 + 7)
    before = datetime.combine(second_sunday - timedelta(days=3), datetime.min.time(), LA).replace(hour=9)
    after = datetime.combine(second_sunday + timedelta(days=4), datetime.min.time(), LA).replace(hour=9)
    return before.astimezone(UTC), after.astimezone(UTC)


@pytest.fixture
def produced(app, client, create_event, now) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Every kind of output for one set of events, and what each must contain."""
    before, after = dst_thursdays(now)
    hostile = create_event(title=HOSTILE, timezone="America/Los_Angeles", starts_at=before,
                           ends_at=before + timedelta(hours=1, minutes=30), tags=["Series"],
                           speakers=[("Soumith Chintala", "panelist")], venue="Hall; 2, left")
    later = create_event(title="After the change", timezone="America/Los_Angeles", starts_at=after,
                         ends_at=after + timedelta(hours=1), tags=["Series"])
    berlin = create_event(title="Berlin", timezone="Europe/Berlin")
    mine = signups.sign_up(db.session, hostile, name="Ann, B.", email="ann@example.org", now=now,
                           secret=app.config["SECRET_KEY"], timezone="Europe/Paris").registration
    signups.sign_up(db.session, later, name="Ann, B.", email="ann@example.org", now=now,
                    secret=app.config["SECRET_KEY"])
    speaker_url = speaker_feed_url(db.session, hostile.speakers[0].speaker)
    db.session.commit()

    confirmation_ics = outbox.fill(db.session.scalar(select(OutboxMessage).where(
        OutboxMessage.kind == "confirmed", OutboxMessage.registration_id == mine.id))).ics
    # The update moves the hostile event by a week: still before the change, still 09:00 wall clock.
    event_rules.update_event(db.session, hostile, now=now, starts_at=before - timedelta(days=7),
                             ends_at=before - timedelta(days=7) + timedelta(hours=1, minutes=30))
    db.session.commit()
    request_ics = db.session.scalar(select(OutboxMessage.ics).where(OutboxMessage.kind == "event_updated",
                                                                   OutboxMessage.registration_id == mine.id))
    outputs = {
        "download": client.get(f"/events/{hostile.slug}.ics").get_data(as_text=True),
        "public feed": client.get("/calendar.ics").get_data(as_text=True),
        "tag feed": client.get("/calendar/series.ics").get_data(as_text=True),
        "personal feed": client.get(f"/feeds/{feed_token(app.config['SECRET_KEY'], mine)}.ics").get_data(
            as_text=True),
        "speaker feed": client.get(speaker_url.removeprefix("http://townhall.test")).get_data(as_text=True),
        "confirmation": confirmation_ics,
        "request": request_ics,
    }
    event_rules.cancel_event(db.session, hostile, now=now)
    db.session.commit()
    outputs["cancel"] = db.session.scalar(select(OutboxMessage.ics).where(
        OutboxMessage.kind == "event_cancelled", OutboxMessage.registration_id == mine.id))

    moved = hostile.starts_at
    expected_hostile = _row(f"event-{hostile.id}@townhall.test", CLEAN, moved.astimezone(LA),
                            (moved + timedelta(hours=1, minutes=30)).astimezone(LA))
    expected_later = _row(f"event-{later.id}@townhall.test", "After the change", after.astimezone(LA),
                          (after + timedelta(hours=1)).astimezone(LA))
    zone = ZoneInfo("Europe/Berlin")
    expected_berlin = _row(f"event-{berlin.id}@townhall.test", "Berlin", berlin.starts_at.astimezone(zone),
                           berlin.ends_at.astimezone(zone))
    expected_original = _row(expected_hostile["uid"], CLEAN, before.astimezone(LA),
                             (before + timedelta(hours=1, minutes=30)).astimezone(LA))
    expected = {
        "confirmation": [expected_original],
        "download": [expected_hostile],
        "public feed": by_start([expected_hostile, expected_later, expected_berlin]),
        "tag feed": [expected_hostile, expected_later],
        "personal feed": [expected_hostile, expected_later],
        "speaker feed": [expected_hostile],
        "request": [expected_hostile],
        "cancel": [expected_hostile],
    }
    # The wall clock is the point: 09:00 on both sides of the DST change, in every parser.
    assert expected_hostile["start_wall"].endswith("T09:00:00")
    assert expected_later["start_wall"].endswith("T09:00:00")
    assert expected_hostile["start"][11:13] != expected_later["start"][11:13]

    return outputs, expected


def test_python_parsers_agree_on_every_output(produced):
    outputs, expected = produced
    for name, text in outputs.items():
        assert text and text.startswith("BEGIN:VCALENDAR\r\n"), name
        for parser, rows in (("icalendar", with_icalendar(text)), ("vobject", with_vobject(text)),
                             ("ics", with_ics(text))):
            assert by_start(rows) == expected[name], f"{name} read by {parser}"
        summaries = [line for line in text.split("\r\n") if line.startswith("SUMMARY")]
        assert "SUMMARY:a\\, b\\; c\\\\ d next line 🎉 Evil ATTENDEE:mailto:x@y" in summaries, name
        assert "\r\nATTENDEE:mailto:x@y" not in text, name

    methods = {name: Calendar.from_ical(text).get("METHOD") for name, text in outputs.items()}
    assert methods == {"download": None, "public feed": None, "tag feed": None, "personal feed": None,
                       "speaker feed": None, "confirmation": "REQUEST", "request": "REQUEST",
                       "cancel": "CANCEL"}
    sequences = [Calendar.from_ical(outputs[k]).events[0]["SEQUENCE"] for k in ("confirmation", "request", "cancel")]
    assert sequences == [0, 1, 2]
    cancel_event = Calendar.from_ical(outputs["cancel"]).events[0]
    assert str(cancel_event["STATUS"]) == "CANCELLED"


def test_icaljs_agrees_on_every_output(produced):
    """Thunderbird's parser, under Node: the same events, the same wall-clock times."""
    node = node_or_skip()
    outputs, expected = produced
    for name, text in outputs.items():
        assert by_start(with_icaljs(text, node)) == expected[name], f"{name} read by ical.js"


# --- issue 20: the VTIMEZONE's own rules, expanded by each parser ------------------------------

def zone_events() -> tuple[str, list[dict]]:
    """A feed of events in zones with and without DST, on both sides of each change over five years, and in the
    hour after a spring change; with the UTC and wall-clock times each parser must find."""
    from scheduler import calendars
    from scheduler.models import Event

    events = []
    for zone_name in ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Asia/Jerusalem"):
        zone = ZoneInfo(zone_name)
        for year in range(2027, 2032):
            day = datetime(year, 1, 1, 12, tzinfo=UTC)
            while day.year == year:
                following = day + timedelta(days=1)
                changes = day.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset()
                if changes or (day.month, day.day) in ((1, 1), (7, 1)):  # and midwinter, midsummer
                    local = following.astimezone(zone).date()
                    for hour, minute in ((9, 0), (3, 30)):
                        start = datetime(local.year, local.month, local.day, hour, minute, tzinfo=zone)
                        events.append((zone_name, start.astimezone(UTC)))
                day = following
    entries, expected = [], []
    for n, (zone_name, start) in enumerate(events):
        event = Event(id=n + 1, slug=f"z{n}", title=f"Z{n}", summary="", description="", timezone=zone_name,
                      starts_at=start, ends_at=start + timedelta(hours=1), venue="", join_url="", status="published",
                      sequence=0, created_at=datetime(2026, 10, 1, tzinfo=UTC),
                      updated_at=datetime(2026, 10, 1, tzinfo=UTC))
        entries.append(calendars.Entry(event, f"http://townhall.test/events/z{n}"))
        zone = ZoneInfo(zone_name)
        expected.append(_row(f"event-{n + 1}@townhall.test", f"Z{n}", start.astimezone(zone),
                             (start + timedelta(hours=1)).astimezone(zone)))
    return calendars.feed(entries, name="Zones").decode(), by_start(expected)


def test_every_parser_expands_the_vtimezones_to_the_zones_own_times():
    """ical.js, vobject and ics read times with the feed's VTIMEZONEs (icalendar with its own zoneinfo, so
    tests/test_calendars.py checks its reading of the VTIMEZONE part by part)."""
    text, expected = zone_events()
    assert len(expected) > 100
    assert text.count("BEGIN:VTIMEZONE") == 5 and "RDATE" in text  # Jerusalem lists its changes
    assert by_start(with_vobject(text)) == expected
    assert by_start(with_ics(text)) == expected
    node = node_or_skip()
    assert by_start(with_icaljs(text, node)) == expected
