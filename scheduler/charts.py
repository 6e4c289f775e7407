"""Pictures for the admin, rendered on the server as inline SVG: signups over time, the jobs timeline.

Both are drawn in a small viewBox and scale to the width they are given, down to a phone's; every
label is placed so that it never covers another (see `_rows` and `_axis`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask_babel import gettext, ngettext
from markupsafe import escape

from .timefmt import format_day_month

# Tick spacings an axis may use, smallest first; the first giving at most max_ticks wins.
TICK_STEPS = [timedelta(minutes=m) for m in (10, 30)] + [timedelta(hours=h) for h in (1, 3, 6, 12)] + [
    timedelta(days=d) for d in (1, 2, 7, 14, 28)]
MAX_TICKS = 7
INK, MUTED, LINE, ACCENT, FILL = "#1c1d21", "#5b5f6b", "#d9dbe1", "#3548c8", "#dfe3fa"
#: The outline of the "still registered" area: lighter than the confirmed line drawn over it.
REGISTERED = "#8d9ae6"
STATE_COLOURS = {"planned": ACCENT, "running": "#8a5a00", "done": "#1d6b3a", "skipped": "#8a5a00",
                 "cancelled": "#8a8f9c"}
FONT_SIZE = 12
#: A generous average glyph width of system-ui, in ems: label boxes are estimated wide, never narrow.
GLYPH = 0.62
#: Least space between two labels on one line, in user units.
GAP = 8
#: At most one axis label per this many user units: a few ticks, never a crowd.
TICK_SPACING = 70


@dataclass(frozen=True)
class TimelineItem:
    """One job on the timeline: what it is, when it is (or was) due, and its state."""

    label: str
    due: datetime
    state: str


def cumulative(times: Iterable[datetime]) -> list[tuple[datetime, int]]:
    """Signup times -> [(time, signups so far)], in time order."""
    return [(moment, n) for n, moment in enumerate(sorted(times), start=1)]


def cumulative_bins(bins: Iterable[tuple[datetime, datetime, int]]) -> list[tuple[datetime, int]]:
    """Signups counted in bins [(first, last, how many)], in time order -> [(time, signups so far)].

    A bin's signups are added at its first one, and the line ends at the last signup of all: the chart
    has a step per bin however many signups there are, and starts and ends where they do.
    """
    points: list[tuple[datetime, int]] = []
    total, latest = 0, None
    for first, last, n in bins:
        total += n
        points.append((first, total))
        latest = last
    if points and latest > points[-1][0]:
        points.append((latest, total))
    return points


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that is at least value (and at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** int(math.floor(math.log10(value)))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def time_ticks(start: datetime, end: datetime, zone: str, max_ticks: int = MAX_TICKS) -> list[tuple[datetime, str]]:
    """Round local times between start and end, labelled "09:00" or "3 Dec" depending on the span."""
    tz = ZoneInfo(zone)
    max_ticks = max(max_ticks, 2)
    span = max(end - start, timedelta(minutes=1))
    longest = TICK_STEPS[-1] * math.ceil(span / TICK_STEPS[-1] / max_ticks)
    step = next((s for s in TICK_STEPS if span / s <= max_ticks), longest)
    local = start.astimezone(tz).replace(tzinfo=None)
    if step >= timedelta(days=1):
        tick = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        minutes = int(step.total_seconds() // 60)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        tick = midnight + timedelta(minutes=(local - midnight).total_seconds() // 60 // minutes * minutes)
    ticks = []
    while len(ticks) < max_ticks * 3:
        moment = tick.replace(tzinfo=tz).astimezone(UTC)
        if moment > end:
            break
        if moment >= start:
            # Midnight shows the date, so a span across days says which day each stretch is.
            by_day = step >= timedelta(days=1) or (tick.hour, tick.minute) == (0, 0)
            label = format_day_month(tick) if by_day else f"{tick:%H:%M}"
            ticks.append((moment, label))
        tick += step
    return ticks


def text_width(label: str, size: float = FONT_SIZE) -> float:
    """The width a label takes, estimated on the wide side."""
    return round(len(label) * size * GLYPH, 1)


def _rows(spans: Sequence[tuple[float, float]], gap: float = GAP) -> list[int]:
    """For labels spanning (left, right), the first row (0, 1, ...) where each clears the others by `gap`."""
    ends: list[float] = []  # right edge of the last label put in each row
    rows = [0] * len(spans)
    for i in sorted(range(len(spans)), key=lambda i: spans[i][0]):
        left, right = spans[i]
        row = next((r for r, end in enumerate(ends) if end + gap <= left), len(ends))
        if row == len(ends):
            ends.append(right)
        else:
            ends[row] = right
        rows[i] = row
    return rows


def _centred(x: float, label: str, low: float, high: float) -> float:
    """The centre of a label over x, moved inward so that it stays between low and high."""
    half = text_width(label) / 2
    return round(min(max(x, low + half), high - half), 1)


def _axis(ticks: Sequence[tuple[float, str]], y: float, low: float, high: float) -> list[str]:
    """Labels centred under their ticks, kept inside low..high; one that would touch the last shown is left out."""
    out, last_right = [], -math.inf
    for x, label in ticks:
        centre = _centred(x, label, low, high)
        half = text_width(label) / 2
        if centre - half < last_right + GAP:
            continue
        last_right = centre + half
        out.append(f'<text class="tick" x="{centre}" y="{y}" text-anchor="middle" fill="{MUTED}">{escape(label)}</text>')
    return out


def _open_svg(width: int, height: int, title: str, desc: str, css_class: str) -> list[str]:
    # Ids come from the content, so the output is a function of the data and two charts never clash.
    n = hashlib.sha256(f"{title}\n{desc}".encode()).hexdigest()[:10]
    title_id, desc_id = f"{css_class}-title-{n}", f"{css_class}-desc-{n}"
    # No width or height: the picture takes the width of its box and keeps its proportions.
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" aria-describedby="{desc_id}" '
        f'font-family="system-ui, sans-serif" font-size="{FONT_SIZE}">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(desc)}</desc>',
    ]


def _when(moment: datetime, zone: str) -> str:
    """"1 Dec 2026 09:00 UTC", month in the current language."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{format_day_month(local, year=True)} {local:%H:%M} {local.tzname()}"


