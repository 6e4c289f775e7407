"""The pure iCalendar builders: RFC 5545 shape, escaping, folding, timezones, stable bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

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


#: A registrant's door link (web/door.py), what an invitation carries instead of the join URL.
DOOR = "http://townhall.test/door/1/door-token-of-ann-0123456789"


def request_for(event: Event, **overrides) -> str:
    args = dict(method="REQUEST", attendee_email="ann@example.org", attendee_name="Ann, B.", sequence=3,
                url="http://townhall.test/events/talk", stamp=STAMP, join_url=DOOR, **ORGANIZER)
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
    # The person's own door link, never the event's join URL itself.
    assert f"Join online: {DOOR}" in str(vevent["DESCRIPTION"])
    assert "meet.example.org" not in cal.to_ical().decode()


def test_invitation_cancel_has_method_cancel_and_status_cancelled():
    cal = Calendar.from_ical(request_for(make_event(), method="CANCEL", sequence=5))
    assert str(cal["METHOD"]) == "CANCEL"
    assert str(cal.events[0]["STATUS"]) == "CANCELLED"
    assert cal.events[0]["SEQUENCE"] == 5
    assert "secret" not in cal.to_ical().decode() and "/door/" not in cal.to_ical().decode()


def test_invitation_unknown_method_is_refused():
    with pytest.raises(ValueError):
        request_for(make_event(), method="PUBLISH")


def test_feed_has_name_refresh_and_no_method():
    text = calendars.feed([entry(make_event())], name="Townhall events").decode()
    assert lines(text)[:8] == [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Townhall//Townhall events//EN", "CALSCALE:GREGORIAN",
        "NAME:Townhall events", "X-WR-CALNAME:Townhall events", "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
    ]
    assert "METHOD" not in text
    assert "X-WR-TIMEZONE" not in text
    assert "ATTENDEE" not in text


def test_download_has_no_method_and_no_feed_properties():
    text = calendars.download(entry(make_event())).decode()
    assert "METHOD" not in text
    assert "REFRESH-INTERVAL" not in text
    assert text.endswith("END:VCALENDAR\r\n")


def test_feed_bytes_depend_only_on_the_data():
    first = calendars.feed([entry(make_event()), entry(make_event(id=8, slug="b"))], name="x")
    again = calendars.feed([entry(make_event()), entry(make_event(id=8, slug="b"))], name="x")
    moved = calendars.feed([entry(make_event(updated_at=STAMP)), entry(make_event(id=8, slug="b"))], name="x")
    assert first == again
    assert moved != first


def test_vevent_timestamps_in_utc_and_wall_clock_in_the_event_zone():
    text = calendars.download(entry(make_event())).decode()
    assert "DTSTART;TZID=America/Los_Angeles:20270311T090000" in lines(text)
    assert "DTEND;TZID=America/Los_Angeles:20270311T100000" in lines(text)
    assert "DTSTAMP:20261002T093000Z" in lines(text)
    assert "CREATED:20261001T080000Z" in lines(text)
    assert "LAST-MODIFIED:20261002T093000Z" in lines(text)


def test_utc_event_is_written_in_utc_without_vtimezone():
    text = calendars.download(entry(make_event(timezone="UTC"))).decode()
    assert "DTSTART:20270311T170000Z" in lines(text)
    assert "VTIMEZONE" not in text


def test_vtimezone_for_every_tzid_covering_each_event():
    events = [make_event(), make_event(id=8, slug="b", timezone="Europe/Berlin",
                                       starts_at=datetime(2028, 7, 1, 8, tzinfo=UTC),
                                       ends_at=datetime(2028, 7, 1, 9, tzinfo=UTC))]
    cal = Calendar.from_ical(calendars.feed([entry(e) for e in events], name="x"))
    assert [tz.tz_name for tz in cal.timezones] == ["America/Los_Angeles", "Europe/Berlin"]
    assert cal.get_missing_tzids() == set()
    berlin = cal.timezones[1].to_ical().decode()
    assert "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3" in berlin  # summer time of the event's own year is described
    assert cal.events[0].start.utcoffset() == timedelta(hours=-8)
    assert cal.events[1].start.utcoffset() == timedelta(hours=2)
    assert cal.events[1].start == datetime(2028, 7, 1, 8, tzinfo=UTC)


def test_lines_end_with_crlf_and_fold_at_75_octets():
    event = make_event(description="😀" * 200 + "x" * 300, summary="é" * 120)
    raw = calendars.download(entry(event))
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
    raw = calendars.download(entry(make_event(title=HOSTILE))).decode()
    summaries = [line for line in lines(raw) if line.startswith("SUMMARY")]
    assert summaries == ["SUMMARY:a\\, b\\; c\\\\ d next 🎉 Evil ATTENDEE:mailto:x@y"]
    assert not any(line.startswith("ATTENDEE") for line in lines(raw))
    assert str(Calendar.from_ical(raw).events[0]["SUMMARY"]) == "a, b; c\\ d next 🎉 Evil ATTENDEE:mailto:x@y"


def test_control_characters_are_stripped():
    event = make_event(title="Bell\x07 and\x1b[31m red", description="line\x00one\nline two\x7f", venue="Room\x0b 1")
    raw = calendars.download(entry(event, join_url=""))
    assert not any(b < 0x20 and b not in (0x0D, 0x0A) for b in raw)
    vevent = Calendar.from_ical(raw).events[0]
    assert str(vevent["SUMMARY"]) == "Bell and[31m red"
    assert str(vevent["DESCRIPTION"]) == "lineone\nline two"
    assert str(vevent["LOCATION"]) == "Room 1"


def test_public_entry_has_no_join_url_and_cancelled_event_is_cancelled():
    raw = calendars.download(entry(make_event(status="cancelled"))).decode()
    assert "secret" not in raw
    assert "STATUS:CANCELLED" in lines(raw)


def test_speakers_and_tags_appear_in_description_and_categories():
    event = make_event(title="Panel")
    event.tags = [Tag(slug="ai", name="AI, ML")]
    event.speakers = [EventSpeaker(role="host", speaker=Speaker(id=1, name="Dr. Ibrahim Haddad"))]
    vevent = Calendar.from_ical(calendars.download(entry(event))).events[0]
    assert str(vevent["DESCRIPTION"]) == "With: Dr. Ibrahim Haddad (host)"
    assert vevent.categories == ["AI, ML"]


def test_uid_is_the_same_in_feed_download_and_invitation():
    event = make_event()
    feed = Calendar.from_ical(calendars.feed([entry(event)], name="x")).events[0]
    download = Calendar.from_ical(calendars.download(entry(event))).events[0]
    invite = Calendar.from_ical(request_for(event, url="http://townhall.test/r/sometoken")).events[0]
    assert str(feed["UID"]) == str(download["UID"]) == str(invite["UID"]) == "event-7@townhall.test"


# --- issue 20: names, alarms, ORGANIZER, CN, VTIMEZONE shape ------------------------------------

H = timedelta(hours=1)


def test_feed_name_is_escaped_as_text():
    from icalendar.parser import unescape_backslash

    raw = calendars.feed([entry(make_event())], name="Townhall: Café; ÜML, 🎉 \\ one\nline")
    assert lines(raw)[4:6] == ["NAME:Townhall: Café\\; ÜML\\, 🎉 \\\\ one line",
                               "X-WR-CALNAME:Townhall: Café\\; ÜML\\, 🎉 \\\\ one line"]
    calendar = Calendar.from_ical(raw)
    assert unescape_backslash(str(calendar["NAME"])) == "Townhall: Café; ÜML, 🎉 \\ one line"


def test_feeds_and_downloads_have_no_organizer_but_invitations_do():
    event = make_event()
    for raw in (calendars.feed([entry(event)], name="x"), calendars.download(entry(event))):
        assert not [line for line in lines(raw) if line.startswith(("ORGANIZER", "ATTENDEE", "METHOD"))]
    invitation = lines(request_for(event))
    assert 'ORGANIZER;CN="Townhall":mailto:events@townhall.test' in invitation


@pytest.mark.parametrize(("name", "written", "read"), [
    ("Lovelace, Ada", '"Lovelace, Ada"', "Lovelace, Ada"),
    ("Ada Lovelace", '"Ada Lovelace"', "Ada Lovelace"),
    ('Ada "Countess" Lovelace', '"Ada ^\'Countess^\' Lovelace"', 'Ada "Countess" Lovelace'),
    ("a^b: c;d", '"a^^b: c;d"', "a^b: c;d"),
    ("C:\\new \\, Ada", '"C:new , Ada"', "C:new , Ada"),  # no backslash: readers take it for an escape
])
def test_attendee_cn_is_quoted(name, written, read):
    raw = request_for(make_event(), attendee_name=name).replace("\r\n ", "")
    assert f"ATTENDEE;CN={written};ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=FALSE:mailto:ann@example.org" in lines(raw)
    assert Calendar.from_ical(raw).events[0]["ATTENDEE"].params["CN"] == read  # RFC 6868, as icalendar reads it


def test_alarms_one_valarm_per_offset_before_the_start():
    raw = calendars.feed([entry(make_event(title="Talk; with, commas"), alarms=(86400, 3600, 600))], name="x")
    vevent = Calendar.from_ical(raw).events[0]
    alarms = [(str(a["ACTION"]), str(a["DESCRIPTION"]), a["TRIGGER"].dt, a["TRIGGER"].params.get("RELATED", "START"))
              for a in vevent.walk("VALARM")]
    assert alarms == [("DISPLAY", "Talk; with, commas", timedelta(days=-1), "START"),
                      ("DISPLAY", "Talk; with, commas", timedelta(hours=-1), "START"),
                      ("DISPLAY", "Talk; with, commas", timedelta(minutes=-10), "START")]
    assert "TRIGGER:-P1D" in lines(raw)
    assert "VALARM" not in calendars.feed([entry(make_event())], name="x").decode()


def vtimezone_of(zone: str, *years: int):
    """The VTIMEZONE a feed of events on 1 July of these years in `zone` carries, as icalendar reads it."""
    events = [make_event(id=n, slug=f"e{n}", timezone=zone, starts_at=datetime(year, 7, 1, 8, tzinfo=UTC),
                         ends_at=datetime(year, 7, 1, 9, tzinfo=UTC)) for n, year in enumerate(years)]
    [timezone] = Calendar.from_ical(calendars.feed([entry(e) for e in events], name="x")).timezones
    return timezone


def parts_of(timezone) -> list[tuple]:
    return [(part.name, part.DTSTART, str(part["RRULE"].to_ical().decode()) if "RRULE" in part else None,
             "RDATE" in part, part.TZOFFSETFROM, part.TZOFFSETTO, str(part["TZNAME"]))
            for part in timezone.subcomponents]


def assert_same_offsets(timezone, zone: str, first: int, last: int) -> None:
    """The VTIMEZONE's parts alone give the zone's own UTC offset at noon (UTC) of every day of the covered
    years, and every quarter of an hour of the days whose offset changes."""
    written, real = timezone.to_tz(lookup_tzid=False), ZoneInfo(zone)
    day, wrong = datetime(first, 1, 1, tzinfo=UTC), []
    while day.year <= last:
        following = day + timedelta(days=1)
        changes = day.astimezone(real).utcoffset() != following.astimezone(real).utcoffset()
        for moment in [day + timedelta(minutes=15 * n) for n in range(96)] if changes else [day + 12 * H]:
            if moment.astimezone(written).utcoffset() != moment.astimezone(real).utcoffset():
                wrong.append(moment)
        day = following
    assert wrong == []


@pytest.mark.parametrize(("zone", "expected"), [
    ("Europe/Berlin", [
        ("STANDARD", datetime(2026, 10, 25, 3), "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", False, 2 * H, H, "CET"),
        ("DAYLIGHT", datetime(2026, 3, 29, 2), "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", False, H, 2 * H, "CEST"),
    ]),
    ("America/New_York", [
        ("STANDARD", datetime(2026, 11, 1, 2), "FREQ=YEARLY;BYDAY=1SU;BYMONTH=11", False, -4 * H, -5 * H, "EST"),
        ("DAYLIGHT", datetime(2026, 3, 8, 2), "FREQ=YEARLY;BYDAY=2SU;BYMONTH=3", False, -5 * H, -4 * H, "EDT"),
    ]),
    ("Asia/Tokyo", [("STANDARD", datetime(2026, 1, 1), None, False, 9 * H, 9 * H, "JST")]),
])
def test_vtimezone_is_one_standard_and_one_daylight_part_with_rrules(zone, expected):
    """Outlook's shape: however many years the feed covers, no more parts and no RDATE lists."""
    for years in ((2027,), (2027, 2028, 2031)):
        timezone = vtimezone_of(zone, *years)
        assert parts_of(timezone) == expected, years
        assert_same_offsets(timezone, zone, years[0], years[-1])


def test_vtimezone_of_a_zone_without_a_yearly_rule_lists_its_changes():
    """Israel changes on the Friday before the last Sunday of March: a part per offset, RDATEs, times still right."""
    timezone = vtimezone_of("Asia/Jerusalem", 2027, 2028)
    assert parts_of(timezone) == [
        ("STANDARD", datetime(2026, 1, 1), None, False, 2 * H, 2 * H, "IST"),
        ("DAYLIGHT", datetime(2026, 3, 27, 2), None, True, 2 * H, 3 * H, "IDT"),
        ("STANDARD", datetime(2026, 10, 25, 2), None, True, 3 * H, 2 * H, "IST"),
    ]
    assert_same_offsets(timezone, "Asia/Jerusalem", 2027, 2028)
