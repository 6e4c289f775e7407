"""The application's clock: what every view, job and command asks for the time.

`CLOCK` in the config is a callable giving an aware UTC datetime (default: the system clock);
tests set it to a fixed or stepping clock instead of reading today's date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import Flask, current_app

from .models.types import utcnow


def of(app: Flask) -> Callable[[], datetime]:
    """This app's clock, to call where no app context is pushed (a delivery thread)."""
    return app.config.get("CLOCK", utcnow)


def now() -> datetime:
    """The current time by the app's clock."""
    return of(current_app)()
