"""A series' recurrence rule in its zone: the instants it gives (in wall-clock time, so 17:00 stays 17:00 across
a DST change), its RRULE text, and a rule's fields made from a first day, a time and an end.

Plain functions of a Series row's rule columns; the database is never read here.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from dateutil import rrule

from ..errors import InvalidInput, RuleGivesNothing
from ..models import Series

#: A rule gives at most this many occurrences (a guard against a rule without end read too far).
MAX_OCCURRENCES = 1000  # series.validate() names it in a message: change both together
BYDAY_RE = re.compile(r"^(?:[+-]?[1-5])?(MO|TU|WE|TH|FR|SA|SU)$")
WEEKDAYS = {name: getattr(rrule, name) for name in ("MO", "TU", "WE", "TH", "FR", "SA", "SU")}


def byday_days(text: str) -> list:
    """BYDAY's text ("MO,WE" or "3WE,-1FR") as dateutil weekdays; ValueError names the first unknown part."""
    days = []
    for part in (text or "").split(","):
        part = part.strip().upper()
        if not part:
            continue
        match = BYDAY_RE.match(part)
        if match is None:
            raise ValueError(part)
        nth = part[:-2]
        day = WEEKDAYS[match.group(1)]
        days.append(day(int(nth)) if nth else day)
    return days


def _day_text(day, *, numbered: bool = True) -> str:
    """A weekday as BYDAY writes it: "WE", or "3WE" / "-1FR" with its number."""
    name = list(WEEKDAYS)[day.weekday]
    return f"{day.n}{name}" if numbered and day.n else name


def zone_of(series: Series) -> ZoneInfo:
    return ZoneInfo(series.timezone)


def local_start(series: Series) -> datetime:
    """The first occurrence's start as wall-clock time in the series' zone (naive)."""
    return series.first_start.astimezone(zone_of(series)).replace(tzinfo=None)


def _rule(series: Series) -> rrule.rrule:
    """The rule in local wall-clock time, so 17:00 stays 17:00 on both sides of a DST change."""
    zone = zone_of(series)
    until = series.until.astimezone(zone).replace(tzinfo=None) if series.until else None
    freq = rrule.WEEKLY if series.freq == "weekly" else rrule.MONTHLY
    return rrule.rrule(freq, dtstart=local_start(series), interval=series.interval,
                       byweekday=byday_days(series.byday) or None, bymonthday=series.bymonthday,
                       count=series.count, until=until)


def rule_starts(series: Series, *, before: datetime | None = None) -> list[datetime]:
    """The instants (UTC-aware) the rule gives, skipped dates included, up to `before` (exclusive)."""
    zone = zone_of(series)
    found = []
    for local in _rule(series):
        moment = local.replace(tzinfo=zone).astimezone(series.first_start.tzinfo)
        if (before is not None and moment >= before) or len(found) >= MAX_OCCURRENCES:
            break
        found.append(moment)
    return found


def occurrence_starts(series: Series, *, before: datetime | None = None) -> list[datetime]:
    """The rule's instants without the skipped dates."""
    skipped = {skip.recurrence_id for skip in series.skips}
    return [moment for moment in rule_starts(series, before=before) if moment not in skipped]


def rrule_text(series: Series) -> str:
    """The RRULE value (UNTIL in UTC, as RFC 5545 wants with a zoned DTSTART)."""
    parts = [f"FREQ={series.freq.upper()}"]
    if series.interval != 1:
        parts.append(f"INTERVAL={series.interval}")
    if series.byday:
        parts.append("BYDAY=" + ",".join(p.strip().upper() for p in series.byday.split(",") if p.strip()))
    if series.bymonthday is not None:
        parts.append(f"BYMONTHDAY={series.bymonthday}")
    if series.count is not None:
        parts.append(f"COUNT={series.count}")
    if series.until is not None:
        parts.append("UNTIL=" + series.until.strftime("%Y%m%dT%H%M%SZ"))
    return ";".join(parts)


def first_on_or_after(*, timezone: str, freq: str, interval: int, byday: str, bymonthday: int | None,
                      day: date, start_time: time, not_before: datetime) -> datetime | None:
    """The first start the rule gives on or after `day` at `start_time` in `timezone`, and after `not_before`;
    None when it gives none. The rule's weekday or day of the month defaults to the day's, as RFC 5545's do
    from DTSTART; a week number on a weekly rule is left out (RFC 5545 allows none there)."""
    zone = ZoneInfo(timezone)
    days = byday_days(byday)
    if freq == "weekly":
        days = [WEEKDAYS[_day_text(d, numbered=False)] for d in days] or [list(WEEKDAYS.values())[day.weekday()]]
    elif not days and bymonthday is None:
        bymonthday = day.day
    probe = rrule.rrule(rrule.WEEKLY if freq == "weekly" else rrule.MONTHLY, interval=interval,
                        dtstart=datetime.combine(day, start_time), byweekday=days or None, bymonthday=bymonthday)
    for count, local in enumerate(probe):
        moment = local.replace(tzinfo=zone).astimezone(not_before.tzinfo)
        if moment > not_before:
            return moment
        if count > MAX_OCCURRENCES * 10:
            return None
    return None


def rule_fields(*, timezone: str, freq: str, interval: int, byday: str, bymonthday: int | None, day: date,
                start_time: time, count: int | None, until: date | None, now: datetime) -> dict:
    """A series' rule fields from a first day, a wall-clock time and an end; RuleGivesNothing when no
    occurrence is left. Both a count and an end date: whichever ends the series first (as one COUNT)."""
    weekly = freq == "weekly"
    if weekly:
        bymonthday = None  # RFC 5545 has no BYMONTHDAY in a weekly rule
    try:
        byday_days(byday)
    except ValueError as exc:
        raise InvalidInput("Unknown day %(day)s: use MO, TU, WE, TH, FR, SA, SU, with a week number for monthly "
                           "(3WE, -1FR).", field="byday", params={"day": str(exc)}) from None
    days = ",".join(dict.fromkeys(_day_text(d, numbered=not weekly) for d in byday_days(byday)))
    first = first_on_or_after(timezone=timezone, freq=freq, interval=interval, byday=days, bymonthday=bymonthday,
                              day=day, start_time=start_time, not_before=now)
    if first is None:
        raise RuleGivesNothing("This rule gives no occurrence after now.", field="byday")
    zone = ZoneInfo(timezone)
    local = first.astimezone(zone)
    if weekly and not days:
        days = list(WEEKDAYS)[local.weekday()]
    if not weekly and not days and bymonthday is None:
        bymonthday = day.day
    last = None
    if until is not None:
        last = datetime.combine(until, time(23, 59, 59)).replace(tzinfo=zone).astimezone(first.tzinfo)
        if last < first:
            raise RuleGivesNothing("The series would end before its first occurrence.", field="until")
    fields = dict(timezone=timezone, freq=freq, interval=interval, byday=days, bymonthday=bymonthday,
                  first_start=first, count=count, until=last)
    if count is not None and last is not None:
        probe = Series(**fields, duration_minutes=60)
        probe.count = None
        fields["count"], fields["until"] = max(1, min(count, len(rule_starts(probe)))), None
    return fields
