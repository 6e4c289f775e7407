"""The pure iCalendar builders: RFC 5545 shape, escaping, folding, timezones, stable bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from scheduler import calendars
from scheduler.models import Event, EventSpeaker, Speaker, Tag

HOSTILE = "a, b; c\\ d\nnext 🎉 Evil\r\nATTENDEE:mailto:x@y"
ORGANIZER = dict(organizer_email="events@townhall.test", organizer_name="Townhall")
STAMP = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_event(**fields) -> Event:
    values = dict(
        id=7, slug="talk", title="Talk", summary="", description="", timezone="America/Los_Angeles",
        starts_at=datetime(2027, 3, 11, 17, 0, tzinfo=UTC), ends_at=datetime(2027, 3, 11, 18, 0, tzinfo=UTC),
        venue="", join_url="https://meet.example.org/secret", status="published", sequence=0,
        created_at=datetime(2026, 10, 1, 8, 0, tzinfo=UTC), updated_at=datetime(2026, 10, 2, 9, 30, tzinfo=UTC),
    )
    values.update(fields)
    return Event(**values)


def entry(event: Event, **overrides) -> calendars.Entry:
    return calendars.Entry(event, f"http://townhall.test/events/{event.slug}", **overrides)


def request_for(event: Event, **overrides) -> str:
    args = dict(method="REQUEST", attendee_email="ann@example.org", attendee_name="Ann, B.", sequence=3,
                url="http://townhall.test/events/talk", stamp=STAMP, **ORGANIZER)
    args.update(overrides)
    return calendars.invitation(event, **args)


def lines(text: str | bytes) -> list[str]:
    raw = text.encode() if isinstance(text, str) else text
    return raw.decode().split("\r\n")


def test_invitation_request_has_method_organizer_attendee_and_sequence():
    cal = Calendar.from_ical(request_for(make_event()))
    vevent = cal.events[0]
    assert str(cal["METHOD"]) == "REQUEST"
    assert str(vevent["UID"]) == "event-7@townhall.test"
    assert vevent["SEQUENCE"] == 3
    assert str(vevent["STATUS"]) == "CONFIRMED"
    assert str(vevent["ORGANIZER"]) == "mailto:events@townhall.test"
    assert vevent["ORGANIZER"].params["CN"] == "Townhall"
    assert str(vevent["ATTENDEE"]) == "mailto:ann@example.org"
    assert dict(vevent["ATTENDEE"].params) == {"CN": "Ann, B.", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "ACCEPTED",
                                               "RSVP": "FALSE"}
    assert vevent.DTSTAMP == STAMP
    assert str(vevent["URL"]) == "http://townhall.test/events/talk"
    assert "Join online: https://meet.example.org/secret" in str(vevent["DESCRIPTION"])


def test_invitation_cancel_has_method_cancel_and_status_cancelled():
    cal = Calendar.from_ical(request_for(make_event(), method="CANCEL", sequence=5))
    assert str(cal["METHOD"]) == "CANCEL"
    assert str(cal.events[0]["STATUS"]) == "CANCELLED"
    assert cal.events[0]["SEQUENCE"] == 5
    assert "secret" not in cal.to_ical().decode()


def test_invitation_unknown_method_is_refused():
    with pytest.raises(ValueError):
        request_for(make_event(), method="PUBLISH")


def test_feed_has_name_refresh_and_no_method():
    text = calendars.feed([entry(make_event())], name="Townhall events", **ORGANIZER).decode()
    assert lines(text)[:8] == [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Townhall//Townhall events//EN", "CALSCALE:GREGORIAN",
        "NAME:Townhall events", "X-WR-CALNAME:Townhall events", "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
    ]
    assert "METHOD" not in text
    assert "X-WR-TIMEZONE" not in text
    assert "ATTENDEE" not in text


def test_download_has_no_method_and_no_feed_properties():
    text = calendars.download(entry(make_event()), **ORGANIZER).decode()
    assert "METHOD" not in text
    assert "REFRESH-INTERVAL" not in text
    assert text.endswith("END:VCALENDAR\r\n")


def test_feed_bytes_depend_only_on_the_data():
    first = calendars.feed([entry(make_event()), entry(make_event(id=8, slug="b"))], name="x", **ORGANIZER)
    again = calendars.feed([entry(make_event()), entry(make_event(id=8, slug="b"))], name="x", **ORGANIZER)
    moved = calendars.feed([entry(make_event(updated_at=STAMP)), entry(make_event(id=8, slug="b"))], name="x",
                           **ORGANIZER)
    assert first == again
    assert moved != first


def test_vevent_timestamps_in_utc_and_wall_clock_in_the_event_zone():
    text = calendars.download(entry(make_event()), **ORGANIZER).decode()
    assert "DTSTART;TZID=America/Los_Angeles:20270311T090000" in lines(text)
    assert "DTEND;TZID=America/Los_Angeles:20270311T100000" in lines(text)
    assert "DTSTAMP:20261002T093000Z" in lines(text)
    assert "CREATED:20261001T080000Z" in lines(text)
    assert "LAST-MODIFIED:20261002T093000Z" in lines(text)


def test_utc_event_is_written_in_utc_without_vtimezone():
    text = calendars.download(entry(make_event(timezone="UTC")), **ORGANIZER).decode()
    assert "DTSTART:20270311T170000Z" in lines(text)
    assert "VTIMEZONE" not in text


def test_vtimezone_for_every_tzid_covering_each_event():
    events = [make_event(), make_event(id=8, slug="b", timezone="Europe/Berlin",
                                       starts_at=datetime(2028, 7, 1, 8, tzinfo=UTC),
                                       ends_at=datetime(2028, 7, 1, 9, tzinfo=UTC))]
    cal = Calendar.from_ical(calendars.feed([entry(e) for e in events], name="x", **ORGANIZER))
    assert [tz.tz_name for tz in cal.timezones] == ["America/Los_Angeles", "Europe/Berlin"]
    assert cal.get_missing_tzids() == set()
    berlin = cal.timezones[1].to_ical().decode()
    assert "DTSTART:20280326T030000" in berlin  # summer time of the event's own year is described
    assert cal.events[0].start.utcoffset() == timedelta(hours=-8)
    assert cal.events[1].start.utcoffset() == timedelta(hours=2)
    assert cal.events[1].start == datetime(2028, 7, 1, 8, tzinfo=UTC)


def test_lines_end_with_crlf_and_fold_at_75_octets():
    event = make_event(description="😀" * 200 + "x" * 300, summary="é" * 120)
    raw = calendars.download(entry(event), **ORGANIZER)
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")  # a fold never splits a character
    parsed = Calendar.from_ical(raw).events[0]
    assert str(parsed["DESCRIPTION"]) == "é" * 120 + "\n\n" + "😀" * 200 + "x" * 300


def test_fold_keeps_short_lines_and_continues_with_a_space():
    assert calendars.fold("SUMMARY:short") == b"SUMMARY:short\r\n"
    folded = calendars.fold("DESCRIPTION:" + "a" * 100)
    assert folded == b"DESCRIPTION:" + b"a" * 63 + b"\r\n " + b"a" * 37 + b"\r\n"


def test_hostile_title_is_one_escaped_summary():
    raw = calendars.download(entry(make_event(title=HOSTILE)), **ORGANIZER).decode()
    summaries = [line for line in lines(raw) if line.startswith("SUMMARY")]
    assert summaries == ["SUMMARY:a\\, b\\; c\\\\ d next 🎉 Evil ATTENDEE:mailto:x@y"]
    assert not any(line.startswith("ATTENDEE") for line in lines(raw))
    assert str(Calendar.from_ical(raw).events[0]["SUMMARY"]) == "a, b; c\\ d next 🎉 Evil ATTENDEE:mailto:x@y"


def test_control_characters_are_stripped():
    event = make_event(title="Bell\x07 and\x1b[31m red", description="line\x00one\nline two\x7f", venue="Room\x0b 1")
    raw = calendars.download(entry(event, join_url=""), **ORGANIZER)
    assert not any(b < 0x20 and b not in (0x0D, 0x0A) for b in raw)
    vevent = Calendar.from_ical(raw).events[0]
    assert str(vevent["SUMMARY"]) == "Bell and[31m red"
    assert str(vevent["DESCRIPTION"]) == "lineone\nline two"
    assert str(vevent["LOCATION"]) == "Room 1"


def test_public_entry_has_no_join_url_and_cancelled_event_is_cancelled():
    raw = calendars.download(entry(make_event(status="cancelled")), **ORGANIZER).decode()
    assert "secret" not in raw
    assert "STATUS:CANCELLED" in lines(raw)


def test_speakers_and_tags_appear_in_description_and_categories():
    event = make_event(title="Panel")
    event.tags = [Tag(slug="ai", name="AI, ML")]
    event.speakers = [EventSpeaker(role="host", speaker=Speaker(id=1, name="Dr. Ibrahim Haddad"))]
    vevent = Calendar.from_ical(calendars.download(entry(event), **ORGANIZER)).events[0]
    assert str(vevent["DESCRIPTION"]) == "With: Dr. Ibrahim Haddad (host)"
    assert vevent.categories == ["AI, ML"]


def test_uid_is_the_same_in_feed_download_and_invitation():
    event = make_event()
    feed = Calendar.from_ical(calendars.feed([entry(event)], name="x", **ORGANIZER)).events[0]
    download = Calendar.from_ical(calendars.download(entry(event), **ORGANIZER)).events[0]
    invite = Calendar.from_ical(request_for(event, url="http://townhall.test/r/sometoken")).events[0]
    assert str(feed["UID"]) == str(download["UID"]) == str(invite["UID"]) == "event-7@townhall.test"
