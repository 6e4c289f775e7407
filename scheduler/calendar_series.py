"""A series in iCalendar: one master VEVENT with RRULE and EXDATEs, plus a RECURRENCE-ID override for each
occurrence that differs from the rule (moved, changed, cancelled, or another state for this reader).

Pure like calendars.py: the caller says which occurrences the reader sees and how each looks to them
(the same `calendars.Entry` a single event gets), and gets VEVENT bytes back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from . import calendars
from .domain import recurrence

#: Lines that differ between the master and an occurrence that follows it exactly.
_OWN_LINES = ("UID:", "DTSTAMP:", "SEQUENCE:", "DTSTART", "DTEND", "RECURRENCE-ID", "CREATED:", "LAST-MODIFIED:",
              "URL:", "RRULE:", "EXDATE")


def template(series, *, starts_at: datetime, tags: list, speakers: list) -> calendars.Columns:
    """The series as one event, its master starting at `starts_at` (its DTSTART): what every occurrence looks
    like unless changed. Tags and speakers as the feeds load them."""
    return calendars.Columns(series.id, series.slug, series.title, series.summary or "", series.description or "",
                             series.timezone, starts_at, starts_at + timedelta(minutes=series.duration_minutes),
                             series.venue or "", series.join_url or "",
                             "cancelled" if series.status == "cancelled" else "published", series.sequence,
                             series.created_at, series.updated_at, tags=tags, speakers=speakers)


def _content(body: bytes) -> list[str]:
    lines = body.decode("utf-8").replace("\r\n ", "").split("\r\n")
    return [line for line in lines if not line.startswith(_OWN_LINES)]


def _exdate(moment: datetime, zone: str) -> str:
    return calendars.vevent_time("EXDATE", moment, zone)


def rule_lines(series, *, first: datetime, exdates) -> tuple[str, ...]:
    """RRULE (COUNT counted from `first`, the master's DTSTART) and one EXDATE per left-out start."""
    rule = recurrence.rrule_text(series)
    if series.count is not None and first != series.first_start:
        before = len(recurrence.rule_starts(series, before=first))
        rule = rule.replace(f"COUNT={series.count}", f"COUNT={max(series.count - before, 1)}")
    # One EXDATE per date: vobject reads only the first of a list.
    return (f"RRULE:{rule}", *(_exdate(m, series.timezone) for m in sorted(set(exdates)) if m >= first))


@dataclass(frozen=True)
class Occurrence:
    """One occurrence the reader sees: its event and the entry a single event would get."""

    event: object
    entry: calendars.Entry


def vevents(series, master: calendars.Entry, shown: list[Occurrence], *, first: datetime, exdates,
            stamp: datetime | None = None, organizer: str = "", attendee: str = "") -> list[bytes]:
    """The master VEVENT (DTSTART `first`) and an override for each shown occurrence that differs from it."""
    uid = calendars.uid_for(series, master.url, kind="series")
    head = replace(master, uid=uid, extra=rule_lines(series, first=first, exdates=exdates))
    parts = [calendars.vevent(head, stamp=stamp, organizer=organizer, attendee=attendee)]
    expected = _content(calendars.vevent(replace(master, uid=uid), stamp=stamp, organizer=organizer, attendee=attendee))
    duration = timedelta(minutes=series.duration_minutes)
    for occurrence in shown:
        event = occurrence.event
        own = replace(occurrence.entry, uid=uid, recurrence_id=event.recurrence_id)
        body = calendars.vevent(own, stamp=stamp, organizer=organizer, attendee=attendee)
        moved = event.starts_at != event.recurrence_id or event.ends_at - event.starts_at != duration
        if moved or _content(body) != expected:
            parts.append(body)
    return parts


def zone_span(series, first: datetime, last: datetime | None) -> tuple[str, int, int] | None:
    """The years the series covers in its zone, from `first` to `last` (or a year on when it has no end)."""
    if series.timezone == "UTC":
        return None
    zone = calendars.zone_of(series.timezone)
    end = last or first + timedelta(days=366)
    return series.timezone, first.astimezone(zone).year, end.astimezone(zone).year


def last_start(series) -> datetime | None:
    """The rule's last start, when it has an end."""
    if series.count is None and series.until is None:
        return None
    starts = recurrence.rule_starts(series)
    return starts[-1] if starts else None
