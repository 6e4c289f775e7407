"""Absolute URLs built from BASE_URL, usable in mail, feeds and jobs without a request."""

from __future__ import annotations

from collections import namedtuple
from urllib.parse import urlsplit

from flask import current_app, request, url_for

from .domain import door
from .tokens import manage_token


def local_path(target: str | None, fallback: str) -> str:
    """A path on this site to go back to (a `next` parameter); anything else (another host, a scheme, `//` or
    `/\\`, which browsers read as another host) gives `fallback`."""
    target = (target or "").strip()
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith(("//", "/\\")) or parts.scheme or parts.netloc:
        return fallback
    return target


def external_url(endpoint: str, **values) -> str:
    """Like url_for(_external=True), but based on BASE_URL so it works outside requests too."""
    # One adapter per app and BASE_URL: a fan-out builds three links per recipient.
    adapters = current_app.extensions.setdefault("townhall.url_adapters", {})
    adapter = adapters.get(current_app.config["BASE_URL"])
    if adapter is None:
        base = urlsplit(current_app.config["BASE_URL"])
        adapter = adapters[current_app.config["BASE_URL"]] = current_app.url_map.bind(
            base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http")
    return adapter.build(endpoint, values, force_external=True)


def event_url(event) -> str:
    """The public page of an event."""
    return external_url("public.event", slug=event.slug)


def registration_url(endpoint: str, registration) -> str:
    """signup.manage, .confirm or .unsubscribe of one registration, with its private token."""
    return external_url(endpoint, token=manage_token(current_app.config["SECRET_KEY"], registration))


def door_url(registration) -> str:
    """A registrant's own join link on Townhall (domain/door.py): the only join link they are sent."""
    token = door.registrant_token(current_app.config["SECRET_KEY"], registration)
    return external_url("door.registrant", registration_id=registration.id, token=token)


def speaker_door_url(link) -> str:
    """A speaker's own join link to one event (`link` is their EventSpeaker row)."""
    token = door.speaker_token(current_app.config["SECRET_KEY"], link)
    return external_url("door.speaker", link_id=link.id, token=token)


def webcal_url(url: str) -> str:
    """The same feed address with webcal:// so calendar apps offer to subscribe."""
    return "webcal://" + url.split("://", 1)[1]


#: The layout's links on every page: the same for every request under one script root.
LayoutLinks = namedtuple("LayoutLinks", "style script icon index past")
_LAYOUT = LayoutLinks(style=("static", {"filename": "style.css"}), script=("static", {"filename": "local-time.js"}),
                      icon=("public.favicon", {}), index=("public.index", {}), past=("public.past", {}))


def layout_links() -> LayoutLinks:
    """The layout's stylesheet, script and menu links, built once per app and script root.

    One call per page instead of a url_for per link: a template function call costs Jinja more
    than the lookup itself.
    """
    cache = current_app.extensions.setdefault("townhall.layout_links", {})
    links = cache.get(request.script_root)
    if links is None:
        links = cache[request.script_root] = LayoutLinks(*(url_for(endpoint, **values) for endpoint, values in _LAYOUT))
    return links
