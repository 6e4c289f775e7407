"""Public pages rendered once per version of what they show, and served from Flask-Caching.

A page's key holds the versions it depends on (`Event.version` of each event it shows, which
every write raises in its own transaction, see models/events.py), read by one small query that
freshness.py keeps for at most PAGE_CHECK_SECONDS per process. So every worker and machine agrees
on what is current, and a change shows on the next request to each page it affects, and only there.

What differs between visitors is never stored: the page is rendered with holes where the
organiser's menu and the flashed messages go. A visitor who has neither (almost everyone) gets the
stored bytes, gzip-compressed once, with an ETag per encoding and 304s; anyone else gets the holes
filled for them on every request.
"""

from __future__ import annotations

import hashlib
from collections import namedtuple
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from flask import (
    Response,
    current_app,
    get_flashed_messages,
    get_template_attribute,
    request,
)
from flask_login import current_user
from markupsafe import Markup

from ..extensions import cache
from ..timefmt import current_locale
from . import freshness
from .compression import accepts_gzip, encoded_etag, gzip_bytes

Holes = namedtuple("Holes", "menu flashes")
#: Written where base.html would put the per-visitor parts; nothing a visitor writes can contain them
#: (text is escaped, and the description's HTML is cleaned of comments).
HOLES = Holes(Markup("<!--townhall:organiser-menu-->"), Markup("<!--townhall:flashes-->"))
VISITOR_PARTS = "events/_visitor.html"
CONTENT_TYPE = "text/html; charset=utf-8"


def versions(key: tuple, compute: Callable):
    """compute()'s answer (ids and versions, say) for a page, re-read at most every PAGE_CHECK_SECONDS."""
    return freshness.fresh(("page", *key), compute, seconds=float(current_app.config["PAGE_CHECK_SECONDS"]))


def serve(key: tuple, render: Callable[..., str]) -> Response:
    """The page for `key` (everything its content depends on); render(holes=HOLES) runs only on a miss."""
    stored_key = _stored_key(key)
    stored = cache.get(stored_key)
    if stored is None:
        holed = render(holes=HOLES).encode()
        plain = _fill(holed, b"", b"")
        stored = (holed, gzip_bytes(plain), '"' + hashlib.sha256(plain).hexdigest()[:32] + '"')
        cache.set(stored_key, stored)
    holed, gzipped, etag = stored
    if _personal():
        # Rendered for this visitor alone: compressed (with padding) by the after_request hook, no ETag.
        menu, flashes = (get_template_attribute(VISITOR_PARTS, name)() for name in ("organiser_menu", "flashes"))
        return _response(_fill(holed, menu.encode(), flashes.encode()), no_store=True)
    encoding = "gzip" if accepts_gzip() else None
    etag = encoded_etag(etag, encoding)
    if _client_has(etag):
        return _response(b"", status=304, etag=etag)
    if encoding:
        return _response(gzipped, etag=etag, encoding=encoding)
    return _response(_fill(holed, b"", b""), etag=etag)


def _personal() -> bool:
    """The visitor has messages waiting or is a signed-in organiser (reading the messages keeps them for the page)."""
    return bool(get_flashed_messages()) or current_user.is_authenticated


def _fill(holed: bytes, menu: bytes, flashes: bytes) -> bytes:
    # The layout's holes come before any content, so the first of each is the layout's.
    return holed.replace(HOLES.menu.encode(), menu, 1).replace(HOLES.flashes.encode(), flashes, 1)


def _client_has(etag: str) -> bool:
    match = request.headers.get("If-None-Match")
    if not match:
        return False
    return match.strip() == "*" or etag in [tag.strip().removeprefix("W/") for tag in match.split(",")]


def _response(body: bytes, *, status: int = 200, etag: str | None = None, encoding: str | None = None,
              no_store: bool = False) -> Response:
    response = Response(body, status=status, content_type=CONTENT_TYPE)
    response.vary.add("Accept-Encoding")
    # The language comes from the cookie, else Accept-Language: a copy kept for one must not go to another.
    response.vary.update(("Accept-Language", "Cookie"))
    # Browsers ask again every time (with the ETag: a 304 costs little); a personal page is kept nowhere.
    response.headers["Cache-Control"] = "private, no-store" if no_store else "no-cache"
    if etag:
        response.headers["ETag"] = etag
    if encoding:
        response.headers["Content-Encoding"] = encoding
    return response


def _stored_key(key: tuple) -> str:
    """Short and the same in every process: the page's key, plus what else shapes the HTML."""
    parts = (release(), current_app.config["BASE_URL"], request.script_root, current_locale(), *key)
    return "page:" + hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def release() -> str:
    """A fingerprint of the templates and code: after a deploy, pages rendered by the old ones are not served."""
    return _fingerprint(current_app.root_path, current_app.template_folder)


@lru_cache(maxsize=8)
def _fingerprint(root: str, templates: str) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for folder, pattern in ((Path(root, templates), "*.html"), (Path(__file__).resolve().parent.parent, "*.py"),
                            (Path(__file__).resolve().parent.parent / "translations", "*.mo")):
        for path in sorted(folder.rglob(pattern)):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
