"""Pictures for the admin, rendered on the server as inline SVG: signups over time, the jobs timeline."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import escape

# Tick spacings an axis may use, smallest first; the first giving at most MAX_TICKS wins.
TICK_STEPS = [timedelta(minutes=m) for m in (10, 30)] + [timedelta(hours=h) for h in (1, 3, 6, 12)] + [
    timedelta(days=d) for d in (1, 2, 7, 14, 28)]
MAX_TICKS = 7
INK, MUTED, LINE, ACCENT, FILL = "#1c1d21", "#5b5f6b", "#d9dbe1", "#3548c8", "#dfe3fa"
STATE_COLOURS = {"planned": ACCENT, "running": "#8a5a00", "done": "#1d6b3a", "skipped": "#8a5a00",
                 "cancelled": "#8a8f9c"}


@dataclass(frozen=True)
class TimelineItem:
    """One job on the timeline: what it is, when it is (or was) due, and its state."""

    label: str
    due: datetime
    state: str


def cumulative(times: Iterable[datetime]) -> list[tuple[datetime, int]]:
    """Signup times -> [(time, signups so far)], in time order."""
    return [(moment, n) for n, moment in enumerate(sorted(times), start=1)]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that is at least value (and at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** int(math.floor(math.log10(value)))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def time_ticks(start: datetime, end: datetime, zone: str) -> list[tuple[datetime, str]]:
    """Round local times between start and end, labelled "09:00" or "3 Dec" depending on the span."""
    tz = ZoneInfo(zone)
    span = max(end - start, timedelta(minutes=1))
    longest = TICK_STEPS[-1] * math.ceil(span / TICK_STEPS[-1] / MAX_TICKS)
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), longest)
    local = start.astimezone(tz).replace(tzinfo=None)
    if step >= timedelta(days=1):
        tick = local.replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        minutes = int(step.total_seconds() // 60)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        tick = midnight + timedelta(minutes=(local - midnight).total_seconds() // 60 // minutes * minutes)
    ticks = []
    while len(ticks) < MAX_TICKS * 3:
        moment = tick.replace(tzinfo=tz).astimezone(UTC)
        if moment > end:
            break
        if moment >= start:
            # Midnight shows the date, so a span across days says which day each stretch is.
            by_day = step >= timedelta(days=1) or (tick.hour, tick.minute) == (0, 0)
            label = f"{tick.day} {tick:%b}" if by_day else f"{tick:%H:%M}"
            ticks.append((moment, label))
        tick += step
    return ticks


def _open_svg(width: int, height: int, title: str, desc: str, css_class: str) -> list[str]:
    # Ids come from the content, so the output is a function of the data and two charts never clash.
    n = hashlib.sha256(f"{title}\n{desc}".encode()).hexdigest()[:10]
    title_id, desc_id = f"{css_class}-title-{n}", f"{css_class}-desc-{n}"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'aria-describedby="{desc_id}" font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(desc)}</desc>',
    ]


def _tick_label(x: float, y: float, label: str, left: float, right: float) -> str:
    """An axis label centred under its tick, but never hanging out of the picture at either end."""
    anchor = "start" if x - left < 20 else "end" if right - x < 20 else "middle"
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" fill="{MUTED}">{escape(label)}</text>'


def _when(moment: datetime, zone: str) -> str:
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local.day} {local:%b %Y %H:%M} {local.tzname()}"


def signups_svg(points: Sequence[tuple[datetime, int]], *, zone: str = "UTC", start: datetime | None = None,
                end: datetime | None = None, title: str = "Signups over time", width: int = 640,
                height: int = 220) -> str:
    """A step chart of cumulative signups [(time, total so far)] between start and end, as an SVG string."""
    points = sorted(points)
    if not points:
        out = _open_svg(width, 60, title, "No signups yet.", "chart-signups")
        out.append(f'<text x="{width // 2}" y="34" text-anchor="middle" fill="{MUTED}">No signups yet</text>')
        return "\n".join(out + ["</svg>"])
    start = min(start or points[0][0], points[0][0])
    end = max(end or points[-1][0], points[-1][0])
    if end <= start:
        end = start + timedelta(hours=1)
    total = points[-1][1]
    top = nice_ceiling(max(n for _, n in points))
    left, right, upper, lower = 44, 16, 14, 30
    plot_w, plot_h = width - left - right, height - upper - lower

    def x(moment: datetime) -> float:
        return round(left + plot_w * ((moment - start) / (end - start)), 1)

    def y(value: int) -> float:
        return round(upper + plot_h * (1 - value / top), 1)

    desc = (f"{total} signup{'s' if total != 1 else ''} between {_when(start, zone)} and {_when(end, zone)}; "
            f"the first at {_when(points[0][0], zone)}, the latest at {_when(points[-1][0], zone)}.")
    out = _open_svg(width, height, title, desc, "chart-signups")
    for value in sorted({0, top // 2, top}):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value)}" y2="{y(value)}" stroke="{LINE}"/>')
        out.append(f'<text x="{left - 6}" y="{y(value) + 4}" text-anchor="end" fill="{MUTED}">{value}</text>')
    for moment, label in time_ticks(start, end, zone):
        out.append(f'<line x1="{x(moment)}" x2="{x(moment)}" y1="{y(0)}" y2="{y(0) + 4}" stroke="{MUTED}"/>')
        out.append(_tick_label(x(moment), height - 10, label, left, width - right))
    line = [f"M{x(start)},{y(0)}"]
    for moment, value in points:
        line.append(f"H{x(moment)}V{y(value)}")
    line.append(f"H{x(end)}")
    path = "".join(line)
    out.append(f'<path d="{path}V{y(0)}Z" fill="{FILL}" stroke="none"/>')
    out.append(f'<path d="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    out.append(f'<circle cx="{x(points[-1][0])}" cy="{y(total)}" r="4" fill="{ACCENT}"/>')
    return "\n".join(out + ["</svg>"])


def timeline_svg(items: Sequence[TimelineItem], *, starts_at: datetime, ends_at: datetime, now: datetime,
                 zone: str = "UTC", title: str = "Jobs timeline", width: int = 720) -> str:
    """One row per job with a dot at its due time, the event itself as a band, and a line at now."""
    items = sorted(items, key=lambda i: i.due)
    moments = [i.due for i in items] + [starts_at, ends_at, now]
    start, end = min(moments), max(moments)
    pad = max((end - start) * 0.04, timedelta(minutes=5))
    start, end = start - pad, end + pad
    left, right, row_h, upper = 250, 16, 26, 24
    height = upper + row_h * max(len(items), 1) + 30
    plot_w = width - left - right
    axis_y = height - 26

    def x(moment: datetime) -> float:
        return round(left + plot_w * ((moment - start) / (end - start)), 1)

    states = ", ".join(f"{i.label}: {i.state}, due {_when(i.due, zone)}" for i in items) or "no jobs planned"
    desc = f"Event from {_when(starts_at, zone)} to {_when(ends_at, zone)}. {states}."
    out = _open_svg(width, height, title, desc, "chart-timeline")
    out.append(f'<rect x="{x(starts_at)}" y="{upper - 8}" width="{max(x(ends_at) - x(starts_at), 2)}" '
               f'height="{axis_y - upper + 8}" fill="{FILL}"/>')
    # "Event" sits over the middle of its band, kept inside the picture when the band is at an edge.
    label_x = min(max((x(starts_at) + x(ends_at)) / 2, left + 20), width - right - 20)
    out.append(f'<text x="{label_x}" y="{upper - 12}" text-anchor="middle" fill="{INK}" '
               f'font-weight="600">Event</text>')
    out.append(f'<line x1="{x(now)}" x2="{x(now)}" y1="{upper - 8}" y2="{axis_y}" stroke="{INK}" '
               f'stroke-dasharray="4 3"/>')
    out.append(f'<text x="{x(now)}" y="{upper - 12}" text-anchor="middle" fill="{INK}">now</text>')
    for row, item in enumerate(items):
        cy = upper + row_h * row + row_h // 2
        colour = STATE_COLOURS.get(item.state, MUTED)
        hollow = item.state in ("planned", "cancelled")
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{cy}" y2="{cy}" stroke="{LINE}"/>')
        out.append(f'<text x="{left - 8}" y="{cy + 4}" text-anchor="end" fill="{INK}">{escape(item.label)} '
                   f'<tspan fill="{MUTED}">· {escape(item.state)}</tspan></text>')
        out.append(f'<circle class="job-dot job-{escape(item.state)}" cx="{x(item.due)}" cy="{cy}" r="6" '
                   f'fill="{"#fff" if hollow else colour}" stroke="{colour}" stroke-width="2" '
                   f'data-due="{item.due.astimezone(UTC).isoformat()}"><title>{escape(item.label)} · '
                   f'{escape(item.state)} · {escape(_when(item.due, zone))}</title></circle>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{axis_y}" y2="{axis_y}" stroke="{MUTED}"/>')
    for moment, label in time_ticks(start, end, zone):
        out.append(_tick_label(x(moment), axis_y + 16, label, left, width - right))
    return "\n".join(out + ["</svg>"])
