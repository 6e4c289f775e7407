"""Every admin page refuses strangers; every POST refuses a missing CSRF token."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from scheduler.extensions import db
from scheduler.models import Event

CSRF_EXEMPT_TOKEN_ENDPOINTS = {"signup.unsubscribe"}
SAMPLE_VALUES = {"int": "1", "default": "x", "string": "x", "path": "x"}


def concrete(rule) -> str:
    """Fill a URL rule's variables with sample values."""
    def fill(match):
        converter = match.group(1) or "default"
        return SAMPLE_VALUES.get(converter.split("(")[0], "x")
    return re.sub(r"<(?:([a-z]+(?:\([^)]*\))?):)?[a-z_]+>", fill, rule.rule)


def test_every_admin_endpoint_refuses_anonymous(app, client, create_event):
    create_event()
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.") and r.endpoint != "admin.login"]
    assert len(rules) >= 8
    for rule in rules:
        url = concrete(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            assert response.status_code in (302, 401, 403, 400), (method, url, response.status_code)
            if response.status_code == 302:
                assert "/admin/login" in response.headers["Location"], (method, url)


def test_every_post_refuses_missing_csrf(app, client, auth, create_event):
    event = create_event()
    before = db.session.scalar(select(func.count()).select_from(Event))
    posts = [r for r in app.url_map.iter_rules() if "POST" in r.methods]
    assert posts
    for rule in posts:
        url = concrete(rule).replace("/x", f"/{event.slug}")
        response = client.post(url, data={"title": "changed", "email": "a@b.test", "name": "x"})
        # A session-cookie POST without a token is refused: 400 (CSRF) or 401 for bearer-only endpoints.
        # RFC 8058 one-click unsubscribe is CSRF-exempt (mail providers POST it); its private token is
        # the protection, so a wrong token is simply not found.
        expected = (404,) if rule.endpoint in CSRF_EXEMPT_TOKEN_ENDPOINTS else (400, 401)
        assert response.status_code in expected, (url, response.status_code)
    assert db.session.scalar(select(func.count()).select_from(Event)) == before
    db.session.expire_all()
    assert db.session.get(Event, event.id).title == event.title


def test_login_rejects_wrong_password(client, admin_user):
    from tests.conftest import Auth

    response = Auth(client).login(password="wrong password")
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_login_next_is_not_an_open_redirect(client, admin_user):
    from tests.conftest import csrf_token

    token = csrf_token(client)
    response = client.post("/admin/login?next=//evil.example/", data={
        "email": "organiser@townhall.test", "password": "correct horse battery", "csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_session_cookie_is_httponly(client, admin_user):
    from tests.conftest import Auth

    response = Auth(client).login()
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
