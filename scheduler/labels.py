"""Names of the fixed values people see (event kinds, speaker roles, registration and mail states), translated."""

from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

#: Stored value -> its name in the reader's language (capitalised, as a label).
KINDS = {"talk": _l("Talk"), "panel": _l("Panel"), "live discussion": _l("Live discussion"),
         "workshop": _l("Workshop"), "meetup": _l("Meetup")}
#: As a label ("Host") and within a sentence ("the host").
ROLES = {"host": _l("Host"), "moderator": _l("Moderator"), "panelist": _l("Panelist"), "speaker": _l("Speaker")}
ROLES_IN_TEXT = {"host": _l("host"), "moderator": _l("moderator"), "panelist": _l("panelist"),
                 "speaker": _l("speaker")}
JOBS = {"reminder": _l("Reminder"), "briefing": _l("Briefing"), "nudge": _l("Nudge"), "thanks": _l("Thanks"),
        "follow_up": _l("Follow-up")}
STATES = {"draft": _l("Draft"), "published": _l("Published"), "planned": _l("Planned"), "running": _l("Running"),
          "done": _l("Done"), "skipped": _l("Skipped"), "pending": _l("Pending"), "confirmed": _l("Confirmed"), "waitlisted": _l("Waitlisted"),
          "cancelled": _l("Cancelled"), "expired": _l("Expired"), "queued": _l("Queued"), "sending": _l("Sending"),
          "sent": _l("Sent"), "failed": _l("Failed"), "all": _l("All")}


def _named(table: dict, value) -> str:
    found = table.get(value)
    return str(found) if found is not None else str(value or "").replace("_", " ").capitalize()


def kind_name(kind: str) -> str:
    return _named(KINDS, kind)


def role_name(role: str) -> str:
    return _named(ROLES, role)


def role_in_text(role: str) -> str:
    found = ROLES_IN_TEXT.get(role)
    return str(found) if found is not None else str(role or "")


def job_name(kind: str) -> str:
    return _named(JOBS, kind)


def state_name(state: str) -> str:
    return _named(STATES, state)


def refusal_text(exc) -> str:
    """A domain error's message in the current language (as written where the catalogs lack it)."""
    params = getattr(exc, "params", None)
    return gettext(exc.template, **params) if params else gettext(exc.message)
