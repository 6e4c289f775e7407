"""Pure iCalendar builders: event -> VEVENT, events -> feed bytes, invitations (REQUEST / CANCEL).

Nothing here reads the clock or the database: every timestamp, URL and address comes in as an
argument, so the same data always gives the same bytes (and the same ETag). The few words Townhall
adds ("With:", "Join online:", speakers' roles) are in Flask-Babel's current locale (English outside
an app): callers that keep bytes key them by locale.
"""

from __future__ import annotations

import calendar as _gregorian
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from icalendar import vDuration

from .labels import role_in_text
from .text import one_line as _one_line
from .text import strip_controls as _strip_controls

PRODID = "-//Townhall//Townhall events//EN"
#: How often subscribers should poll a feed (REFRESH-INTERVAL and X-PUBLISHED-TTL).
REFRESH = timedelta(hours=1)
METHODS = ("REQUEST", "CANCEL")
#: C1 control characters, which text.strip_controls leaves alone (NEL among them, which some readers take
#: for a line break).
_C1 = re.compile("[\x80-\x9f]")


@dataclass(slots=True)
class Named:
    """A tag or a speaker, by the name a VEVENT shows."""

    name: str


@dataclass(slots=True)
class Appearance:
    """A speaker at an event, in their role."""

    role: str
    speaker: Named


@dataclass(slots=True)
class Columns:
    """The columns a VEVENT needs, as plain rows (a feed's events, a series' master): no ORM objects."""

    id: int
    slug: str
    title: str
    summary: str
    description: str
    timezone: str
    starts_at: datetime
    ends_at: datetime
    venue: str
    join_url: str
    status: str
    sequence: int
    created_at: datetime
    updated_at: datetime
    #: Keyword-only, so a subclass's own columns still come positionally after the ones above.
    tags: list = field(default_factory=list, kw_only=True)
    speakers: list = field(default_factory=list, kw_only=True)


@dataclass(frozen=True)
class Entry:
    """One event as one reader sees it: its public (or private) URL, and their join link if any."""

    event: object
    url: str
    #: The private join URL, only for confirmed registrants and speakers; "" elsewhere.
    join_url: str = ""
    #: SEQUENCE override (a person who cancelled and came back has a higher one); None: the event's.
    sequence: int | None = None
    #: STATUS override (TENTATIVE for a waitlist place); None: from the event.
    status: str | None = None
    #: The URL property when it should not be the public page (personal feeds point at the join link).
    link: str = ""
    #: A VALARM for each of these offsets, in seconds before the start (a registrant's reminders).
    alarms: tuple[int, ...] = ()
    #: A series' UID and this occurrence's RECURRENCE-ID (calendar_series.py); "" and None for a single event.
    uid: str = ""
    recurrence_id: datetime | None = None
    #: Content lines written after DTEND as they are (a series' RRULE and EXDATEs).
    extra: tuple[str, ...] = ()


def one_line(text: str) -> str:
    """One clean line, as every single-line TEXT value is written (controls and line breaks go)."""
    # Most text is already one clean line; str.isprintable() is false for every control, bidi or
    # line-separator character, so only the rest pays for the regular expressions.
    if text.isprintable() and "  " not in text and text == text.strip():
        return text
    return _one_line(_C1.sub("", text))


def strip_controls(text: str) -> str:
    """Text without control characters, newlines kept, as DESCRIPTION is written."""
    return text if text.isprintable() else _C1.sub("", _strip_controls(text))


@lru_cache(maxsize=64)
def _host(netloc: str) -> str:
    return urlsplit("//" + netloc).hostname or "localhost"


def uid_for(event, url: str, kind: str = "event") -> str:
    """Stable per event (or series: kind="series") and site: the same in every feed, download and invitation."""
    return f"{kind}-{event.id}@{_host(url.partition('://')[2].partition('/')[0])}"


def _location(event, join_url: str) -> str:
    return one_line(event.venue or "") or join_url


def _description(event, join_url: str) -> str:
    parts = []
    summary = strip_controls(event.summary or "").strip()
    if summary:
        parts.append(summary)
    speakers = [link for link in getattr(event, "speakers", []) or []]
    if speakers:
        parts.append(_("With: %(people)s", people=", ".join(
            f"{one_line(link.speaker.name)} ({role_in_text(link.role)})" for link in speakers)))
    if join_url:
        parts.append(_("Join online: %(url)s", url=join_url))
    description = strip_controls(event.description or "").strip()
    if description:
        parts.append(description)
    return "\n\n".join(parts)


