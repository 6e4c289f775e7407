"""URL converters: what a path may carry before a view sees it.

They replace Werkzeug's `default` (`<slug>`, `<token>`) and `int` converters for every route, so a value
no column can hold (a NUL byte PostgreSQL refuses, an id past the integer column's range) matches no
route and is a 404, without a check in each view.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import BaseConverter, IntegerConverter

from ..models import MAX_ID


def row_id(text: str) -> int | None:
    """The id written in `text` (plain ASCII digits) if a row can have it, else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


class RowIdConverter(IntegerConverter):
    """`<int:...>`: a row id, 0 to MAX_ID."""

    def __init__(self, map, **kwargs) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, **kwargs)


class TextConverter(BaseConverter):
    """`<name>`: one path segment without control characters."""

    regex = r"[^/\x00-\x1f\x7f]+"


def init_app(app: Flask) -> None:
    """Use these converters for the routes registered after this call."""
    app.url_map.converters.update(default=TextConverter, string=TextConverter, int=RowIdConverter)
