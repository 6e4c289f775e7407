"""Text hygiene: Markdown to safe HTML, control characters, CSV cells, slugs; plural nouns."""

from __future__ import annotations

import re
import unicodedata

import markdown as md
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "h2", "h3", "h4", "hr", "i", "li", "ol", "p",
    "pre", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: What a spreadsheet reads as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def render_markdown(source: str) -> str:
    """Markdown to HTML with everything unsafe removed (scripts, handlers, javascript: links)."""
    html = md.markdown(source or "", extensions=["extra", "sane_lists"], output_format="html")
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, link_rel="noopener nofollow ugc",
                     url_schemes={"http", "https", "mailto"})


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """The noun that goes with a count: plural(1, "question") -> "question", plural(2, "question") -> "questions".

    English only, until translations come; the one place that decides singular or plural.
    """
    return singular if count == 1 else (plural_form or singular + "s")


def strip_controls(text: str, *, keep_newlines: bool = True) -> str:
    """Remove control and bidi-override characters; optionally fold newlines to spaces."""
    text = _CONTROL.sub("", text or "")
    if not keep_newlines:
        text = re.sub(r"[\r\n\t]+", " ", text)
    return text


def one_line(text: str) -> str:
    """A single safe line: for names in mail headers, subjects, filenames."""
    return " ".join(strip_controls(text, keep_newlines=False).split())


def csv_cell(value) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ (or tab/CR) gets a quote.

    The first character is read after NFKC, as a spreadsheet may read a fullwidth or small ＝ as =.
    """
    text = "" if value is None else str(value)
    if unicodedata.normalize("NFKC", text).startswith(FORMULA_STARTS):
        return "'" + text
    return text


def slugify(title: str, *, max_length: int = 80) -> str:
    """ASCII, lower-case, hyphenated; never empty."""
    text = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return text[:max_length].strip("-") or "event"
