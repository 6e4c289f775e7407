"""Error pages: HTML for people, JSON for the API; never a stack trace."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from ..extensions import db
from .refusals import json_error

#: Lazy: each is put in the language of the request it answers.
MESSAGES = {
    400: (_l("Bad request"), _l("The request could not be understood. Please go back and try again.")),
    403: (_l("Forbidden"), _l("You are not allowed to do that.")),
    404: (_l("Page not found"), _l("There is nothing at this address. The event may have moved or been removed.")),
    405: (_l("Method not allowed"), _l("That action is not available here.")),
    409: (_l("Conflict"), _l("That change conflicts with the current state. Reload and try again.")),
    413: (_l("Too large"), _l("What you sent is larger than we accept.")),
    422: (_l("Invalid input"), _l("Some of what you sent is not valid.")),
    429: (_l("Slow down"), _l("Too many requests from your address. Please wait a minute and try again.")),
    500: (_l("Something went wrong"), _l("We could not complete that. Nothing was changed; please try again.")),
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        title, text = (str(part) for part in MESSAGES.get(code, (exc.name, exc.description)))
        if code == 400 and exc.description and "CSRF" in exc.description:
            text = _l("The form expired or was sent from elsewhere. Please reload the page and try again.")
        if wants_json():
            response = json_error(code, exc.name.lower().replace(" ", "_"), text)
        else:
            response = app.make_response((render_template("errors/error.html", code=code, title=title, text=text),
                                          code))
        if code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        if code == 429:
            response.headers["Retry-After"] = "60"
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        db.session.rollback()  # the session may hold a failed transaction, or a half-made change
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        title, text = (str(part) for part in MESSAGES[500])
        if wants_json():
            return json_error(500, "internal_error", text)
        return render_template("errors/error.html", code=500, title=title, text=text), 500