def _status(event) -> str:
    return "CANCELLED" if event.status == "cancelled" else "CONFIRMED"


def _escape(text: str) -> str:
    """TEXT value escaping (RFC 5545 3.3.11); CRs go, newlines become \\n."""
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n"))


def _param(value: str) -> str:
    r"""A parameter value (CN), always quoted; a DQUOTE inside is ^' and a caret ^^ (RFC 6868); "" for none.

    Backslashes are left out: RFC 5545 gives them no meaning in a parameter, yet icalendar and ical.js
    (Thunderbird) read \\, \, \; and \n there as TEXT escapes, so no way of writing one reads the same everywhere.
    """
    value = one_line(value.replace("\\", ""))
    return '"' + value.replace("^", "^^").replace('"', "^'") + '"' if value else ""


def fold(line: str) -> bytes:
    """One content line, folded at 75 octets without splitting a UTF-8 sequence, CRLF-terminated."""
    return _folded(line).encode("utf-8") + b"\r\n"


def _folded(line: str) -> str:
    """The line folded as fold() does it, without the final CRLF; most lines are short ASCII and pass as they are."""
    if len(line) <= 75 and line.isascii():
        return line
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line
    pieces, start, limit = [], 0, 75
    while len(data) - start > limit:
        end = start + limit
        while data[end] & 0xC0 == 0x80:  # a continuation byte: step back to the character start
            end -= 1
        pieces.append(data[start:end])
        start, limit = end, 74  # continuation lines begin with a space, which counts
    pieces.append(data[start:])
    return b"\r\n ".join(pieces).decode("utf-8")


def _utc_stamp(moment: datetime) -> str:
    # Formatted by hand: strftime costs more than the rest of a VEVENT's timestamps together.
    m = moment.astimezone(UTC)
    return f"{m.year:04d}{m.month:02d}{m.day:02d}T{m.hour:02d}{m.minute:02d}{m.second:02d}Z"


def _when(name: str, moment: datetime, zone: str) -> str:
    # UTC events are written as ...Z times: no TZID, no VTIMEZONE needed.
    if zone == "UTC":
        return f"{name}:{_utc_stamp(moment)}"
    m = moment.astimezone(_zone(zone))
    return f"{name};TZID={zone}:{m.year:04d}{m.month:02d}{m.day:02d}T{m.hour:02d}{m.minute:02d}{m.second:02d}"


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone_of(name: str) -> ZoneInfo:
    """The zone of this IANA name (kept once loaded)."""
    return _zone(name)


def vevent_time(name: str, moment: datetime, zone: str) -> str:
    """A date-time property (DTSTART, RECURRENCE-ID, EXDATE) as the VEVENTs here write it: TZID and wall clock."""
    return _when(name, moment, zone)


def _address(name: str, email: str, person: str, extra: str = "") -> str:
    cn = _param(person)
    params = (f";CN={cn}" if cn else "") + extra
    return f"{name}{params}:mailto:{one_line(email).replace(' ', '')}"


