"""Organiser actions after the event and on speakers' feeds: give the recording, export the board's
questions as CSV, issue a speaker a new feed link (the old one stops working)."""

from __future__ import annotations

import csv
import io

from flask import Response, abort, current_app, flash, redirect, stream_with_context, url_for
from flask_babel import gettext as _

from ..domain import follow_ups, speaker_feeds
from ..extensions import db
from ..follow_up_forms import RecordingForm
from ..forms import require_confirmation
from ..text import csv_cell, slugify
from .admin import bp, get_event
from .refusals import attempt, flash_back

QUESTION_COLUMNS = ("question", "name", "votes", "state", "pinned", "merged_into", "asked_at", "answered_at")
#: Rows written per chunk of the streamed CSV.
CSV_BATCH = 500


def _detail(event_id: int, anchor: str = "") -> str:
    return url_for("admin.event_detail", event_id=event_id) + anchor


@bp.post("/events/<int:event_id>/recording")
def recording_set(event_id: int):
    """Give or correct the recording; the first one plans the follow-up mail."""
    event = get_event(event_id)
    form = RecordingForm()
    back = _detail(event_id, "#after-heading")
    if not form.validate_on_submit():
        for name, messages in form.errors.items():
            label = form[name].label.text if name in form else name
            flash(f"{label}: {' '.join(str(m) for m in messages)}", "error")
        return redirect(back, code=303)
    with attempt(refused=flash_back(back)) as uow:
        first = event.recording_added_at is None
        follow_ups.set_recording(uow.session, event, url=form.recording_url.data,
                                 summary=form.recording_summary.data or "", now=uow.now)
        ended = uow.now >= event.ends_at
    if not first:
        done = _("Recording saved. Follow-up mail not yet sent will carry the new link.")
    elif ended:
        done = _("Recording saved. Attendees and no-shows get their follow-up now.")
    else:
        done = _("Recording saved. Attendees and no-shows get their follow-up when the event ends.")
    flash(done, "success")
    return redirect(back, code=303)


@bp.get("/events/<int:event_id>/questions.csv")
def questions_csv(event_id: int):
    """Every question of the board with its votes and state, most voted first, streamed."""
    event = get_event(event_id)
    event_key = event.id  # read inside the stream, with the request's session (stream_with_context)

    def chunks():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        buffer.write("\ufeff")
        writer.writerow(QUESTION_COLUMNS)
        for n, q in enumerate(follow_ups.all_questions(db.session, event_key), start=1):
            writer.writerow([csv_cell(v) for v in (
                q.body, q.shown_name, q.votes, q.state, "yes" if q.pinned else "", q.merged_into_id or "",
                _iso(q.created_at), _iso(q.answered_at))])
            if n % CSV_BATCH == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()

    filename = f"{slugify(event.slug)}-questions.csv"
    return Response(stream_with_context(chunks()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _iso(moment) -> str:
    return moment.isoformat() if moment else ""


@bp.post("/events/<int:event_id>/speakers/<int:speaker_id>/feed")
def speaker_feed_revoke(event_id: int, speaker_id: int):
    """A new calendar feed link for the speaker: the old one (and their old moderation link) stop working."""
    event = get_event(event_id)
    require_confirmation()
    link = next((link for link in event.speakers if link.speaker_id == speaker_id), None)
    if link is None:
        abort(404)
    with attempt(refused=flash_back(_detail(event_id))) as uow:
        speaker_feeds.revoke_feed(uow.session, link.speaker, secret=current_app.config["SECRET_KEY"])
        done = _("%(name)s has a new calendar feed link; the old one no longer works.", name=link.speaker.name)
    flash(done, "success")
    return redirect(_detail(event_id, "#speakers-heading"), code=303)
