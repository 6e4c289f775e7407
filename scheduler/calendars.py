"""Pure iCalendar builders: event -> VEVENT, events -> feed bytes, invitations (REQUEST / CANCEL).

Nothing here reads the clock, the database or Flask: every timestamp, URL and address comes in
as an argument, so the same data always gives the same bytes (and the same ETag).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from icalendar import Calendar, Timezone, vDuration

from .text import one_line as _one_line
from .text import strip_controls as _strip_controls

PRODID = "-//Townhall//Townhall events//EN"
#: How often subscribers should poll a feed (REFRESH-INTERVAL and X-PUBLISHED-TTL).
REFRESH = timedelta(hours=1)
METHODS = ("REQUEST", "CANCEL")


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


def one_line(text: str) -> str:
    # Most text is already one clean line; str.isprintable() is false for every control, bidi or
    # line-separator character, so only the rest pays for the regular expressions.
    if text.isprintable() and "  " not in text and text == text.strip():
        return text
    return _one_line(text)


def strip_controls(text: str) -> str:
    return text if text.isprintable() else _strip_controls(text)


@lru_cache(maxsize=64)
def _host(netloc: str) -> str:
    return urlsplit("//" + netloc).hostname or "localhost"


def uid_for(event, url: str) -> str:
    """Stable per event and site: the same in every feed, download and invitation."""
    return f"event-{event.id}@{_host(url.partition('://')[2].partition('/')[0])}"


def _location(event, join_url: str) -> str:
    return one_line(event.venue or "") or join_url


def _description(event, join_url: str) -> str:
    parts = []
    summary = strip_controls(event.summary or "").strip()
    if summary:
        parts.append(summary)
    speakers = [link for link in getattr(event, "speakers", []) or []]
    if speakers:
        parts.append("With: " + ", ".join(
            f"{one_line(link.speaker.name)} ({link.role})" for link in speakers))
    if join_url:
        parts.append(f"Join online: {join_url}")
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
    # DQUOTE cannot appear in a parameter value at all; quote when : ; , would end it.
    value = one_line(value).replace('"', "")
    return f'"{value}"' if any(c in value for c in ":;,") else value


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


def _address(name: str, email: str, person: str, extra: str = "") -> str:
    cn = one_line(person)
    params = (f";CN={_param(cn)}" if cn else "") + extra
    return f"{name}{params}:mailto:{one_line(email).replace(' ', '')}"


def vevent(entry: Entry, *, organizer_email: str, organizer_name: str, stamp: datetime | None = None,
           attendee: str = "") -> bytes:
    """One VEVENT as folded bytes; DTSTAMP defaults to the row's update time so feeds stay byte-stable.

    Written directly rather than through icalendar's Component, which is several times slower per
    event for a large feed (bench/calendar_bench.py); the tests parse every output back with
    icalendar, vobject, ics and ical.js.
    """
    event = entry.event
    modified = _utc_stamp(event.updated_at)
    # Lines of a fixed shape (a timestamp, a number, a status) are always short ASCII: only the others are folded.
    lines = [
        "BEGIN:VEVENT",
        _folded(f"UID:{uid_for(event, entry.url)}"),
        f"DTSTAMP:{_utc_stamp(stamp) if stamp else modified}",
        f"SEQUENCE:{event.sequence if entry.sequence is None else entry.sequence}",
        _folded(f"SUMMARY:{_escape(one_line(event.title))}"),
        _folded(_when("DTSTART", event.starts_at, event.timezone)),
        _folded(_when("DTEND", event.ends_at, event.timezone)),
    ]
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
        _organizer_line(organizer_email, organizer_name),
    ]
    if attendee:
        lines.append(_folded(attendee))
    lines += [
        f"CREATED:{_utc_stamp(event.created_at)}",
        f"LAST-MODIFIED:{modified}",
        "END:VEVENT",
        "",  # the last line's CRLF
    ]
    return "\r\n".join(lines).encode("utf-8")


@lru_cache(maxsize=64)
def _organizer_line(email: str, name: str) -> str:
    """The same for every event of a feed: built once."""
    return _folded(_address("ORGANIZER", email, name))


@lru_cache(maxsize=256)
def _vtimezone(tzid: str, first_year: int, last_year: int) -> bytes:
    # Whole years keep the cache small; from_tzid is the slow part of a cold build.
    timezone = Timezone.from_tzid(tzid, first_date=date(first_year, 1, 1), last_date=date(last_year + 1, 1, 1))
    return timezone.to_ical()


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


def _calendar_head(*, method: str | None = None, name: str | None = None, refresh: timedelta | None = None) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method:
        calendar.add("method", method)
    if name:
        calendar.add("name", one_line(name))
        calendar.add("x-wr-calname", one_line(name))
    if refresh:
        calendar.add("refresh-interval", refresh, parameters={"VALUE": "DURATION"})
        calendar.add("x-published-ttl", vDuration(refresh))
    text = calendar.to_ical()
    return text[: -len(b"END:VCALENDAR\r\n")]


def calendar_bytes(entries: list[Entry], *, organizer_email: str, organizer_name: str, name: str | None = None,
                   refresh: timedelta | None = None) -> bytes:
    """A whole VCALENDAR without METHOD (a download or a feed); feeds pass name and refresh."""
    body = [vevent(entry, organizer_email=organizer_email, organizer_name=organizer_name) for entry in entries]
    return assemble(body, [zone_span(entry.event) for entry in entries], name=name, refresh=refresh)


def assemble(vevents: Iterable[bytes], spans: Iterable[tuple[str, int, int] | None], *, name: str | None = None,
             refresh: timedelta | None = None) -> bytes:
    """A VCALENDAR without METHOD of VEVENTs written before (by vevent), with a VTIMEZONE covering every span.

    For a caller that keeps each event's VEVENT and zone_span between builds (the feeds do).
    """
    return _calendar_head(name=name, refresh=refresh) + _vtimezones(spans) + b"".join(vevents) + b"END:VCALENDAR\r\n"


def feed(entries: list[Entry], *, name: str, organizer_email: str, organizer_name: str,
         refresh: timedelta = REFRESH) -> bytes:
    """A subscription feed: NAME, X-WR-CALNAME, REFRESH-INTERVAL and X-PUBLISHED-TTL, no METHOD."""
    return calendar_bytes(entries, organizer_email=organizer_email, organizer_name=organizer_name, name=name,
                          refresh=refresh)


def download(entry: Entry, *, organizer_email: str, organizer_name: str) -> bytes:
    """One event as an .ics file to import: no METHOD, so clients add it rather than treat it as an invite."""
    return calendar_bytes([entry], organizer_email=organizer_email, organizer_name=organizer_name)


def invitation(event, *, method: str, attendee_email: str, attendee_name: str, sequence: int,
               organizer_email: str, organizer_name: str, url: str, stamp: datetime) -> str:
    """An email invitation for one person: METHOD:REQUEST (add / update) or METHOD:CANCEL (remove).

    The join URL (private) is included in a REQUEST: invitations go only to confirmed attendees and
    speakers. `url` becomes URL (the event page, or the person's manage page) and must be built
    from BASE_URL: the UID's host is taken from it, so it matches the feeds'.
    """
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    # A cancellation removes the event (and may reach someone who only waited): no private link.
    join = "" if method == "CANCEL" else event.join_url
    entry = Entry(event, url, join_url=join or "", sequence=sequence,
                  status="CANCELLED" if method == "CANCEL" else None)
    partstat = "DECLINED" if method == "CANCEL" and event.status != "cancelled" else "ACCEPTED"
    attendee = _address("ATTENDEE", attendee_email, attendee_name,
                        f";ROLE=REQ-PARTICIPANT;PARTSTAT={partstat};RSVP=FALSE")
    body = vevent(entry, organizer_email=organizer_email, organizer_name=organizer_name, stamp=stamp,
                  attendee=attendee)
    head = _calendar_head(method=method)
    zones = _vtimezones([zone_span(event)])
    return (head + zones + body + b"END:VCALENDAR\r\n").decode("utf-8")