def vevent(entry: Entry, *, stamp: datetime | None = None, organizer: str = "", attendee: str = "") -> bytes:
    """One VEVENT as folded bytes; DTSTAMP defaults to the row's update time so feeds stay byte-stable.

    `organizer` and `attendee` are the ORGANIZER and ATTENDEE lines of an invitation; feeds and
    downloads have neither (an ORGANIZER makes some clients treat a subscribed event as a meeting).
    Written directly rather than through icalendar's Component, which is several times slower per
    event for a large feed (bench/calendar_bench.py); the tests parse every output back with
    icalendar, vobject, ics and ical.js.
    """
    event = entry.event
    modified = _utc_stamp(event.updated_at)
    title = _escape(one_line(event.title))
    # Lines of a fixed shape (a timestamp, a number, a status) are always short ASCII: only the others are folded.
    lines = [
        "BEGIN:VEVENT",
        _folded(f"UID:{entry.uid or uid_for(event, entry.url)}"),
        f"DTSTAMP:{_utc_stamp(stamp) if stamp else modified}",
        f"SEQUENCE:{event.sequence if entry.sequence is None else entry.sequence}",
        _folded(f"SUMMARY:{title}"),
        _folded(_when("DTSTART", event.starts_at, event.timezone)),
        _folded(_when("DTEND", event.ends_at, event.timezone)),
    ]
    if entry.recurrence_id is not None:
        lines.append(_folded(_when("RECURRENCE-ID", entry.recurrence_id, event.timezone)))
    lines += [_folded(line) for line in entry.extra]
    location = _location(event, entry.join_url)
    if location:
        lines.append(_folded(f"LOCATION:{_escape(location)}"))
    description = _description(event, entry.join_url)
    if description:
        lines.append(_folded(f"DESCRIPTION:{_escape(description)}"))
    tags = [_escape(one_line(tag.name)) for tag in getattr(event, "tags", None) or ()]
    if tags:
        lines.append(_folded("CATEGORIES:" + ",".join(tags)))
    lines += [
        _folded(f"URL:{one_line(entry.link or entry.url)}"),
        f"STATUS:{entry.status or _status(event)}",
    ]
    if organizer:
        lines.append(organizer)
    if attendee:
        lines.append(_folded(attendee))
    lines += [
        f"CREATED:{_utc_stamp(event.created_at)}",
        f"LAST-MODIFIED:{modified}",
    ]
    if entry.alarms:
        alarm_text = _folded(f"DESCRIPTION:{title}")
        for seconds in entry.alarms:
            lines += ["BEGIN:VALARM", "ACTION:DISPLAY", alarm_text, f"TRIGGER:{_before(seconds)}", "END:VALARM"]
    lines += [
        "END:VEVENT",
        "",  # the last line's CRLF
    ]
    return "\r\n".join(lines).encode("utf-8")


@lru_cache(maxsize=64)
def _before(seconds: int) -> str:
    """A TRIGGER's duration: `seconds` before the start (-P1D, -PT1H, -PT10M)."""
    return vDuration(timedelta(seconds=-seconds)).to_ical().decode("ascii")


def attendee_line(email: str, name: str, *, partstat: str = "ACCEPTED") -> str:
    """An invitation's ATTENDEE line, as invitation() writes it (a series' invitation needs it too)."""
    return _address("ATTENDEE", email, name, f";ROLE=REQ-PARTICIPANT;PARTSTAT={partstat};RSVP=FALSE")


@lru_cache(maxsize=64)
def organizer_line(email: str, name: str) -> str:
    """An invitation's ORGANIZER line; the same for every invitation: built once."""
    return _folded(_address("ORGANIZER", email, name))


# --- VTIMEZONE ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    """One change of a zone's UTC offset: its onset as local time before it (DTSTART), offsets, name after."""

    onset: datetime
    before: timedelta
    after: timedelta
    name: str


_DAY = timedelta(days=1)
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _changes(zone: ZoneInfo, year: int) -> list[_Change]:
    """The changes of UTC offset in one (UTC) year, found day by day and then to the second."""
    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    offset = day.astimezone(zone).utcoffset()
    while day.year == year:
        following = day + _DAY
        next_offset = following.astimezone(zone).utcoffset()
        if next_offset != offset:
            low, high = day, following  # offset at low, next_offset at high: narrow down to the second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) // 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(_Change((high + offset).replace(tzinfo=None), offset, next_offset,
                                 high.astimezone(zone).tzname() or ""))
        day, offset = following, next_offset
    return found


