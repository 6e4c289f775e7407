"""The application factory (scheduler.create_app): what every page's templates get, and the security headers
on every response (a CSP that no page needs inline code past, no-store on private pages, HSTS behind HTTPS)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from flask import render_template_string

from tests.support import registration, signup, token_for


def test_pages_still_get_request_session_g_and_csrf_helpers(app):
    with app.test_request_context("/events/x/signup", base_url="http://localhost/"):
        from flask import g, session

        g.marker = "from g"
        session["seen"] = "from the session"
        page = render_template_string(
            "{{ request.path }}|{{ session.seen }}|{{ g.marker }}|{{ csrf_token()|length > 20 }}|"
            "{{ 'csrf-token' in csrf_meta_tag() }}")
    assert page == "/events/x/signup|from the session|from g|True|True"


def _fill(rule, **values) -> str:
    """A rule's path with its variables filled from `values` (1 for an id not given)."""
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m.group(1), 1)), rule.rule)


def test_private_pages_are_not_stored_and_public_ones_may_be(app, client, auth, create_event):
    """Every GET route: the admin's pages and the manage links say no-store, the public pages do not."""
    event = create_event()
    assert signup(client, event).status_code == 200
    values = {"event_id": event.id, "slug": event.slug, "token": token_for(app, registration("ada@example.org"))}
    rules = [r for r in app.url_map.iter_rules() if "GET" in r.methods and r.endpoint != "static"]
    private = [r for r in rules if r.rule.startswith(("/admin/", "/r/"))]
    assert len(private) >= 8
    anonymous = app.test_client()
    for rule in rules:
        response = client.get(_fill(rule, **values))  # signed in as the organiser
        assert response.headers["X-Content-Type-Options"] == "nosniff", rule.rule
        if rule in private:
            assert response.headers["Cache-Control"] == "no-store", (rule.rule, response.status_code)
        elif rule.endpoint.startswith("public.") and response.status_code == 200 and response.mimetype == "text/html":
            # The organiser's copy carries their menu (and its CSRF token): kept nowhere. A visitor's may be.
            assert "no-store" in response.headers.get("Cache-Control", ""), rule.rule
            public = anonymous.get(_fill(rule, **values))
            assert "no-store" not in public.headers.get("Cache-Control", ""), rule.rule
    for path in (f"/r/{values['token']}", "/admin/", f"/admin/events/{event.id}", "/admin/login"):
        assert client.get(path).status_code == 200, path
    assert auth.post(f"/admin/events/{event.id}/publish").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("secure", [False, True])
def test_hsts_only_when_the_session_cookie_is_https_only(app, client, secure):
    app.config["SESSION_COOKIE_SECURE"] = secure
    for path in ("/", "/admin/login", "/calendar.ics", "/nowhere"):
        hsts = client.get(path).headers.get("Strict-Transport-Security")
        assert hsts == ("max-age=31536000; includeSubDomains" if secure else None), path


def test_a_304_carries_what_updates_the_stored_200_and_no_more(client, create_event):
    """The security headers and the type are the stored 200's: a 304 only confirms it (RFC 9110 15.4.5)."""
    event = create_event()
    for path in ("/calendar.ics", f"/events/{event.slug}"):
        full = client.get(path, headers={"Accept-Encoding": "gzip", "Accept-Language": "de"})
        assert full.status_code == 200 and full.headers["Content-Security-Policy"] and full.headers["ETag"], path
        again = client.get(path, headers={"Accept-Encoding": "gzip", "Accept-Language": "de",
                                          "If-None-Match": full.headers["ETag"]})
        assert again.status_code == 304, path
        assert again.headers["ETag"] == full.headers["ETag"], path
        assert again.headers["Cache-Control"] == full.headers["Cache-Control"], path
        assert set(again.vary) == set(full.vary) >= {"Accept-Encoding", "Accept-Language", "Cookie"}, path
        assert not {"Content-Security-Policy", "X-Frame-Options", "Content-Type"} & set(again.headers.keys()), path


class InlineCode(HTMLParser):
    """What a CSP without 'unsafe-inline' blocks: inline scripts, style elements and attributes, handlers."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if (tag == "script" and not dict(attrs).get("src")) or tag == "style":
            self.found.append(f"<{tag}>")
        self.found += [f"<{tag} {name}>" for name, value in attrs if name == "style" or name.startswith("on")
                       or (value or "").strip().lower().startswith("javascript:")]


def test_every_page_works_under_the_content_security_policy(app, client, auth, create_event):
    """The policy allows no inline code, and no page (charts, forms and errors included) has any."""
    event = create_event(speakers=[("Grace Hopper", "speaker")])
    assert signup(client, event).status_code == 200  # the signups chart has a point to draw
    values = {"event_id": event.id, "slug": event.slug, "token": token_for(app, registration("ada@example.org"))}
    pages = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        response = client.get(_fill(rule, **values))
        csp = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe" not in csp
        if response.mimetype == "text/html":
            parser = InlineCode()
            parser.feed(response.get_data(as_text=True))
            assert parser.found == [], (rule.rule, parser.found)
            pages += response.status_code == 200
    assert pages >= 10
    assert "<svg" in client.get(f"/admin/events/{event.id}").get_data(as_text=True)


def test_the_session_and_the_language_come_from_the_cookies_a_request_sends(app, client, auth, create_event):
    from scheduler.extensions import varies_on_cookie

    create_event(slug="cookies")
    # No Cookie header (a calendar app): no session cookie written, and Vary names Cookie once.
    feed = client.get("/calendar.ics", headers={"Accept-Language": "fr"})
    assert feed.status_code == 200 and "Set-Cookie" not in feed.headers
    assert [v.strip() for v in feed.headers["Vary"].split(",")].count("Cookie") == 1
    # A response whose Vary did not name Cookie gets it, since the session was looked at.
    style = client.get("/static/style.css")
    assert style.status_code == 200 and varies_on_cookie(style)
    # The language: Accept-Language without a cookie, the cookie over Accept-Language when sent.
    assert 'lang="fr"' in client.get("/", headers={"Accept-Language": "fr"}).text
    client.set_cookie("lang", "de")
    assert 'lang="de"' in client.get("/", headers={"Accept-Language": "fr"}).text
    # A session cookie is still read: a signed-in organiser stays signed in.
    auth.login()
    assert client.get("/admin/").status_code == 200
    assert [varies_on_cookie(r) for r in (feed, style)] == [True, True]


@pytest.mark.parametrize(("vary", "expected"), [
    ("", False), ("Accept-Encoding", False), ("X-Cookie-Policy", False), ("accept-language, cookie", True),
    ("Accept-Encoding,Cookie", True), ("*", True)])
def test_varies_on_cookie_reads_the_names_in_vary(vary, expected):
    from flask import Response

    from scheduler.extensions import varies_on_cookie

    assert varies_on_cookie(Response(headers={"Vary": vary} if vary else {})) is expected
