"""Admin pages for API tokens: create one (shown once), see when each was used, revoke."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from ..domain import api_tokens as token_rules
from ..errors import DomainError
from ..extensions import db
from ..forms import ConfirmForm, Form
from ..models import TOKEN_SCOPES, ApiToken, utcnow
from .admin import bp


class ApiTokenForm(Form):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)],
                       description="What uses it, e.g. “website sync”.")
    scope = SelectField("Scope", choices=[SelectChoice("read", "Read: list events and registrations"),
                                          SelectChoice("write", "Write: also create, change, cancel and register")],
                        default="read", validators=[DataRequired()])


def _page(form: ApiTokenForm, new_token: str | None = None, status: int = 200):
    tokens = db.session.scalars(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc()))
    return render_template("admin/api_tokens.html", form=form, tokens=list(tokens), new_token=new_token,
                           action_form=ConfirmForm(), scopes=TOKEN_SCOPES), status


@bp.route("/api-tokens", methods=["GET", "POST"])
def api_tokens():
    form = ApiTokenForm()
    if form.validate_on_submit():
        try:
            _row, token = token_rules.create_token(db.session, name=form.name.data, scope=form.scope.data,
                                                  now=utcnow(), user_id=current_user.id)
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            form.name.errors = [exc.message]
            return _page(form, status=422)
        # Shown once, on this response only: the database keeps just its hash.
        return _page(ApiTokenForm(formdata=None), new_token=token)
    return _page(form, status=422 if form.errors else 200)


@bp.post("/api-tokens/<int:token_id>/revoke")
def api_token_revoke(token_id: int):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        row = token_rules.revoke_token(db.session, token_id, now=utcnow())
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(f"Token “{row.name}” revoked: requests with it now get 401.", "success")
    return redirect(url_for("admin.api_tokens"))