def _yearly(changes: list[_Change]) -> str | None:
    """The RRULE that every one of these changes (one a year, in consecutive years) follows, if one does."""
    first = changes[0]
    shape = (first.onset.month, first.onset.weekday(), first.onset.time(), first.before, first.after)
    nth, last = set(), set()
    for change in changes:
        onset = change.onset
        if (onset.month, onset.weekday(), onset.time(), change.before, change.after) != shape:
            return None
        nth.add((onset.day - 1) // 7 + 1)
        last.add(onset.day + 7 > _gregorian.monthrange(onset.year, onset.month)[1])
    if last == {True}:
        week = "-1"
    elif len(nth) == 1:
        week = str(nth.pop())
    else:
        return None  # for example a fixed date, or "the Friday before the last Sunday"
    return f"FREQ=YEARLY;BYMONTH={first.onset.month};BYDAY={week}{_WEEKDAYS[first.onset.weekday()]}"


def _offset(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign, seconds = ("-" if seconds < 0 else "+"), abs(seconds)
    text = f"{sign}{seconds // 3600:02d}{seconds // 60 % 60:02d}"
    return text + (f"{seconds % 60:02d}" if seconds % 60 else "")


def _stamp(moment: datetime) -> str:
    return f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"


def _part(kind: str, start: datetime, before: timedelta, after: timedelta, name: str, *, rule: str | None = None,
          rdates: Iterable[datetime] = ()) -> list[str]:
    lines = [f"BEGIN:{kind}", f"DTSTART:{_stamp(start)}"]
    if rule:
        lines.append(f"RRULE:{rule}")
    # One RDATE per date: vobject reads only the first of a list.
    lines += [f"RDATE:{_stamp(moment)}" for moment in rdates]
    if name:
        lines.append(_folded(f"TZNAME:{_escape(name)}"))
    return lines + [f"TZOFFSETFROM:{_offset(before)}", f"TZOFFSETTO:{_offset(after)}", f"END:{kind}"]


@lru_cache(maxsize=256)
def _vtimezone(tzid: str, first_year: int, last_year: int) -> bytes:
    """A VTIMEZONE covering these years (whole years keep the cache small).

    Where the zone's rules stay the same from the year before `first_year` to `last_year` (and over
    six years at least, so that "the last Sunday" and "the fourth Sunday" are told apart), the shape
    every client reads, Outlook included: one STANDARD part, plus one DAYLIGHT part, each with a
    yearly RRULE (a zone without changes: one STANDARD part). Otherwise (fixed dates, "the Friday
    before the last Sunday", a rule that changed) a part per offset with an RDATE for each repeat.
    An onset is the local time before the change, in TZOFFSETFROM, as RFC 5545 3.6.5 writes it.
    """
    zone = _zone(tzid)
    # From a year early, so that every covered time comes after an onset.
    years = range(first_year - 1, max(last_year, first_year + 5) + 1)
    by_year = [_changes(zone, year) for year in years]
    parts = _yearly_parts(by_year) if any(by_year) else None
    if parts is None:
        covered = by_year[:last_year - first_year + 2]
        parts = _listed_parts(zone, years[0], [change for changes in covered for change in changes])
    lines = ["BEGIN:VTIMEZONE", _folded(f"TZID:{tzid}")]
    for part in parts:
        lines += part
    lines += ["END:VTIMEZONE", ""]
    return "\r\n".join(lines).encode("utf-8")


def _yearly_parts(by_year: list[list[_Change]]) -> list[list[str]] | None:
    """One STANDARD and one DAYLIGHT part with a yearly RRULE each, if every year's two changes follow one."""
    if any(len(changes) != 2 for changes in by_year):
        return None
    first, second = by_year[0]
    if first.after == second.after or first.after != second.before or second.after != first.before:
        return None
    standard = 0 if first.after < second.after else 1
    parts = []
    for index, kind in ((standard, "STANDARD"), (1 - standard, "DAYLIGHT")):
        changes = [year_changes[index] for year_changes in by_year]
        rule = _yearly(changes)
        if rule is None:
            return None
        parts.append(_part(kind, changes[0].onset, changes[0].before, changes[0].after, changes[0].name, rule=rule))
    return parts


def _listed_parts(zone: ZoneInfo, year: int, changes: list[_Change]) -> list[list[str]]:
    """The offset of 1 January of `year`, then a part per (offsets, name) with an RDATE for each repeat."""
    start = datetime(year, 1, 1, tzinfo=zone)
    offset = start.utcoffset()
    parts = [_part("DAYLIGHT" if start.dst() else "STANDARD", start.replace(tzinfo=None), offset, offset,
                   start.tzname() or "")]
    groups: dict[tuple[timedelta, timedelta, str], list[_Change]] = {}
    for change in changes:
        groups.setdefault((change.before, change.after, change.name), []).append(change)
    for (before, after, name), group in groups.items():
        kind = "DAYLIGHT" if after > before else "STANDARD"
        parts.append(_part(kind, group[0].onset, before, after, name, rdates=[c.onset for c in group[1:]]))
    return parts


def zone_span(event) -> tuple[str, int, int] | None:
    """(zone, first year, last year) the event covers in its own zone, which its VTIMEZONE must cover; None in UTC."""
    if event.timezone == "UTC":
        return None
    zone = _zone(event.timezone)
    return event.timezone, event.starts_at.astimezone(zone).year, event.ends_at.astimezone(zone).year


def _vtimezones(spans: Iterable[tuple[str, int, int] | None]) -> bytes:
    years: dict[str, tuple[int, int]] = {}
    for span in spans:
        if span is None:
            continue
        tzid, first, last = span
        low, high = years.get(tzid, (first, last))
        years[tzid] = (min(low, first), max(high, last))
    return b"".join(_vtimezone(tzid, *years[tzid]) for tzid in sorted(years))


@lru_cache(maxsize=256)
def _calendar_head(*, method: str | None = None, name: str | None = None, refresh: timedelta | None = None) -> bytes:
    """BEGIN:VCALENDAR and the calendar's properties; a feed's NAME and X-WR-CALNAME escaped as the TEXT they
    are (icalendar's add("name") would write them as they come)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    if method:
        lines.append(f"METHOD:{method}")
    if name:
        text = _escape(one_line(name))
        lines += [_folded(f"NAME:{text}"), _folded(f"X-WR-CALNAME:{text}")]
    if refresh:
        duration = vDuration(refresh).to_ical().decode("ascii")
        lines += [f"REFRESH-INTERVAL;VALUE=DURATION:{duration}", f"X-PUBLISHED-TTL:{duration}"]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def calendar_bytes(entries: list[Entry], *, name: str | None = None, refresh: timedelta | None = None) -> bytes:
    """A whole VCALENDAR without METHOD (a download or a feed); feeds pass name and refresh."""
    return assemble([vevent(entry) for entry in entries], [zone_span(entry.event) for entry in entries],
                    name=name, refresh=refresh)


def assemble(vevents: Iterable[bytes], spans: Iterable[tuple[str, int, int] | None], *, name: str | None = None,
             refresh: timedelta | None = None, method: str | None = None) -> bytes:
    """A VCALENDAR without METHOD of VEVENTs written before (by vevent), with a VTIMEZONE covering every span.

    For a caller that keeps each event's VEVENT and zone_span between builds (the feeds do).
    """
    head = _calendar_head(name=name, refresh=refresh, method=method)
    return head + _vtimezones(spans) + b"".join(vevents) + b"END:VCALENDAR\r\n"


def feed(entries: list[Entry], *, name: str, refresh: timedelta = REFRESH) -> bytes:
    """A subscription feed: NAME, X-WR-CALNAME, REFRESH-INTERVAL and X-PUBLISHED-TTL; no METHOD, no ORGANIZER."""
    return calendar_bytes(entries, name=name, refresh=refresh)


def download(entry: Entry) -> bytes:
    """One event as an .ics file to import: no METHOD and no ORGANIZER, so clients add it rather than treat it
    as an invitation."""
    return calendar_bytes([entry])


def invitation(event, *, method: str, attendee_email: str, attendee_name: str, sequence: int,
               organizer_email: str, organizer_name: str, url: str, stamp: datetime, uid: str = "",
               recurrence_id: datetime | None = None, join_url: str = "") -> str:
    """An email invitation for one person: METHOD:REQUEST (add / update) or METHOD:CANCEL (remove).

    `join_url`, the person's own door link (never the event's raw join URL), is included in a REQUEST:
    invitations go only to confirmed attendees and speakers. `url` becomes URL and must be the same in a person's first REQUEST, its updates and
    the CANCEL (a registrant's manage page, a speaker's event page); it must be built from BASE_URL:
    the UID's host is taken from it, so it matches the feeds'.
    """
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    # A cancellation removes the event (and may reach someone who only waited): no private link.
    join = "" if method == "CANCEL" else join_url
    # An occurrence of a series someone signed up for whole: the series' UID and this one's RECURRENCE-ID.
    entry = Entry(event, url, join_url=join or "", sequence=sequence,
                  status="CANCELLED" if method == "CANCEL" else None, uid=uid, recurrence_id=recurrence_id)
    partstat = "DECLINED" if method == "CANCEL" and event.status != "cancelled" else "ACCEPTED"
    attendee = _address("ATTENDEE", attendee_email, attendee_name,
                        f";ROLE=REQ-PARTICIPANT;PARTSTAT={partstat};RSVP=FALSE")
    body = vevent(entry, stamp=stamp, organizer=organizer_line(organizer_email, organizer_name), attendee=attendee)
    head = _calendar_head(method=method)
    zones = _vtimezones([zone_span(event)])
    return (head + zones + body + b"END:VCALENDAR\r\n").decode("utf-8")
