"""WTForms classes: validation only; the domain decides what the values mean."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from flask import abort, current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    URL,
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from .domain import door as door_rules
from .domain.events import is_valid_timezone
from .domain.offsets import format_offset, format_offsets, parse_offset, parse_offsets
from .errors import InvalidInput
from .labels import KINDS, ROLES, refusal_text
from .languages import DEFAULT as DEFAULT_LANGUAGE
from .languages import LANGUAGES
from .models import EVENT_KINDS, SPEAKER_ROLES

LOCAL_FORMAT = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


def valid_timezone(_form, field):
    if not is_valid_timezone(field.data or ""):
        raise ValidationError(_("Unknown timezone: use an IANA name such as Europe/Berlin."))


def offsets_list(_form, field):
    try:
        parse_offsets(field.data or "")
    except InvalidInput as exc:
        raise ValidationError(refusal_text(exc)) from None


def single_offset(_form, field):
    try:
        parse_offset(field.data or "")
    except InvalidInput as exc:
        raise ValidationError(refusal_text(exc)) from None


def to_utc(local: datetime | None, zone: str) -> datetime | None:
    """A wall-clock time typed in the event's zone, as an aware UTC datetime."""
    if local is None:
        return None
    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def to_local(moment: datetime | None, zone: str) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


class Form(FlaskForm):
    """A form without a CSRF field of its own: CSRFProtect checks every POST before its view.

    A form-level token would be made on every construction and checked a second time on every
    submission; here the page gets the token only when hidden_tag() renders the form. So a view
    exempted from CSRFProtect gets no CSRF check from its forms either.
    """

    class Meta:
        csrf = False

    #: The domain's name for a value -> this form's field for it, where they differ.
    field_names: dict[str, str] = {}

    def hidden_tag(self, *fields):
        name = current_app.config["WTF_CSRF_FIELD_NAME"]
        token = Markup('<input id="{0}" name="{0}" type="hidden" value="{1}">').format(name, generate_csrf())
        return token + super().hidden_tag(*fields)

    def show_errors(self, errors: dict[str, list[str]]) -> None:
        """Put the domain's messages beside the matching fields (others at the top)."""
        for name, messages in errors.items():
            name = self.field_names.get(name, name)
            if name in self:
                self[name].errors = list(self[name].errors) + list(messages)
            else:
                self.form_errors.extend(messages)


def printable(_form, field):
    """Refuse control characters (PostgreSQL cannot even compare a text with a NUL byte)."""
    if field.data and not field.data.isprintable():
        raise ValidationError(_("Remove the control characters."))


class LoginForm(Form):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320), printable])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


#: When the door opens by default, in minutes before the start (as Event.door_offset).
DOOR_MINUTES = 15


