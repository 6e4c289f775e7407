"""Organiser pages for announcements: write, preview, send; and the list of those sent."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ..domain import announcements
from ..extensions import db
from ..follow_up_forms import AnnouncementForm
from ..text import render_markdown
from .admin import bp, get_event
from .refusals import attempt, show_on_form, status_of


def _page(form: AnnouncementForm, event, *, preview: bool = False, status: int | None = None):
    """The form (or its preview, the values kept in hidden fields) and the announcements sent so far."""
    context = dict(event=event, form=form, sent=announcements.event_announcements(db.session, event.id))
    template = "admin/announcements.html"
    if preview:
        audience = form.audience.data
        subject, body = announcements.clean(subject=form.subject.data, body=form.body.data, audience=audience)
        wanted, opted_out = announcements.count_recipients(db.session, event, audience)
        label = next(str(choice.label) for choice in form.audience.choices if choice.value == audience)
        context.update(subject=subject, body_html=render_markdown(body), recipients=wanted, opted_out=opted_out,
                       audience_label=label)
        template = "admin/announcement_preview.html"
    return render_template(template, **context), status or (422 if form.errors else 200)


@bp.route("/events/<int:event_id>/announcements", methods=["GET", "POST"])
def announcement_new(event_id: int):
    """GET: the form. POST: "preview" shows it as it will be read, "send" (from the preview) queues it,
    "edit" (from the preview) goes back to the form with the values kept."""
    event = get_event(event_id)
    form = AnnouncementForm()
    action = request.form.get("action", "preview")
    if request.method == "GET" or action == "edit":
        return _page(form, event)
    if not form.validate_on_submit():
        return _page(form, event)

    def again(exc):
        show_on_form(form, lambda: None)(exc)
        return _page(form, event, status=status_of(exc))

    if action != "send":
        with attempt(refused=again):
            page = _page(form, event, preview=True)
        return page
    with attempt(refused=again) as uow:
        sent = announcements.send_announcement(
            uow.session, event, subject=form.subject.data, body=form.body.data, audience=form.audience.data,
            now=uow.now, sent_by=getattr(current_user, "email", ""))
        done = _("“%(subject)s” is on its way to %(count)d people.", subject=sent.subject, count=sent.recipients)
    flash(done, "success")
    return redirect(url_for("admin.announcement_new", event_id=event_id), code=303)
