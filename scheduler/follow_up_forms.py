"""WTForms for what the organiser sends around an event and what comes back: announcements, the
recording, and the registrant's feedback. Validation only; the domain decides what the values mean."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, InputRequired, Length, Optional

from .domain.announcements import MAX_BODY, MAX_SUBJECT
from .domain.feedback import MAX_COMMENT, RATINGS
from .domain.follow_ups import MAX_SUMMARY
from .forms import Form


class AnnouncementForm(Form):
    subject = StringField(_l("Subject"), validators=[DataRequired(_l("Write a subject.")), Length(max=MAX_SUBJECT)])
    body = TextAreaField(_l("Message"), validators=[DataRequired(_l("Write a message.")), Length(max=MAX_BODY)],
                         description=_l("Markdown: **bold**, *italic*, [links](https://example.org), lists."))
    audience = SelectField(_l("Send to"), default="confirmed", choices=[
        SelectChoice("confirmed", _l("Confirmed registrants")),
        SelectChoice("waitlisted", _l("The waitlist")),
        SelectChoice("all", _l("Everyone registered (confirmed and waitlisted)")),
    ])


class RecordingForm(Form):
    recording_url = StringField(_l("Recording link"), validators=[
        DataRequired(_l("Give the link to the recording.")), URL(message=_l("Use a full http:// or https:// link.")),
        Length(max=500)])
    recording_summary = TextAreaField(_l("Summary (optional)"), validators=[Optional(), Length(max=MAX_SUMMARY)],
                                      description=_l("Sent with the recording; Markdown."))


class FeedbackForm(Form):
    rating = RadioField(_l("How was it?"), coerce=int, validators=[InputRequired(_l("Choose a rating from 1 to 5."))],
                        choices=[SelectChoice(n, str(n)) for n in RATINGS])
    comment = TextAreaField(_l("Anything you would like to tell the organiser? (optional)"),
                            validators=[Optional(), Length(max=MAX_COMMENT)])
