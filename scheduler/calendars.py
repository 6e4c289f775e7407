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

from icalendar import Calendar, Event, Timezone, vCalAddress, vDuration

from .text import one_line, strip_controls

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


def uid_for(event, url: str) -> str:
    """Stable per event and site: the same in every feed, download and invitation."""
    host = urlsplit(url).hostname or "localhost"
    return f"event-{event.id}@{host}"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _local(moment: datetime, zone: str) -> datetime:
    # UTC events are written as ...Z times: no TZID, no VTIMEZONE needed.
    if zone == "UTC":
        return moment.astimezone(UTC)
    return moment.astimezone(ZoneInfo(zone))


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


def _address(email: str, name: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{one_line(email)}")
    if one_line(name):
        address.params["CN"] = one_line(name)
    return address


def vevent(entry: Entry, *, organizer_email: str, organizer_name: str, stamp: datetime | None = None) -> Event:
    """One VEVENT; DTSTAMP defaults to the row's update time so feeds stay byte-stable."""
    event = entry.event
    component = Event()
    component.add("uid", uid_for(event, entry.url))
    component.add("dtstamp", _utc(stamp or event.updated_at))
    component.add("sequence", event.sequence if entry.sequence is None else entry.sequence)
    component.add("summary", one_line(event.title))
    component.add("dtstart", _local(event.starts_at, event.timezone))
    component.add("dtend", _local(event.ends_at, event.timezone))
    location = _location(event, entry.join_url)
    if location:
        component.add("location", location)
    description = _description(event, entry.join_url)
    if description:
        component.add("description", description)
    component.add("url", entry.link or entry.url)
    component.add("status", entry.status or _status(event))
    component.add("organizer", _address(organizer_email, organizer_name))
    component.add("created", _utc(event.created_at))
    component.add("last-modified", _utc(event.updated_at))
    for tag in getattr(event, "tags", []) or []:
        component.add("categories", [one_line(tag.name)])
    return component


@lru_cache(maxsize=256)
def _vtimezone(tzid: str, first_year: int, last_year: int) -> bytes:
    # Whole years keep the cache small; from_tzid is the slow part of a cold build.
    timezone = Timezone.from_tzid(tzid, first_date=date(first_year, 1, 1), last_date=date(last_year + 1, 1, 1))
    return timezone.to_ical()


def _vtimezones(events: Iterable) -> bytes:
    spans: dict[str, tuple[int, int]] = {}
    for event in events:
        if event.timezone == "UTC":
            continue
        zone = ZoneInfo(event.timezone)
        first = event.starts_at.astimezone(zone).year
        last = event.ends_at.astimezone(zone).year
        low, high = spans.get(event.timezone, (first, last))
        spans[event.timezone] = (min(low, first), max(high, last))
    return b"".join(_vtimezone(tzid, *spans[tzid]) for tzid in sorted(spans))


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
    head = _calendar_head(name=name, refresh=refresh)
    zones = _vtimezones(entry.event for entry in entries)
    body = b"".join(
        vevent(entry, organizer_email=organizer_email, organizer_name=organizer_name).to_ical() for entry in entries
    )
    return head + zones + body + b"END:VCALENDAR\r\n"


def feed(entries: list[Entry], *, name: str, organizer_email: str, organizer_name: str,
         refresh: timedelta = REFRESH) -> bytes:
    """A subscription feed: NAME, X-WR-CALNAME, REFRESH-INTERVAL and X-PUBLISHED-TTL, no METHOD."""
    return calendar_bytes(entries, organizer_email=organizer_email, organizer_name=organizer_name, name=name,
                          refresh=refresh)


def download(entry: Entry, *, organizer_email: str, organizer_name: str) -> bytes:
    """One event as an .ics file to import: no METHOD, so clients add it rather than treat it as an invite."""
    return calendar_bytes([entry], organizer_email=organizer_email, organizer_name=organizer_name)


def invitation(event, *, method: str, attendee_email: str, attendee_name: str, sequence: int,
               organizer_email: str, organizer_name: str, url: str, stamp: datetime,
               join_url: str | None = None) -> str:
    """An email invitation for one person: METHOD:REQUEST (add / update) or METHOD:CANCEL (remove).

    The join URL (private) is included: invitations go only to confirmed attendees and speakers.
    `url` is the event's public page; the UID's host is taken from it.
    """
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    join = event.join_url if join_url is None else join_url
    entry = Entry(event, url, join_url=join or "", sequence=sequence,
                  status="CANCELLED" if method == "CANCEL" else None)
    component = vevent(entry, organizer_email=organizer_email, organizer_name=organizer_name, stamp=stamp)
    attendee = _address(attendee_email, attendee_name)
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "DECLINED" if method == "CANCEL" and event.status != "cancelled" else "ACCEPTED"
    attendee.params["RSVP"] = "FALSE"
    component.add("attendee", attendee)
    head = _calendar_head(method=method)
    zones = _vtimezones([event])
    return (head + zones + component.to_ical() + b"END:VCALENDAR\r\n").decode("utf-8")
