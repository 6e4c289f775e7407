"""The application factory (scheduler.create_app): what every page's templates get."""

from __future__ import annotations

from flask import render_template_string


def test_pages_still_get_request_session_g_and_csrf_helpers(app):
    with app.test_request_context("/events/x/signup", base_url="http://localhost/"):
        from flask import g, session

        g.marker = "from g"
        session["seen"] = "from the session"
        page = render_template_string(
            "{{ request.path }}|{{ session.seen }}|{{ g.marker }}|{{ csrf_token()|length > 20 }}|"
            "{{ 'csrf-token' in csrf_meta_tag() }}")
    assert page == "/events/x/signup|from the session|from g|True|True"
