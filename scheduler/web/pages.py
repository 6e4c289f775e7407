"""Query-string arguments of the organiser's lists: which page, and what to search for."""

from __future__ import annotations

import unicodedata

from flask import abort, request

from .converters import row_id

#: Longer searches are cut to this many characters (no name or address field is longer).
SEARCH_MAX = 320


def page_arg(name: str = "page") -> int:
    """The page number asked for, 1 when none is; anything but a page number is a 404."""
    text = request.args.get(name, "")
    if text == "":
        return 1
    number = row_id(text)
    if number is None:
        abort(404)
    return number


def search_arg(name: str = "q") -> str:
    """The search text, trimmed, without control characters (PostgreSQL refuses a NUL) and not too long."""
    text = "".join(ch for ch in request.args.get(name, "") if unicodedata.category(ch) != "Cc")
    return text.strip()[:SEARCH_MAX]
