"""The Jinja environment (scheduler.templating): fewer calls per render, the same context."""

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


def test_each_context_processor_runs_once_per_page(app, client, create_event):
    """A blueprint's page ran Flask's default processor twice (it is registered with every blueprint)."""
    calls = []

    @app.context_processor
    def count():
        calls.append(1)
        return {}

    event = create_event()
    assert client.get(f"/events/{event.slug}/signup").status_code == 200
    assert calls == [1]
    registered = [p.__name__ for processors in app.template_context_processors.values() for p in processors]
    assert registered.count("_default_template_ctx_processor") == 1 and "<lambda>" not in registered


def test_a_global_added_later_reaches_templates_already_loaded(app):
    with app.test_request_context("/"):
        app.jinja_env.get_template("base.html")  # loaded, and cached, before the global exists
        app.jinja_env.globals["late_global"] = "late"
        template = app.jinja_env.from_string("{{ late_global }}/{{ own }}", globals={"own": "own"})
        assert template.render() == "late/own"
        assert "own" not in app.jinja_env.globals  # template globals stay the template's
        assert render_template_string("{% extends 'base.html' %}{% block content %}{{ late_global }}{% endblock %}"
                                      ).count("late") == 1


def test_globals_given_for_one_template_stay_that_templates(app):
    with app.test_request_context("/"):
        env = app.jinja_env
        env.get_template("signup/thanks.html")  # cached, with the environment's globals
        template = env.get_template("signup/thanks.html", globals={"only_here": "x"})
        assert template.globals["only_here"] == "x" and template.globals["url_for"] is env.globals["url_for"]
        assert "only_here" not in env.globals
        assert "only_here" not in env.get_template("base.html").globals
