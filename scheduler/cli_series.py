"""Flask command for series: `flask series plan` makes the occurrences the rolling window has reached."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .domain import series as series_rules
from .services import unit_of_work


def init_app(app: Flask) -> None:
    group = AppGroup("series", help="Recurring series.")

    @group.command("plan")
    def plan():
        """Make every published series' occurrences up to the window's end (the scheduler does it hourly)."""
        with unit_of_work() as uow:
            made = series_rules.plan_all(uow.session, now=uow.now, secret=current_app.config["SECRET_KEY"])
        click.echo(f"{made} occurrence(s) planned.")

    app.cli.add_command(group)
