"""Townhall: the application factory."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import (
    ENV_VARS,
    SCHEDULER_MODES,
    Defaults,
    default_base_url,
    load_secret_key,
    normalise_database_url,
    parse_env,
)

ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults, instance/config.py, environment, then the test mapping."""
    app = Flask(
        __name__,
        instance_path=os.environ.get("TOWNHALL_INSTANCE") or str(ROOT / "instance"),
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_object(Defaults)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "townhall.db")
    app.config["OUTBOX_DIR"] = os.path.join(app.instance_path, "outbox")
    app.config.from_pyfile("config.py", silent=True)
    for name, kind in ENV_VARS.items():
        if name in os.environ:
            app.config[name] = parse_env(os.environ[name], kind)
    if test_config:
        app.config.update(test_config)
    if not app.config.get("BASE_URL"):
        app.config["BASE_URL"] = default_base_url(os.environ)
    if app.config.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(app.config["DATABASE_URL"])
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(app.instance_path)
    if app.config["SCHEDULER_MODE"] not in SCHEDULER_MODES:
        raise RuntimeError(f"SCHEDULER_MODE must be one of {', '.join(SCHEDULER_MODES)}")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    if app.config["TRUSTED_PROXIES"]:
        # Behind N proxies the client's address is the Nth from the right of X-Forwarded-For; without
        # this the headers are ignored (anyone could send them) and remote_addr is the proxy's.
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    _init_extensions(app)
    _register_blueprints(app)
    _register_template_helpers(app)
    _register_security_headers(app)
    _register_compression(app)

    from . import cli, jobs

    cli.init_app(app)
    jobs.init_app(app)  # `flask scheduler`, and the embedded scheduler when SCHEDULER_MODE says so
    return app


def _init_extensions(app: Flask) -> None:
    from . import models  # noqa: F401  (tables known to Alembic)
    from .database import configure_sqlite
    from .extensions import CookieSessions, cache, csrf, db, limiter, login_manager, migrate, reading

    app.session_interface = CookieSessions()

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    _register_csrf_check(app, csrf)
    limiter.init_app(app)
    login_manager.init_app(app)
    if not app.config.get("CACHE_TYPE"):
        # Like the rate limits: shared through Redis when it is given, else kept in each process.
        app.config["CACHE_TYPE"] = "RedisCache" if app.config.get("CACHE_REDIS_URL") else "SimpleCache"
    cache.init_app(app)
    from .web import locale

    locale.init_app(app)
    login_manager.login_view = "admin.login"
    login_manager.login_message = "Please log in to see that page."
    # No view asks for a fresh login, so "basic" protection would only re-sign every visitor's
    # session cookie to mark it not fresh.
    login_manager.session_protection = None
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            configure_sqlite(db.engine, reading=reading)

    @login_manager.user_loader
    def load_user(session_id: str):
        from .domain.accounts import user_for_session

        return user_for_session(db.session, session_id)


def _register_csrf_check(app: Flask, csrf) -> None:
    from flask import request

    @app.before_request
    def check_csrf():
        # Flask-WTF's default hook looks up the view's exemptions before the method, on every read too;
        # this is its documented alternative (WTF_CSRF_CHECK_DEFAULT off, protect() called by the app).
        if app.config["WTF_CSRF_ENABLED"] and request.method in app.config["WTF_CSRF_METHODS"]:
            csrf.protect(apply_exemptions=True)


def _register_blueprints(app: Flask) -> None:
    # Signal receivers connect when their module is imported: the mail each domain change queues.
    from .mail import announcements, calendar_notices, follow_ups, notify  # noqa: F401
    from .mail import series as series_mail  # noqa: F401

    # admin_announcements, admin_follow_ups, admin_registrations and admin_tokens add their routes to admin.bp:
    # import them before registering it.
    from .web import (  # noqa: F401
        admin,
        admin_announcements,
        admin_follow_ups,
        admin_registrations,
        admin_series,
        admin_tokens,
        api,
        errors,
        feeds,
        health,
        public,
        signup,
    )
    from .web.board import bp as board_bp
    from .web.converters import init_app as init_converters
    from .web.door import bp as door_bp
    from .web.feedback import bp as feedback_bp
    from .web.series import bp as series_bp

    init_converters(app)  # before the blueprints: a rule takes its converters when it is added
    for blueprint in (public.bp, signup.bp, feeds.bp, admin.bp, api.bp, health.bp, board_bp, door_bp,
                      feedback_bp, series_bp):
        app.register_blueprint(blueprint)
    errors.init_app(app)


#: Pages that carry a private token (the manage links) or an organiser's view: no cache keeps a copy.
PRIVATE_PATHS = ("/admin/", "/r/", "/s/")
#: A year, as HSTS preload lists ask; only sent when the session cookie is HTTPS-only (then so is the site).
HSTS = "max-age=31536000; includeSubDomains"
#: No inline script or style on any page: only the site's own script and stylesheet run. Speakers' photos
#: may live anywhere on the web, the stylesheet's icons are data: URLs; the charts are inline SVG, styled
#: by the stylesheet.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _register_security_headers(app: Flask) -> None:
    from flask import request

    @app.after_request
    def security_headers(response):
        if request.path.startswith(PRIVATE_PATHS):
            response.headers["Cache-Control"] = "no-store"
        if response.status_code == 304:
            # It only confirms a stored 200, which has the headers below: a cache keeps them (RFC 9111
            # 4.3.4), and a 304 carries no more than guides that update (RFC 9110 15.4.5).
            return response
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if app.config["SESSION_COOKIE_SECURE"]:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response


def _register_compression(app: Flask) -> None:
    from .web.compression import compress_response

    # Pages, the JSON API and everything else built per request; cached pages and feeds come
    # already compressed and pass through untouched.
    app.after_request(compress_response)


def _register_template_helpers(app: Flask) -> None:
    from .domain.offsets import format_offsets
    from .labels import job_name, kind_name, role_in_text, role_name, state_name
    from .text import plural, render_markdown
    from .timefmt import format_datetime, format_duration, format_range, format_time, format_words

    app.jinja_env.filters.update(
        markdown=render_markdown,
        datetime_in=format_datetime,
        event_range=lambda e: format_range(e.starts_at, e.ends_at, e.timezone),
        time_in=format_time,
        offsets=format_offsets,
        offset_words=format_duration,
        words_list=format_words,
        kind_name=kind_name,
        role_name=role_name,
        role_in_text=role_in_text,
        state_name=state_name,
        job_name=job_name,
        plural=plural,
    )

    from flask_login import current_user

    from .urls import layout_links

    def signed_in() -> bool:
        """An organiser is logged in."""
        return current_user.is_authenticated

    app.jinja_env.globals.update(has_endpoint=lambda name: name in app.view_functions, signed_in=signed_in,
                                 layout_links=layout_links)
