"""Which language a request is answered in: the visitor's choice (a cookie), else Accept-Language."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request

from ..languages import DEFAULT, LANGUAGES, from_accept_header

COOKIE = "lang"


def select_locale() -> str:
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return from_accept_header(request.accept_languages) or DEFAULT


def init_app(app: Flask) -> None:
    from flask_babel import Babel

    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(Path(__file__).resolve().parents[1] / "translations"))
    Babel(app, locale_selector=select_locale)
