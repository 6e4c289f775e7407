"""Flask commands for API tokens: `flask api-token create` and `flask api-token revoke`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func, select

from .domain import api_tokens as token_rules
from .errors import DomainError
from .extensions import db
from .models import TOKEN_SCOPES, User, utcnow


def init_app(app: Flask) -> None:
    group = AppGroup("api-token", help="Create and revoke API tokens for organisers' programs.")

    @group.command("create")
    @click.option("--name", required=True, help="What uses the token.")
    @click.option("--scope", type=click.Choice(TOKEN_SCOPES), default="read", show_default=True)
    @click.option("--email", default="", help="The organiser (admin user) it belongs to.")
    def create(name: str, scope: str, email: str):
        """Create a token and print it (it is shown only this once)."""
        user_id = None
        if email:
            user = db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
            if user is None:
                raise click.BadParameter(f"no admin with email {email}", param_hint="--email")
            user_id = user.id
        try:
            row, token = token_rules.create_token(db.session, name=name, scope=scope, now=utcnow(), user_id=user_id)
        except DomainError as exc:
            raise click.BadParameter(exc.message, param_hint="--" + (exc.field or "name")) from None
        db.session.commit()
        click.echo(f"Created {scope} token {row.id} “{row.name}”. Copy it now, it is not shown again:")
        click.echo(token)

    @group.command("revoke")
    @click.argument("token_id", type=int)
    def revoke(token_id: int):
        """Revoke a token by its id: requests with it get 401 from now on."""
        try:
            row = token_rules.revoke_token(db.session, token_id, now=utcnow())
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        db.session.commit()
        click.echo(f"Revoked token {row.id} “{row.name}”.")

    app.cli.add_command(group)
