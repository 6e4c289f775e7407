"""Server-rendered SVG pictures: the signups chart and the jobs timeline."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from scheduler.charts import TimelineItem, cumulative, nice_ceiling, signups_svg, time_ticks, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_cumulative_sorts_and_counts():
    times = [T0 + timedelta(hours=2), T0, T0 + timedelta(hours=1)]
    assert cumulative(times) == [(T0, 1), (T0 + timedelta(hours=1), 2), (T0 + timedelta(hours=2), 3)]


def test_nice_ceiling_rounds_up_to_1_2_5():
    assert [nice_ceiling(v) for v in (0, 1, 2, 3, 7, 10, 11, 26, 51, 180, 1001)] == [
        1, 1, 2, 5, 10, 10, 20, 50, 100, 200, 2000]


def test_time_ticks_hours_in_the_given_zone():
    ticks = time_ticks(T0, T0 + timedelta(hours=5), "America/Los_Angeles")
    # 08:00 UTC is 00:00 PST; a 5-hour span gets hourly ticks in Los Angeles time, midnight as its date.
    assert [label for _, label in ticks] == ["1 Dec", "01:00", "02:00", "03:00", "04:00", "05:00"]
    assert ticks[0][0] == T0


def test_time_ticks_days_for_long_spans():
    ticks = time_ticks(T0, T0 + timedelta(days=4), "UTC")
    assert [label for _, label in ticks] == ["2 Dec", "3 Dec", "4 Dec", "5 Dec"]


def test_signups_svg_empty_says_so_accessibly():
    root = parse(signups_svg([], title="Signups over time for Demo"))
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Signups over time for Demo"
    assert root.find(f"{SVG}title").text == "Signups over time for Demo"
    desc = root.find(f"{SVG}desc")
    assert desc.text == "No signups yet."
    assert root.get("aria-describedby") == desc.get("id")
    assert root.find(f"{SVG}text").text == "No signups yet"


def test_signups_svg_draws_a_step_line_with_description():
    points = cumulative([T0 + timedelta(hours=1), T0 + timedelta(hours=3), T0 + timedelta(hours=3)])
    svg = signups_svg(points, zone="UTC", start=T0, end=T0 + timedelta(hours=4), width=444, height=144)
    root = parse(svg)
    assert root.get("viewBox") == "0 0 444 144"
    assert root.find(f"{SVG}desc").text == (
        "3 signups between 1 Dec 2026 08:00 UTC and 1 Dec 2026 12:00 UTC; "
        "the first at 1 Dec 2026 09:00 UTC, the latest at 1 Dec 2026 11:00 UTC.")
    # Plot area: x from 44 to 428 (96 px per hour), y from 114 (0) to 14 (top = 5 signups, 20 px each).
    paths = root.findall(f"{SVG}path")
    assert paths[1].get("d") == "M44.0,114.0H140.0V94.0H332.0V74.0H332.0V54.0H428.0"
    assert paths[0].get("d") == paths[1].get("d") + "V114.0Z"
    assert [t.text for t in root.findall(f"{SVG}text")] == ["0", "2", "5", "08:00", "09:00", "10:00", "11:00",
                                                             "12:00"]


def test_signups_svg_escapes_title_and_is_deterministic():
    title = 'Signups for <script>alert("x")</script> & co'
    first = signups_svg(cumulative([T0]), title=title)
    assert "<script>" not in first
    assert parse(first).find(f"{SVG}title").text == title
    assert first == signups_svg(cumulative([T0]), title=title)


def test_timeline_svg_places_jobs_in_time_order_with_states():
    start = T0 + timedelta(days=3)
    items = [
        TimelineItem("Reminder 1 hour before", start - timedelta(hours=1), "planned"),
        TimelineItem("Briefing 3 days before", start - timedelta(days=3), "done"),
        TimelineItem("Thanks 1 hour after", start + timedelta(hours=2), "cancelled"),
    ]
    root = parse(timeline_svg(items, starts_at=start, ends_at=start + timedelta(hours=1), now=T0 + timedelta(hours=1),
                              zone="Europe/Berlin", title="Jobs timeline for <Demo>"))
    assert root.get("aria-label") == "Jobs timeline for <Demo>"
    dots = root.findall(f"{SVG}circle")
    assert [d.get("class") for d in dots] == ["job-dot job-done", "job-dot job-planned", "job-dot job-cancelled"]
    assert [d.get("data-due") for d in dots] == [
        "2026-12-01T08:00:00+00:00", "2026-12-04T07:00:00+00:00", "2026-12-04T10:00:00+00:00"]
    xs = [float(d.get("cx")) for d in dots]
    assert xs == sorted(xs)
    assert dots[0].find(f"{SVG}title").text == "Briefing 3 days before · done · 1 Dec 2026 09:00 CET"
    assert root.find(f"{SVG}desc").text == (
        "Event from 4 Dec 2026 09:00 CET to 4 Dec 2026 10:00 CET. "
        "Briefing 3 days before: done, due 1 Dec 2026 09:00 CET, "
        "Reminder 1 hour before: planned, due 4 Dec 2026 08:00 CET, "
        "Thanks 1 hour after: cancelled, due 4 Dec 2026 11:00 CET.")


def test_timeline_svg_moves_dots_when_the_event_moves():
    def dot_due(start):
        items = [TimelineItem("Reminder 1 day before", start - timedelta(days=1), "planned")]
        svg = timeline_svg(items, starts_at=start, ends_at=start + timedelta(hours=1), now=T0)
        return parse(svg).find(f"{SVG}circle").get("data-due")

    assert dot_due(T0 + timedelta(days=5)) == "2026-12-05T08:00:00+00:00"
    assert dot_due(T0 + timedelta(days=6)) == "2026-12-06T08:00:00+00:00"