class EventForm(Form):
    field_names = {"reminder_offsets": "reminders", "door_offset": "door_minutes"}

    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    slug = StringField(_l("Slug"), validators=[Optional(), Length(max=120)],
                       description=_l("Part of the address; made from the title when empty."))
    summary = StringField(_l("Summary"), validators=[Optional(), Length(max=500)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=50_000)],
                                description=_l("Markdown."))
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k, KINDS[k]) for k in EVENT_KINDS], default="talk")
    timezone = StringField(_l("Timezone"), validators=[DataRequired(), valid_timezone], default="UTC",
                           description=_l("IANA name, e.g. America/Los_Angeles. Times below are in this zone."))
    starts_at = DateTimeLocalField(_l("Starts"), format=LOCAL_FORMAT, validators=[InputRequired()])
    ends_at = DateTimeLocalField(_l("Ends"), format=LOCAL_FORMAT, validators=[InputRequired()])
    venue = StringField(_l("Venue"), validators=[Optional(), Length(max=300)], description=_l("A physical place, if any."))
    join_url = StringField(_l("Join link"), validators=[Optional(), URL(require_tld=False), Length(max=500)],
                           description=_l("Private: only confirmed registrants and speakers see it."))
    capacity = IntegerField(_l("Capacity"), validators=[Optional(), NumberRange(
        min=0, max=1_000_000, message=_l("Capacity must be between 0 and 1,000,000; leave it empty for unlimited."))],
                            description=_l("Empty for unlimited."))
    signup_opens_at = DateTimeLocalField(_l("Signup opens"), format=LOCAL_FORMAT, validators=[Optional()])
    signup_closes_at = DateTimeLocalField(_l("Signup closes"), format=LOCAL_FORMAT, validators=[Optional()])
    tags = StringField(_l("Tags"), validators=[Optional(), Length(max=500)], description=_l("Series, comma-separated."))
    reminders = StringField(_l("Reminders"), validators=[Optional(), offsets_list], default="1d, 1h",
                            description=_l("Before the start, e.g. 7d, 1d, 1h, 10m."))
    double_opt_in = BooleanField(_l("Ask attendees to confirm their email"), default=True)
    briefing_enabled = BooleanField(_l("Brief speakers before"), default=True)
    briefing_offset = StringField(_l("Briefing"), validators=[DataRequired(), single_offset], default="3d")
    nudge_enabled = BooleanField(_l("Nudge speakers before going live"), default=True)
    nudge_offset = StringField(_l("Go-live nudge"), validators=[DataRequired(), single_offset], default="15m")
    thanks_enabled = BooleanField(_l("Thank speakers after the end"), default=True)
    thanks_offset = StringField(_l("Thank-you after the end"), validators=[DataRequired(), single_offset],
                                default="1h")
    board_mode = SelectField(_l("Question board"), default="open", choices=[
        SelectChoice("open", _l("Open: questions appear at once")),
        SelectChoice("moderated", _l("Moderated: questions wait for approval"))])
    board_public = BooleanField(_l("Visitors who are not registered may read the questions"), default=False)
    door_minutes = IntegerField(
        _l("Door opens (minutes before the start)"), default=DOOR_MINUTES,
        validators=[Optional(), NumberRange(min=0, max=door_rules.MAX_OFFSET // 60, message=_l(
            "The door opens between 0 minutes and 7 days (10080 minutes) before the start."))],
        description=_l("From then until the end, each person's own join link leads to the join link above; "
                       "before, it shows a waiting page. Empty for 15."))

    def domain_fields(self) -> dict:
        """The form's values as the domain's event fields (UTC datetimes, offsets in seconds)."""
        zone = self.timezone.data
        return {
            "title": self.title.data,
            "slug": (self.slug.data or "").strip().lower(),
            "summary": self.summary.data or "",
            "description": self.description.data or "",
            "kind": self.kind.data,
            "timezone": zone,
            "starts_at": to_utc(self.starts_at.data, zone),
            "ends_at": to_utc(self.ends_at.data, zone),
            "venue": self.venue.data or "",
            "join_url": self.join_url.data or "",
            "capacity": self.capacity.data,
            "signup_opens_at": to_utc(self.signup_opens_at.data, zone),
            "signup_closes_at": to_utc(self.signup_closes_at.data, zone),
            "reminder_offsets": parse_offsets(self.reminders.data or ""),
            "double_opt_in": bool(self.double_opt_in.data),
            "briefing_enabled": bool(self.briefing_enabled.data),
            "briefing_offset": parse_offset(self.briefing_offset.data),
            "nudge_enabled": bool(self.nudge_enabled.data),
            "nudge_offset": parse_offset(self.nudge_offset.data),
            "thanks_enabled": bool(self.thanks_enabled.data),
            "thanks_offset": parse_offset(self.thanks_offset.data),
            "board_mode": self.board_mode.data,
            "board_public": bool(self.board_public.data),
            "door_offset": (DOOR_MINUTES if self.door_minutes.data is None else self.door_minutes.data) * 60,
        }

    def tag_names(self) -> list[str]:
        return [t for t in (self.tags.data or "").split(",") if t.strip()]

    def fill_from(self, event) -> None:
        zone = event.timezone
        for name in ("title", "slug", "summary", "description", "kind", "timezone", "venue", "join_url",
                     "capacity", "double_opt_in", "briefing_enabled", "nudge_enabled", "thanks_enabled", "board_mode",
                     "board_public"):
            getattr(self, name).data = getattr(event, name)
        for name in ("starts_at", "ends_at", "signup_opens_at", "signup_closes_at"):
            getattr(self, name).data = to_local(getattr(event, name), zone)
        self.tags.data = ", ".join(t.name for t in event.tags)
        self.reminders.data = format_offsets(event.reminder_offsets)
        self.briefing_offset.data = format_offset(event.briefing_offset)
        self.nudge_offset.data = format_offset(event.nudge_offset)
        self.thanks_offset.data = format_offset(event.thanks_offset)
        self.door_minutes.data = event.door_offset // 60


class SpeakerForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("Email"), validators=[Optional(), Email(check_deliverability=False), Length(max=320)])
    affiliation = StringField(_l("Affiliation"), validators=[Optional(), Length(max=200)])
    bio = TextAreaField(_l("Short bio"), validators=[Optional(), Length(max=5000)])
    photo_url = StringField(_l("Photo URL"), validators=[Optional(), URL(), Length(max=500)])
    role = SelectField(_l("Role"), choices=[SelectChoice(r, ROLES[r]) for r in SPEAKER_ROLES], default="speaker")
    language = SelectField(_l("Language of their emails"), choices=[SelectChoice(code, name) for code, name in
                                                                  LANGUAGES.items()], default=DEFAULT_LANGUAGE)


class ConfirmForm(Form):
    """An empty form: a POST button protected by CSRF."""


def require_confirmation() -> None:
    """A POST button's check: its CSRF-protected form, or 400."""
    if not ConfirmForm().validate_on_submit():
        abort(400)


def normalised_email(_form, field):
    """email-validator's checks and normal form (no DNS lookups)."""
    try:
        field.data = validate_email((field.data or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationError(_("Please enter a valid email address: %(reason)s", reason=exc)) from None


class SignupForm(Form):
    name = StringField(_l("Your name"), validators=[DataRequired(_l("Please tell us your name.")), Length(max=200)])
    email = EmailField(_l("Email"), validators=[DataRequired(_l("Please enter your email address.")), Length(max=320),
                                            normalised_email],
                       description=_l("We send your confirmation and reminders here, nothing else."))
    question = TextAreaField(_l("A question for the speakers (optional)"), validators=[Optional(), Length(max=2000)])
    timezone = StringField(_l("Your timezone"), validators=[DataRequired(_l("Please give your timezone.")),
                                                        Length(max=64), valid_timezone],
                           description=_l("Times in your emails are shown in this zone."),
                           render_kw={"data-browser-timezone": "replace", "autocomplete": "off"})
    consent = BooleanField(_l("I agree that Townhall keeps my name and email to run this event and send me its "
                           "reminders."), validators=[DataRequired(_l("Please agree so we can register you."))])
    #: Hidden from people; bots that fill every field get a polite "thanks" and nothing is stored.
    website = StringField(_l("Leave this empty"), validators=[Optional()],
                          render_kw={"tabindex": "-1", "autocomplete": "off"})


class QuestionForm(Form):
    question = TextAreaField(_l("Your question for the speakers"), validators=[Optional(), Length(max=2000)])
