"""Pure helpers: offsets, Markdown sanitising, CSV cells, slugs, time formatting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.domain.offsets import format_offsets, parse_offsets
from scheduler.errors import InvalidInput
from scheduler.text import csv_cell, one_line, render_markdown, slugify
from scheduler.timefmt import format_range


def test_offsets_parse_sorted_unique():
    assert parse_offsets("1h, 7d,10m, 1d, 1h") == [604800, 86400, 3600, 600]
    assert format_offsets([604800, 86400, 3600, 600]) == "1w, 1d, 1h, 10m"
    assert parse_offsets("") == []


@pytest.mark.parametrize("bad", ["soon", "0m", "-1h", "1y", "99999d", "1.5h"])
def test_offsets_reject_bad(bad):
    with pytest.raises(InvalidInput):
        parse_offsets(bad)


def test_markdown_strips_scripts_and_handlers():
    html = render_markdown('<script>x()</script><img src=a onerror=alert(1)> [a](javascript:evil()) *ok*')
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert "<em>ok</em>" in html


def test_csv_cells_neutralise_formulas():
    assert [csv_cell(v) for v in ["=1+1", "+x", "-2", "@SUM(A1)", "plain", None]] == [
        "'=1+1", "'+x", "'-2", "'@SUM(A1)", "plain", ""]


def test_one_line_removes_crlf_and_controls():
    assert one_line("Evil\r\nBcc: x@y\x00\u202e") == "Evil Bcc: x@y"


def test_slugify():
    assert slugify("PyTorch: A Foundation for Open Source AI/ML") == "pytorch-a-foundation-for-open-source-ai-ml"
    assert slugify("¡¡¡") == "event"


def test_range_names_zone_and_handles_dst():
    start = datetime(2026, 3, 8, 17, 0, tzinfo=UTC)  # after the US switch to PDT that morning
    assert format_range(start, start.replace(hour=18), "America/Los_Angeles") == \
        "Sunday 8 March 2026, 10:00–11:00 PDT (America/Los_Angeles)"
