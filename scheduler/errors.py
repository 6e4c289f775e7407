"""Domain errors: each carries the message a person sees, a stable code, and the fields it is about.

Which HTTP status each one answers with is decided in `web/`, not here.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "invalid"

    def __init__(self, message: str | None = None, *, field: str | None = None, params: dict | None = None):
        super().__init__(message or self.__doc__ or self.code)
        #: The message as written, "%(name)s" placeholders and all: what the catalogs translate (web/refusals.py).
        self.template = message or (self.__doc__ or self.code).strip()
        self.params = params or {}
        self.message = self.template % self.params if self.params else self.template
        self.field = field
        #: Messages per field name, for a form or the API's `fields`; empty when no field is at fault.
        self.fields: dict[str, list[str]] = {field: [self.message]} if field else {}


class NotFound(DomainError):
    """Not found."""

    code = "not_found"


class Conflict(DomainError):
    """That conflicts with the current state."""

    code = "conflict"


class NotAllowed(DomainError):
    """You may not do that (not who the rule asks for)."""

    code = "not_allowed"


class RateLimited(DomainError):
    """Too many of these in a short time: wait a few minutes."""

    code = "rate_limited"


class InvalidInput(DomainError):
    """Some fields are not valid."""

    code = "invalid"

    def __init__(self, message: str | None = None, *, field: str | None = None, fields: dict | None = None,
                 params: dict | None = None):
        super().__init__(message, field=field, params=params)
        if fields:
            self.fields = fields


class SlugTaken(Conflict):
    """That slug is already used by another event."""

    code = "slug_taken"


class SignupClosed(Conflict):
    """Signup for this event is closed."""

    code = "signup_closed"


class EventNotOpen(Conflict):
    """This event is not open for signup."""

    code = "event_not_open"


class EventCancelled(Conflict):
    """This event has been cancelled."""

    code = "event_cancelled"


class EventFull(Conflict):
    """This event is full."""

    code = "event_full"


class InvalidTransition(Conflict):
    """That change is not possible in the current state."""

    code = "invalid_transition"


class RuleGivesNothing(Conflict):
    """This recurrence rule gives no occurrence."""

    code = "rule_gives_nothing"
