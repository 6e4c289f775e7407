"""Absolute URLs built from BASE_URL, usable in mail, feeds and jobs without a request."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, has_request_context, request, url_for

from .tokens import manage_token


def external_url(endpoint: str, **values) -> str:
    """Like url_for(_external=True), but based on BASE_URL so it works outside requests too."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http")
    return adapter.build(endpoint, values, force_external=True)


def event_url(event) -> str:
    """The public page of an event."""
    return external_url("public.event", slug=event.slug)


def registration_url(endpoint: str, registration) -> str:
    """signup.manage, .confirm or .unsubscribe of one registration, with its private token."""
    return external_url(endpoint, token=manage_token(current_app.config["SECRET_KEY"], registration))


def webcal_url(url: str) -> str:
    """The same feed address with webcal:// so calendar apps offer to subscribe."""
    return "webcal://" + url.split("://", 1)[1]


def fixed_url(endpoint: str, **values) -> str:
    """url_for for a link that is the same on every request (the layout's menu, static files):
    built once per app and script root instead of on every page."""
    if not has_request_context() or endpoint.startswith(".") or any(name.startswith("_") for name in values):
        return url_for(endpoint, **values)  # depends on more than the script root: the blueprint, host or scheme
    cache = current_app.extensions.setdefault("townhall.fixed_urls", {})
    key = (request.script_root, endpoint, *sorted(values.items()))
    url = cache.get(key)
    if url is None:
        url = cache[key] = url_for(endpoint, **values)
    return url
