"""Text hygiene: Markdown sanitising, control characters, CSV cells, slugs."""

from __future__ import annotations

from scheduler.text import csv_cell, one_line, plural, render_markdown, slugify


def test_markdown_strips_scripts_and_handlers():
    html = render_markdown('<script>x()</script><img src=a onerror=alert(1)> [a](javascript:evil()) *ok*')
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert "<em>ok</em>" in html


def test_csv_cells_neutralise_formulas():
    assert [csv_cell(v) for v in ["=1+1", "+x", "-2", "@SUM(A1)", "plain", None]] == [
        "'=1+1", "'+x", "'-2", "'@SUM(A1)", "plain", ""]


def test_csv_cells_neutralise_fullwidth_and_small_formula_signs():
    signs = ["＝1+1", "＋x", "－2", "＠SUM(A1)", "﹦1", "﹢1", "﹣1", "﹫x"]
    assert [csv_cell(v) for v in signs] == ["'" + v for v in signs]
    assert [csv_cell(v) for v in ["ｐlain", "２＝2", "ⅰ"]] == ["ｐlain", "２＝2", "ⅰ"]


def test_one_line_removes_crlf_and_controls():
    assert one_line("Evil\r\nBcc: x@y\x00\u202e") == "Evil Bcc: x@y"


def test_slugify():
    assert slugify("PyTorch: A Foundation for Open Source AI/ML") == "pytorch-a-foundation-for-open-source-ai-ml"
    assert slugify("¡¡¡") == "event"


def test_plural_agrees_with_the_count():
    assert [plural(n, "question") for n in (0, 1, 2)] == ["questions", "question", "questions"]
    assert [plural(n, "person is", "people are") for n in (1, 2)] == ["person is", "people are"]
