"""Which language a request is answered in: the visitor's choice (a cookie), else Accept-Language.

The choice is made on every page (base.html's language menu, a GET form: cached public pages carry
no per-visitor token) and kept a year in the `lang` cookie.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel import Locale
from flask import Blueprint, Flask, Response, has_request_context, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from ..extensions import sent_cookie
from ..languages import DEFAULT, LANGUAGES, from_accept_header
from ..timefmt import bcp47, current_locale
from ..urls import local_path

COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 86400

bp = Blueprint("locale", __name__)


def select_locale() -> str | Locale:
    if not has_request_context():  # a job or a command: mail says its own language (force_locale)
        return DEFAULT
    # Accept-Language from the WSGI environ: a missing header costs no KeyError (a feed poll sends none).
    return _chosen(sent_cookie(request, COOKIE), request.environ.get("HTTP_ACCEPT_LANGUAGE", ""))


def request_language() -> str:
    """The request's language code, as Flask-Babel's get_locale() will give it, asked of the selector itself.

    For a cache key on a path that translates nothing (a feed poll answered from memory): Flask-Babel's
    per-request bookkeeping around the same answer cost that poll several times the lookup.
    """
    return str(select_locale())


@lru_cache(maxsize=256)
def _chosen(cookie: str, accept_language: str) -> Locale:
    """The cookie's language, else the best of Accept-Language: the same few header values come again and
    again, so each is parsed once (a feed poll answered from memory spent a tenth of its time here)."""
    if cookie in LANGUAGES:
        return Locale.parse(cookie)
    return Locale.parse(from_accept_header(parse_accept_header(accept_language, LanguageAccept)) or DEFAULT)


def safe_next(target: str | None) -> str:
    """Where the language menu goes back to: a path on this site, else the home page."""
    return local_path(target, url_for("public.index"))


def remember(response: Response, code: str) -> Response:
    """Keep the language chosen in the cookie the next requests are answered by."""
    response.set_cookie(COOKIE, code, max_age=COOKIE_MAX_AGE, samesite="Lax", secure=request.is_secure,
                        httponly=True)
    return response


@bp.get("/language")
def choose():
    """Set the visitor's language and go back to the page they were on; an unknown code changes nothing."""
    code = request.args.get("lang", "")
    response = redirect(safe_next(request.args.get("next")), code=303)
    if code in LANGUAGES:
        remember(response, code)
    # The answer depends on the query only; never stored by a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def board_words() -> dict[str, str]:
    """What board.js writes on the page itself, in the page's language."""
    return {"vote": ngettext("vote", "votes", 1), "votes": ngettext("vote", "votes", 2), "merged": _("Merged"),
            "merged_into": _("Merged into #%(id)s", id="{id}"), "counted": _("Your vote is counted."),
            "taken_back": _("Your vote is taken back."), "failed": _("That did not work. Reload and try again."),
            "offline": _("That did not work. Check your connection and try again.")}


def language_context() -> dict:
    """For every template: the languages, the current one, and the page's lang attribute."""
    code = current_locale()
    # The path without its query: a cached page must not carry one visitor's query string to the next.
    here = request.path if has_request_context() else "/"
    return {"languages": LANGUAGES, "current_language": code, "html_lang": bcp47(code), "here_path": here,
            "board_words": board_words}


def vary_on_language(response: Response) -> Response:
    """Pages and the API's messages depend on the cookie and Accept-Language: say so to every cache.

    A 304 is left as its view made it: it carries the Vary of the 200 it confirms (RFC 9110 15.4.5).
    """
    if response.status_code != 304 and response.mimetype in ("text/html", "application/json", "text/plain"):
        response.vary.update(("Accept-Language", "Cookie"))
    return response


def init_app(app: Flask) -> None:
    from flask_babel import Babel

    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(Path(__file__).resolve().parents[1] / "translations"))
    Babel(app, locale_selector=select_locale)
    app.register_blueprint(bp)
    app.context_processor(language_context)
    app.after_request(vary_on_language)
