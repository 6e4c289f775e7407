"""Showing times: always in a named zone, in the reader's zone and language where we know them.

Dates, weekdays, month names and durations come from Babel (CLDR) in the given locale, else the
current Flask-Babel locale (a request's, or a mail's under force_locale), else English.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as babel_date
from babel.dates import format_datetime as babel_datetime
from babel.dates import format_timedelta
from babel.lists import format_list
from flask_babel import get_locale

from .languages import DEFAULT

#: English keeps the order Townhall always wrote ("Thursday 3 December 2026"); the others take CLDR's full date.
_DATE_PATTERNS = {"en": "EEEE d MMMM y"}
#: Between the date and the time: CLDR's own joins add words ("um", "à") that read oddly before a range.
_DATE_TIME_JOIN = {"zh_Hans": "{date} {time}"}
_BARE_OFFSET = re.compile(r"^(GMT|UTC)?[+-]\d{2}:?\d{2}$")


def current_locale() -> str:
    """The active Flask-Babel locale as a code Townhall speaks ('en' outside any app context)."""
    try:
        found = get_locale()
    except (RuntimeError, KeyError):  # no app context, or an app without Flask-Babel
        found = None
    return str(found) if found is not None else DEFAULT


def _locale(locale: str | None) -> str:
    return locale or current_locale()


def in_zone(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def zone_label(local: datetime, locale: str | None = None) -> str:
    """The zone's short name in the locale ("MEZ" in German), else the zone database's ("CET", "PST")."""
    named = babel_datetime(local, "z", tzinfo=local.tzinfo, locale=_locale(locale))
    return local.tzname() if _BARE_OFFSET.match(named) else named


def format_day(moment: datetime, zone: str, locale: str | None = None) -> str:
    """"Thursday 3 December 2026", "Donnerstag, 3. Dezember 2026": the date in the zone."""
    locale = _locale(locale)
    return babel_date(in_zone(moment, zone), _DATE_PATTERNS.get(locale, "full"), locale=locale)


def _clock(local: datetime, locale: str) -> str:
    return babel_datetime(local, "HH:mm", tzinfo=local.tzinfo, locale=locale)


def _join(date: str, time: str, locale: str) -> str:
    return _DATE_TIME_JOIN.get(locale, "{date}, {time}").format(date=date, time=time)


def format_datetime(moment: datetime, zone: str, locale: str | None = None) -> str:
    """"Thursday 3 December 2026, 09:00 PST (America/Los_Angeles)", in the locale's words."""
    locale = _locale(locale)
    local = in_zone(moment, zone)
    time = f"{_clock(local, locale)} {zone_label(local, locale)} ({zone})"
    return _join(format_day(moment, zone, locale), time, locale)


def format_range(start: datetime, end: datetime, zone: str, locale: str | None = None) -> str:
    """"Donnerstag, 3. Dezember 2026, 18:00–19:00 MEZ (Europe/Berlin)"; dates repeat only if they differ."""
    locale = _locale(locale)
    a, b = in_zone(start, zone), in_zone(end, zone)
    if a.date() == b.date():
        time = f"{_clock(a, locale)}–{_clock(b, locale)} {zone_label(b, locale)} ({zone})"
        return _join(format_day(start, zone, locale), time, locale)
    return f"{format_datetime(start, zone, locale)} – {format_datetime(end, zone, locale)}"


def format_time(moment: datetime, zone: str, locale: str | None = None) -> str:
    local = in_zone(moment, zone)
    return f"{_clock(local, _locale(locale))} {zone_label(local, locale)}"


def format_short(moment: datetime, zone: str, locale: str | None = None) -> str:
    """"Thu 3 Dec 09:00 PST": a run of show's line, in the locale's abbreviations."""
    locale = _locale(locale)
    local = in_zone(moment, zone)
    pattern = "M月d日EEE HH:mm" if locale == "zh_Hans" else "EEE d MMM HH:mm"
    return f"{babel_datetime(local, pattern, tzinfo=local.tzinfo, locale=locale)} {zone_label(local, locale)}"


#: Day and month, short ("2 Nov", "2. Nov.", "11月2日"), with the year where asked.
_DAY_MONTH = {"de": "d. MMM", "zh_Hans": "M月d日"}
_DAY_MONTH_YEAR = {"de": "d. MMM y", "zh_Hans": "y年M月d日"}


def format_day_month(local: datetime, *, year: bool = False, locale: str | None = None) -> str:
    """"2 Nov", "2 Nov 2027" (with `year`): a local date short enough for a table cell or a chart's axis."""
    locale = _locale(locale)
    pattern = (_DAY_MONTH_YEAR if year else _DAY_MONTH).get(locale, "d MMM y" if year else "d MMM")
    return babel_datetime(local, pattern, tzinfo=local.tzinfo, locale=locale)


def _unit_count(seconds: int) -> int:
    """How many of the unit describe_offset would name: weeks, days, hours, minutes, else seconds."""
    for size in (7 * 86400, 86400, 3600, 60):
        if seconds % size == 0:
            return seconds // size
    return seconds


def format_duration(seconds: int, locale: str | None = None) -> str:
    """"1 day", "2 Stunden", "90 minutes": exactly the unit the offset is a whole number of."""
    # Babel picks the largest unit whose count reaches the threshold: the exact count makes it ours.
    return format_timedelta(timedelta(seconds=seconds), threshold=_unit_count(seconds), locale=_locale(locale))


def format_lead(seconds: int, locale: str | None = None) -> str:
    """"in 1 day", "in 2 Tagen", "dans 1 heure", "1小时后": a time ahead, as a phrase of its own."""
    return format_timedelta(timedelta(seconds=seconds), threshold=_unit_count(seconds), add_direction=True,
                            locale=_locale(locale))


def format_words(words: list[str], locale: str | None = None) -> str:
    """"1 day and 1 hour": a list joined as the locale joins one."""
    return format_list(words, locale=_locale(locale)) if words else ""


def bcp47(locale: str | None = None) -> str:
    """The locale as an HTML lang attribute wants it: zh_Hans -> zh-Hans."""
    return str(Locale.parse(_locale(locale))).replace("_", "-")
