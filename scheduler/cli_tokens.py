"""Flask commands for API tokens: `flask api-token create` and `flask api-token revoke`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func, select

from .domain import api_tokens as token_rules
from .errors import DomainError
from .models import TOKEN_SCOPES, User
from .services import unit_of_work


def init_app(app: Flask) -> None:
    group = AppGroup("api-token", help="Create and revoke API tokens for organisers' programs.")

    @group.command("create")
    @click.option("--name", required=True, help="What uses the token.")
    @click.option("--scope", type=click.Choice(TOKEN_SCOPES), default="read", show_default=True)
    @click.option("--email", default="", help="The organiser (admin user) it belongs to.")
    def create(name: str, scope: str, email: str):
        """Create a token and print it (it is shown only this once)."""
        try:
            with unit_of_work() as uow:
                user_id = None
                if email:
                    user = uow.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
                    if user is None:
                        raise click.BadParameter(f"no admin with email {email}", param_hint="--email")
                    user_id = user.id
                row, token = token_rules.create_token(uow.session, name=name, scope=scope, now=uow.now,
                                                      user_id=user_id)
                said = f"Created {scope} token {row.id} “{row.name}”. Copy it now, it is not shown again:"
        except DomainError as exc:
            raise click.BadParameter(exc.message, param_hint="--" + (exc.field or "name")) from None
        click.echo(said)
        click.echo(token)

    @group.command("revoke")
    @click.argument("token_id", type=int)
    def revoke(token_id: int):
        """Revoke a token by its id: requests with it get 401 from now on."""
        try:
            with unit_of_work() as uow:
                row = token_rules.revoke_token(uow.session, token_id, now=uow.now)
                said = f"Revoked token {row.id} “{row.name}”."
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(said)

    app.cli.add_command(group)
