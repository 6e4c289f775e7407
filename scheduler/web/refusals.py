"""How the web answers a domain refusal: the HTTP status of each error, and the one place views run a change.

A view writes inside `attempt(refused=...)`: the unit of work commits, or rolls back on a refusal,
which `refused` then turns into the answer (a flash message and a redirect, the form again with the
messages beside its fields); the API lets the error reach its blueprint's handler, `refusal_json`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Response, abort, flash, jsonify, make_response, redirect
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from ..errors import Conflict, DomainError, InvalidInput, NotAllowed, NotFound, RateLimited
from ..labels import refusal_text
from ..services import UnitOfWork, unit_of_work

#: The status of a refusal is that of its nearest class here (SignupClosed, EventFull, ... are Conflicts).
STATUSES: dict[type[DomainError], int] = {
    NotAllowed: 403,
    NotFound: 404,
    Conflict: 409,
    RateLimited: 429,
    InvalidInput: 422,
    DomainError: 422,
}

Refused = Callable[[DomainError], ResponseReturnValue]


def message_of(exc: DomainError) -> str:
    """The refusal's message in the request's language (a message the catalogs lack stays as written)."""
    return refusal_text(exc)


def fields_of(exc: DomainError) -> dict[str, list[str]]:
    """The messages per field, in the request's language."""
    return {name: [message_of(exc) if message == exc.message else gettext(str(message)) for message in messages]
            for name, messages in exc.fields.items()}


def status_of(exc: DomainError) -> int:
    """The HTTP status that answers this domain error."""
    return next(STATUSES[cls] for cls in type(exc).__mro__ if cls in STATUSES)


@contextmanager
def attempt(refused: Refused) -> Iterator[UnitOfWork]:
    """A unit of work for a view; a domain refusal is rolled back and answers the request with `refused(exc)`."""
    try:
        with unit_of_work() as uow:
            yield uow
    except DomainError as exc:
        # abort() with a response ends the view with that response: no check after every block.
        abort(make_response(refused(exc)))


def flash_back(url: str, code: int = 303) -> Refused:
    """Answer a refusal with its message flashed, and a redirect to `url`."""

    def answer(exc: DomainError) -> ResponseReturnValue:
        flash(message_of(exc), "error")
        return redirect(url, code=code)

    return answer


def show_on_form(form, page: Callable[[], ResponseReturnValue]) -> Refused:
    """Answer a refusal with `page()` (the form again), its messages beside the fields they are about."""

    def answer(exc: DomainError) -> ResponseReturnValue:
        if exc.fields:
            form.show_errors(fields_of(exc))
        else:
            form.form_errors.append(message_of(exc))
        return page()

    return answer


def json_error(status: int, code: str, message: str, fields: dict | None = None) -> Response:
    """The API's error: {"error": {"code", "message", "fields"}} with its status."""
    response = jsonify(error={"code": code, "message": message, "fields": fields or {}})
    response.status_code = status
    return response


def refusal_json(exc: DomainError) -> Response:
    """A domain error as the API's JSON error."""
    return json_error(status_of(exc), exc.code, message_of(exc), fields_of(exc))
