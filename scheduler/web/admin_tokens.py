"""Admin pages for API tokens: create one (shown once), see when each was used, revoke."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from ..domain import api_tokens as token_rules
from ..extensions import db
from ..forms import ConfirmForm, Form, require_confirmation
from ..models import TOKEN_SCOPES, ApiToken
from .admin import bp
from .refusals import attempt, flash_back, show_on_form


class ApiTokenForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)],
                       description=_l("What uses it, e.g. “website sync”."))
    scope = SelectField(_l("Scope"), choices=[SelectChoice("read", _l("Read: list events and registrations")),
                                              SelectChoice("write", _l("Write: also create, change, cancel and register"))],
                        default="read", validators=[DataRequired()])


def _page(form: ApiTokenForm, new_token: str | None = None, status: int = 200):
    tokens = db.session.scalars(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc()))
    return render_template("admin/api_tokens.html", form=form, tokens=list(tokens), new_token=new_token,
                           action_form=ConfirmForm(), scopes=TOKEN_SCOPES), status


@bp.route("/api-tokens", methods=["GET", "POST"])
def api_tokens():
    form = ApiTokenForm()
    if form.validate_on_submit():
        with attempt(refused=show_on_form(form, lambda: _page(form, status=422))) as uow:
            _row, token = token_rules.create_token(uow.session, name=form.name.data, scope=form.scope.data,
                                                  now=uow.now, user_id=current_user.id)
        # Shown once, on this response only: the database keeps just its hash.
        return _page(ApiTokenForm(formdata=None), new_token=token)
    return _page(form, status=422 if form.errors else 200)


@bp.post("/api-tokens/<int:token_id>/revoke")
def api_token_revoke(token_id: int):
    require_confirmation()
    back = url_for("admin.api_tokens")
    with attempt(refused=flash_back(back, code=302)) as uow:
        row = token_rules.revoke_token(uow.session, token_id, now=uow.now)
        done = _("Token “%(name)s” revoked: requests with it now get 401.", name=row.name)
    flash(done, "success")
    return redirect(back)
