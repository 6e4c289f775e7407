"""Series in the feeds: the occurrences of a series a feed follows become one master VEVENT (RRULE,
EXDATE) and RECURRENCE-ID overrides (scheduler/calendar_series.py); other events stay single VEVENTs.

A feed follows a series when the whole series is what its reader sees: the public feed always, a tag
feed when the series carries the tag, a speaker's feed when they speak at the series, a personal feed
when the person signed up for the whole series. Occurrences the reader does not see (another speaker
that day, a date they never held a place at) are EXDATEs; the rule goes on past the planned window,
as the series will.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import calendar_series, calendars
from ..models import Event, Series, SeriesSubscription, Speaker
from ..text import slugify
from ..urls import external_url

Entry = Callable[[object, str], calendars.Entry]


@dataclass(frozen=True)
class Follow:
    """Which series a feed shows whole, and how the master looks to its reader: master(series, template, url),
    or None for the feed's own `entry`."""

    follows: Callable[[Series], bool]
    master: Callable[[Series, object, str], calendars.Entry] | None = None


ALL = Follow(lambda series: True)


def tag_follow(tag_slug: str) -> Follow:
    return Follow(lambda series: tag_slug in {slugify(name) for name in series.tags or []})


def speaker_follow(speaker_id: int) -> Follow:
    return Follow(lambda series: any(int(sid) == speaker_id for sid, _role in series.speakers or []))


def personal_follow(session: Session, email_key: str) -> Follow:
    """A person's feed shows whole the series they signed up for whole; the master as a confirmed place."""
    subscriptions = {sub.series_id: sub for sub in session.scalars(select(SeriesSubscription).where(
        SeriesSubscription.email_key == email_key, SeriesSubscription.state == "active"))}

    def master(series: Series, template, url: str) -> calendars.Entry:
        subscription = subscriptions[series.family_id]
        sequence = max(series.sequence, subscription.ics_sequence)
        if template.status == "cancelled":
            return calendars.Entry(template, url, sequence=sequence)
        alarms = () if subscription.reminders_opt_out else tuple(series.reminder_offsets or ())
        # No join link on the master: each occurrence carries the person's own door to it (web/door.py), never
        # the raw join URL.
        return calendars.Entry(template, url, sequence=sequence, alarms=alarms)

    return Follow(lambda series: series.family_id in subscriptions, master)


def series_url(series: Series) -> str:
    return external_url("series.page", slug=series.slug)


def take(session: Session, rows: list, follow: Follow, *, entry: Entry, prefix: str,
         load) -> tuple[list, list[bytes], list]:
    """Split the feed's (id, version, series id) rows: (rows for single VEVENTs, the followed series' VEVENTs,
    the zone spans those need). `load(session, *conditions)` loads events as the feed does."""
    ids = {row[2] for row in rows if row[2] is not None}
    if not ids:
        return rows, [], []
    followed = {series.id: series for series in session.scalars(select(Series).where(Series.id.in_(ids)))
                if follow.follows(series)}
    if not followed:
        return rows, [], []
    matched: dict[int, list[int]] = {}
    single = []
    for row in rows:
        if row[2] in followed:
            matched.setdefault(row[2], []).append(row[0])
        else:
            single.append(row)
    bodies, spans = [], []
    for series_id, event_ids in matched.items():
        more, zones = _series_parts(session, followed[series_id], event_ids, follow, entry=entry, prefix=prefix,
                                    load=load)
        bodies += more
        spans += zones
    return single, bodies, spans


def _series_parts(session: Session, series: Series, event_ids: list[int], follow: Follow, *, entry: Entry,
                  prefix: str, load) -> tuple[list[bytes], list]:
    shown = load(session, Event.id.in_(event_ids))
    first = min(event.recurrence_id for event in shown)
    others = session.scalars(select(Event.recurrence_id).where(
        Event.series_id == series.id, Event.id.not_in(event_ids), Event.recurrence_id >= first))
    exdates = [skip.recurrence_id for skip in series.skips] + list(others)
    master = calendar_series.template(series, starts_at=first, tags=_tags(series), speakers=_speakers(session, series))
    url = series_url(series)
    head = follow.master(series, master, url) if follow.master else entry(master, url)
    occurrences = [calendar_series.Occurrence(event, entry(event, prefix + event.slug)) for event in shown]
    bodies = calendar_series.vevents(series, head, occurrences, first=first, exdates=exdates)
    span = calendar_series.zone_span(series, first, calendar_series.last_start(series) or series.planned_until)
    return bodies, [span] + [calendars.zone_span(event) for event in shown]


def _tags(series: Series) -> list:
    return [calendars.Named(name) for name in sorted(series.tags or [], key=slugify)]


def _speakers(session: Session, series: Series) -> list:
    pairs = [(int(sid), role) for sid, role in series.speakers or []]
    names = dict(session.execute(select(Speaker.id, Speaker.name).where(Speaker.id.in_([sid for sid, _ in pairs]))
                                 ).all()) if pairs else {}
    return [calendars.Appearance(role, calendars.Named(names[sid])) for sid, role in pairs if sid in names]


def public_family(session: Session, slug: str) -> list[int]:
    """The ids of every part of the public series with this slug (its first part first); [] when none."""
    series = session.scalar(select(Series).where(Series.slug == slug, Series.status != "draft"))
    if series is None:
        return []
    family_id = series.family_id
    return list(session.scalars(select(Series.id).where((Series.id == family_id) | (Series.root_id == family_id))
                                .order_by(Series.id)))


def family_name(session: Session, family_id: int, organizer: str) -> str:
    """A series feed's NAME: the organiser's and the series' own."""
    return f"{organizer}: {session.get(Series, family_id).title}"