def _steps(points: Sequence[tuple[datetime, int]], x, y, start: datetime, end: datetime) -> str:
    line = [f"M{x(start)},{y(0)}"]
    for moment, value in points:
        line.append(f"H{x(moment)}V{y(value)}")
    line.append(f"H{x(end)}")
    return "".join(line)


def signups_svg(points: Sequence[tuple[datetime, int]], *, confirmed: Sequence[tuple[datetime, int]] | None = None,
                zone: str = "UTC", start: datetime | None = None, end: datetime | None = None,
                title: str = "Signups over time", width: int = 360, height: int = 190) -> str:
    """A step chart of cumulative signups [(time, total so far)] between start and end, as an SVG string.

    With `confirmed` (when each of the confirmed got their seat), `points` are everyone still
    registered, drawn as a shaded area, and the confirmed are a line over it.
    """
    points = sorted(points)
    split = confirmed is not None
    confirmed = sorted(confirmed or [])
    if not points:
        out = _open_svg(width, 60, title, gettext("No signups yet."), "chart-signups")
        out.append(f'<text x="{width // 2}" y="34" text-anchor="middle" fill="{MUTED}">{escape(gettext("No signups yet"))}</text>')
        return "\n".join(out + ["</svg>"])
    moments = [moment for moment, _ in points + confirmed]
    start = min([start or points[0][0]] + moments)
    end = max([end or points[-1][0]] + moments)
    if end <= start:
        end = start + timedelta(hours=1)
    total = points[-1][1]
    top = nice_ceiling(max(n for _, n in points))
    levels = sorted({0, top // 2, top})
    left = round(8 + max(text_width(str(v)) for v in levels) + 6, 1)
    right, upper, lower = 12, 12, 28
    plot_w, plot_h = width - left - right, height - upper - lower

    def x(moment: datetime) -> float:
        return round(left + plot_w * ((moment - start) / (end - start)), 1)

    def y(value: int) -> float:
        return round(upper + plot_h * (1 - value / top), 1)

    confirmed_total = confirmed[-1][1] if confirmed else 0
    counted = (gettext(" (%(num)s of them confirmed; cancelled and expired signups are not counted)", num=confirmed_total)
               if split else "")
    desc = ngettext("%(num)d signup between %(start)s and %(end)s%(counted)s; the first at %(first)s, the latest "
                    "at %(last)s.", "%(num)d signups between %(start)s and %(end)s%(counted)s; the first at "
                    "%(first)s, the latest at %(last)s.", total, start=_when(start, zone), end=_when(end, zone),
                    counted=counted, first=_when(points[0][0], zone), last=_when(points[-1][0], zone))
    out = _open_svg(width, height, title, desc, "chart-signups")
    for value in levels:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value)}" y2="{y(value)}" stroke="{LINE}"/>')
        out.append(f'<text x="{round(left - 6, 1)}" y="{y(value) + 4}" text-anchor="end" fill="{MUTED}">{value}</text>')
    path = _steps(points, x, y, start, end)
    out.append(f'<path d="{path}V{y(0)}Z" fill="{FILL}" stroke="none"/>')
    if split:
        out.append(f'<path class="line-registered" d="{path}" fill="none" stroke="{REGISTERED}" stroke-width="1.5"/>')
        out.append(f'<circle class="end-registered" cx="{x(points[-1][0])}" cy="{y(total)}" r="3" '
                   f'fill="{REGISTERED}" data-count="{total}"/>')
        line = _steps(confirmed, x, y, start, end)
        out.append(f'<path class="line-confirmed" d="{line}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
        last = confirmed[-1][0] if confirmed else end
        out.append(f'<circle class="end-confirmed" cx="{x(last)}" cy="{y(confirmed_total)}" r="4" '
                   f'fill="{ACCENT}" data-count="{confirmed_total}"/>')
    else:
        out.append(f'<path d="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
        out.append(f'<circle cx="{x(points[-1][0])}" cy="{y(total)}" r="4" fill="{ACCENT}" data-count="{total}"/>')
    # The time axis: a baseline, tick marks, and a few labels that never touch.
    out.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{y(0)}" y2="{y(0)}" stroke="{MUTED}"/>')
    ticks = [(x(moment), label) for moment, label in time_ticks(start, end, zone, int(plot_w // TICK_SPACING))]
    for tick_x, _ in ticks:
        out.append(f'<line x1="{tick_x}" x2="{tick_x}" y1="{y(0)}" y2="{y(0) + 4}" stroke="{MUTED}"/>')
    out.extend(_axis(ticks, height - 8, 0, width))
    return "\n".join(out + ["</svg>"])


def timeline_svg(items: Sequence[TimelineItem], *, starts_at: datetime, ends_at: datetime, now: datetime,
                 zone: str = "UTC", title: str = "Jobs timeline", width: int = 360) -> str:
    """One row per job, its label over a dot at its due time; the event itself as a band, and a line at now."""
    items = sorted(items, key=lambda i: i.due)
    moments = [i.due for i in items] + [starts_at, ends_at, now]
    start, end = min(moments), max(moments)
    pad = max((end - start) * 0.04, timedelta(minutes=5))
    start, end = start - pad, end + pad
    left, right, row_h, line_h = 12, 12, 36, 15
    plot_w = width - left - right

    def x(moment: datetime) -> float:
        return round(left + plot_w * ((moment - start) / (end - start)), 1)

    # "Event" over its band and "now" over its line; when they would touch, one moves up a line.
    markers = [(gettext("Event"), (x(starts_at) + x(ends_at)) / 2, ' font-weight="600"'), (gettext("now"), x(now), "")]
    placed = [(label, _centred(mx, label, 0, width), weight) for label, mx, weight in markers]
    marker_rows = _rows([(c - text_width(label) / 2, c + text_width(label) / 2) for label, c, _ in placed])
    upper = 10 + line_h * (max(marker_rows) + 1)
    axis_y = upper + row_h * max(len(items), 1) + 4
    height = axis_y + 24

    states = ", ".join(gettext("%(label)s: %(state)s, due %(when)s", label=i.label, state=i.state, when=_when(i.due, zone))
                       for i in items) or gettext("no jobs planned")
    desc = gettext("Event from %(start)s to %(end)s. %(states)s.", start=_when(starts_at, zone), end=_when(ends_at, zone),
             states=states)
    out = _open_svg(width, height, title, desc, "chart-timeline")
    out.append(f'<rect x="{x(starts_at)}" y="{upper - 4}" width="{max(x(ends_at) - x(starts_at), 2)}" '
               f'height="{axis_y - upper + 4}" fill="{FILL}"/>')
    out.append(f'<line x1="{x(now)}" x2="{x(now)}" y1="{upper - 4}" y2="{axis_y}" stroke="{INK}" '
               f'stroke-dasharray="4 3"/>')
    for (label, centre, weight), row in zip(placed, marker_rows, strict=True):
        out.append(f'<text class="marker" x="{centre}" y="{upper - 8 - line_h * row}" text-anchor="middle" '
                   f'fill="{INK}"{weight}>{escape(label)}</text>')
    for row, item in enumerate(items):
        top = upper + row_h * row
        cy = top + 25
        colour = STATE_COLOURS.get(item.state, MUTED)
        hollow = item.state in ("planned", "cancelled")
        label = f"{item.label} · {item.state}"
        # A label wider than the picture is squeezed to fit rather than cut off.
        fit = f' textLength="{plot_w}" lengthAdjust="spacingAndGlyphs"' if text_width(label) > plot_w else ""
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{cy}" y2="{cy}" stroke="{LINE}"/>')
        # The white outline keeps the label readable where it crosses the event band or the now line.
        out.append(f'<text class="job-label" x="{left}" y="{top + 12}" fill="{INK}" stroke="#fff" stroke-width="3" '
                   f'stroke-linejoin="round" paint-order="stroke"{fit}>{escape(item.label)} '
                   f'<tspan fill="{MUTED}">· {escape(item.state)}</tspan></text>')
        out.append(f'<circle class="job-dot job-{escape(item.state)}" cx="{x(item.due)}" cy="{cy}" r="6" '
                   f'fill="{"#fff" if hollow else colour}" stroke="{colour}" stroke-width="2" '
                   f'data-due="{item.due.astimezone(UTC).isoformat()}"><title>{escape(item.label)} · '
                   f'{escape(item.state)} · {escape(_when(item.due, zone))}</title></circle>')
    out.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{axis_y}" y2="{axis_y}" stroke="{MUTED}"/>')
    ticks = [(x(moment), label) for moment, label in time_ticks(start, end, zone, int(plot_w // TICK_SPACING))]
    for tick_x, _ in ticks:
        out.append(f'<line x1="{tick_x}" x2="{tick_x}" y1="{axis_y}" y2="{axis_y + 4}" stroke="{MUTED}"/>')
    out.extend(_axis(ticks, axis_y + 17, 0, width))
    return "\n".join(out + ["</svg>"])
