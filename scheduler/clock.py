"""The application's clock: what every view, job and command asks for the time.

`CLOCK` in the config is a callable giving an aware UTC datetime (default: the system clock);
tests set it to a fixed or stepping clock instead of reading today's date.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from .models.types import utcnow


def now() -> datetime:
    """The current time by the app's clock."""
    return current_app.config.get("CLOCK", utcnow)()
