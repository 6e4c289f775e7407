"""gzip for clients that accept it: stored once for cached pages and feeds, per response for the rest.

Bytes built once (a feed, a cached page) are compressed once, deterministically, and served as
they are; the after_request hook compresses what views build per request (personal pages, the
JSON API, the admin). Every compressible response says `Vary: Accept-Encoding`, and a compressed
one carries its own ETag, so a cache never hands gzip to a client that did not ask for it.
"""

from __future__ import annotations

import gzip
import secrets

from flask import Response, request

#: Types worth compressing (text of some kind); images, archives and the like are compressed already.
COMPRESSIBLE = ("text/", "application/json", "application/javascript", "application/xml", "image/svg+xml")
#: Below this, gzip's header costs more than it saves.
MIN_SIZE = 512
#: Level 6: most of level 9's size at a third of its time (a 1,000-event feed: 4 ms against 14).
LEVEL = 6
#: Up to this many random bytes in the gzip header of a response built per request (see compress_response).
MAX_PADDING = 100


def accepts_gzip() -> bool:
    """The client's Accept-Encoding allows gzip (q > 0, by name or by *)."""
    header = request.headers.get("Accept-Encoding")
    if not header:
        return False
    if "q=" not in header:  # no weights (what browsers send): named or * means accepted
        return "gzip" in header or "*" in header
    return request.accept_encodings["gzip"] > 0


def gzip_bytes(data: bytes) -> bytes:
    """The same bytes every time (no timestamp), so the stored copy and its ETag are stable."""
    return gzip.compress(data, compresslevel=LEVEL, mtime=0)


def encoded_etag(etag: str, encoding: str | None) -> str:
    """The ETag of one encoding of a representation: '"abc"' -> '"abc-gzip"' (weakness kept)."""
    if not encoding:
        return etag
    return etag[:-1] + f'-{encoding}"'


def compressible(response: Response) -> bool:
    return response.mimetype.startswith(COMPRESSIBLE)


def compress_response(response: Response) -> Response:
    """after_request: gzip a response built for this request when the client accepts it.

    A page built per request may hold a secret (a CSRF token, a manage link) beside text a visitor
    chose, which is what BREACH guesses at through compressed sizes: a random number of filler bytes
    in the gzip header (as Django does, "Heal the BREACH") makes the sizes useless for that.
    Streamed responses (the CSV export) and files stay as they are.
    """
    if (response.status_code < 200 or response.status_code in (204, 206, 304) or response.direct_passthrough
            or response.is_streamed or "Content-Encoding" in response.headers or not compressible(response)):
        return response
    response.vary.add("Accept-Encoding")
    if not accepts_gzip():
        return response
    data = response.get_data()
    if len(data) < MIN_SIZE:
        return response
    response.set_data(_padded(gzip_bytes(data)))
    response.headers["Content-Encoding"] = "gzip"
    etag = response.headers.get("ETag")
    if etag:  # the padding changes the bytes: at most a weak validator
        response.headers["ETag"] = "W/" + encoded_etag(etag.removeprefix("W/"), "gzip")
    return response


def _padded(compressed: bytes) -> bytes:
    # The gzip header's optional file name (FNAME, RFC 1952), which decoders skip: random length.
    header = bytearray(compressed[:10])
    header[3] |= gzip.FNAME
    return bytes(header) + b"a" * secrets.randbelow(MAX_PADDING + 1) + b"\0" + compressed[10:]
