"""Flask extensions, created here and attached in create_app."""

from flask import Flask, Request, Response, has_request_context, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_caching import Cache
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData

# Named constraints so Alembic can drop them on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


@limiter.request_filter
def reading() -> bool:
    """Within a GET (HEAD, OPTIONS) request, which only reads.

    Every limit is on a POST (signups, logins; no default limits): a read skips the limiter's lookups,
    a sixth of a cached page's or a feed poll's time. On SQLite its transactions take no write lock.
    """
    return has_request_context() and request.method in ("GET", "HEAD", "OPTIONS")


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without building the signer for a visitor who sent no cookie (most
    readers of the public pages and every calendar app), or a cookie's attributes when none is written."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not sent_cookie(request, self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:
        # An empty, unchanged session writes no cookie: Flask's own steps for it, without first working
        # out the attributes of the cookie it will not write, or parsing a Vary that names Cookie already.
        if not session and not session.modified:
            if session.accessed and not varies_on_cookie(response):
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def sent_cookie(request: Request, name: str) -> str:
    """The request's cookie `name`, or ""; a request with no Cookie header at all (calendar apps, feed polls)
    has nothing parsed."""
    return request.cookies.get(name, "") if "HTTP_COOKIE" in request.environ else ""


def varies_on_cookie(response: Response) -> bool:
    """The response's Vary names Cookie (or is *)."""
    return any(name.strip().lower() in ("cookie", "*") for name in response.headers.get("Vary", "").split(","))


#: Rendered public pages (scheduler/web/page_cache.py); the backend is chosen in create_app.
cache = Cache()
