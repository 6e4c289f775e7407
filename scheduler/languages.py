"""The languages Townhall speaks: codes as Babel names them, English the source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT = "en"
#: Babel locale codes, in the order the language menu lists them.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
    "zh_Hans": "简体中文",
}
# Browsers send region tags; Simplified Chinese arrives as zh-CN, zh-SG or zh-Hans.
_ACCEPT = {"en": "en", "de": "de", "fr": "fr", "es": "es", "zh": "zh_Hans", "zh-cn": "zh_Hans",
           "zh-sg": "zh_Hans", "zh-hans": "zh_Hans"}


def from_accept_header(accept) -> str | None:
    """The best of our languages for a werkzeug LanguageAccept (or None when none fits)."""
    for tag, _quality in accept:
        tag = tag.lower()
        if tag in _ACCEPT:
            return _ACCEPT[tag]
        if tag.split("-")[0] in _ACCEPT and not tag.startswith("zh-"):
            return _ACCEPT[tag.split("-")[0]]
    return None


def known(code: str | None) -> str:
    """The code if Townhall speaks it, else the default."""
    return code if code in LANGUAGES else DEFAULT


@contextmanager
def speaking(code: str | None) -> Iterator[None]:
    """Render (mail, calendar text) in this language: Flask-Babel's force_locale with an unknown code as English."""
    from flask_babel import force_locale

    with force_locale(known(code)):
        yield
