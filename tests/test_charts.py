"""Server-rendered SVG pictures: the signups chart and the jobs timeline."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.charts import (
    TimelineItem,
    cumulative,
    cumulative_bins,
    nice_ceiling,
    signups_svg,
    time_ticks,
    timeline_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_cumulative_sorts_and_counts():
    times = [T0 + timedelta(hours=2), T0, T0 + timedelta(hours=1)]
    assert cumulative(times) == [(T0, 1), (T0 + timedelta(hours=1), 2), (T0 + timedelta(hours=2), 3)]


def test_cumulative_bins_steps_at_each_bins_first_signup_and_ends_at_the_last():
    bins = [(T0, T0 + timedelta(minutes=50), 3), (T0 + timedelta(hours=2), T0 + timedelta(hours=2), 1),
            (T0 + timedelta(hours=5), T0 + timedelta(hours=5, minutes=40), 6)]
    assert cumulative_bins(bins) == [(T0, 3), (T0 + timedelta(hours=2), 4), (T0 + timedelta(hours=5), 10),
                                     (T0 + timedelta(hours=5, minutes=40), 10)]
    assert cumulative_bins([(T0, T0, 1)]) == cumulative([T0])
    assert cumulative_bins([]) == []


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
    # Plot area: x from 21.4 (room for the widest count) to 432, y from 116 (0) to 12 (top = 5 signups).
    paths = root.findall(f"{SVG}path")
    assert paths[1].get("d") == "M21.4,116.0H124.1V95.2H329.4V74.4H329.4V53.6H432.0"
    assert paths[0].get("d") == paths[1].get("d") + "V116.0Z"
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


# A generous glyph width for system-ui at the charts' 12 units: a label's box is estimated wide, not narrow.
FONT, GLYPH = 12, 0.62


def label_boxes(root: ET.Element) -> list[tuple[str, float, float, float, float]]:
    """(text, left, right, top, bottom) of every label in the picture, tspans included."""
    boxes = []
    for text in root.iter(f"{SVG}text"):
        words = "".join(text.itertext())
        x, y = float(text.get("x")), float(text.get("y"))
        width = float(text.get("textLength") or len(words) * FONT * GLYPH)
        left = {"start": x, "middle": x - width / 2, "end": x - width}[text.get("text-anchor", "start")]
        boxes.append((words, left, left + width, y - FONT, y + 3))
    return boxes


def overlapping(root: ET.Element) -> list[tuple[str, str]]:
    return [(a[0], b[0]) for a, b in itertools.combinations(label_boxes(root), 2)
            if a[1] < b[2] and b[1] < a[2] and a[3] < b[4] and b[3] < a[4]]


def outside(root: ET.Element) -> list[str]:
    width = float(root.get("viewBox").split()[2])
    return [words for words, left, right, _, _ in label_boxes(root) if left < 0 or right > width]


def test_charts_scale_to_the_width_of_their_box():
    """A viewBox and no fixed width or height: a phone's narrow column gets the whole picture, smaller."""
    start = T0 + timedelta(days=2)
    for svg in (signups_svg(cumulative([T0]), start=T0, end=start),
                timeline_svg([TimelineItem("Reminder 1 day before", start - timedelta(days=1), "planned")],
                             starts_at=start, ends_at=start + timedelta(hours=1), now=T0)):
        root = parse(svg)
        assert root.get("viewBox").startswith("0 0 ")
        assert (root.get("width"), root.get("height")) == (None, None)


@pytest.mark.parametrize("minutes_to_start", [-3 * 24 * 60, -60, -10, 0, 20, 60, 75, 3 * 24 * 60])
def test_timeline_labels_never_overlap_wherever_now_is(minutes_to_start):
    """"now" and "Event" were drawn over each other when now was near the event: now one moves up a line."""
    start = T0 + timedelta(days=3)
    items = [TimelineItem("Briefing 3 days before", start - timedelta(days=3), "done"),
             TimelineItem("Reminder 1 day before", start - timedelta(days=1), "planned"),
             TimelineItem("Reminder 1 hour before", start - timedelta(hours=1), "planned"),
             TimelineItem("Nudge 15 minutes before", start - timedelta(minutes=15), "planned"),
             TimelineItem("Thanks 1 hour after", start + timedelta(hours=2), "planned")]
    now = start + timedelta(minutes=minutes_to_start)
    root = parse(timeline_svg(items, starts_at=start, ends_at=start + timedelta(hours=1), now=now,
                              zone="Europe/Berlin"))
    markers = [t for t in root.iter(f"{SVG}text") if t.get("class") == "marker"]
    assert [t.text for t in markers] == ["Event", "now"]
    assert overlapping(root) == []
    assert outside(root) == []


def test_timeline_puts_now_and_event_on_two_lines_only_when_they_would_touch():
    start = T0 + timedelta(days=3)

    def marker_heights(now):
        root = parse(timeline_svg([TimelineItem("Reminder 1 day before", start - timedelta(days=1), "planned")],
                                  starts_at=start, ends_at=start + timedelta(hours=1), now=now))
        return [float(t.get("y")) for t in root.iter(f"{SVG}text") if t.get("class") == "marker"]

    far_event, far_now = marker_heights(T0)
    assert far_event == far_now
    near_event, near_now = marker_heights(start - timedelta(minutes=10))
    assert abs(near_now - near_event) >= FONT


@pytest.mark.parametrize("span", [timedelta(minutes=40), timedelta(hours=5), timedelta(days=3),
                                  timedelta(days=40), timedelta(days=400)])
def test_signups_time_axis_has_a_few_labels_that_never_touch(span):
    points = cumulative([T0 + span / 3, T0 + span / 2])
    root = parse(signups_svg(points, zone="Europe/Berlin", start=T0, end=T0 + span))
    ticks = [t for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert 2 <= len(ticks) <= 5, [t.text for t in ticks]
    xs = [float(t.get("x")) for t in ticks]
    assert xs == sorted(xs)
    assert root.find(f"{SVG}line[@class='axis']") is not None
    assert overlapping(root) == []
    assert outside(root) == []


def test_signups_svg_draws_confirmed_apart_from_everyone_registered():
    """Shaded: everyone still registered; line: the confirmed among them, by when they got their seat."""
    registered = cumulative([T0 + timedelta(hours=h) for h in (1, 2, 3)])
    confirmed = cumulative([T0 + timedelta(hours=h) for h in (1, 4)])
    root = parse(signups_svg(registered, confirmed=confirmed, zone="UTC", start=T0, end=T0 + timedelta(hours=5)))
    counts = {c.get("class"): c.get("data-count") for c in root.iter(f"{SVG}circle")}
    assert counts == {"end-registered": "3", "end-confirmed": "2"}
    assert [p.get("class") for p in root.iter(f"{SVG}path")] == [None, "line-registered", "line-confirmed"]
    assert root.find(f"{SVG}desc").text == (
        "3 signups between 1 Dec 2026 08:00 UTC and 1 Dec 2026 13:00 UTC (2 of them confirmed; cancelled and "
        "expired signups are not counted); the first at 1 Dec 2026 09:00 UTC, the latest at 1 Dec 2026 11:00 UTC.")


def test_signups_svg_with_nobody_confirmed_yet_draws_the_line_at_zero():
    registered = cumulative([T0 + timedelta(hours=1)])
    root = parse(signups_svg(registered, confirmed=[], zone="UTC", start=T0, end=T0 + timedelta(hours=2)))
    assert {c.get("class"): c.get("data-count") for c in root.iter(f"{SVG}circle")} == {
        "end-registered": "1", "end-confirmed": "0"}
