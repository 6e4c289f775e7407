"""WTForms for series in the admin: a new series from a rule, and a change of this and all following
occurrences. Validation only; the domain decides what the values mean."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField, TextAreaField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, InputRequired, Length, NumberRange, Optional

from .domain.recurrence import MAX_OCCURRENCES
from .forms import Form, offsets_list, valid_timezone
from .labels import KINDS
from .models import EVENT_KINDS


class SeriesForm(Form):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    slug = StringField(_l("Slug"), validators=[Optional(), Length(max=100)],
                       description=_l("Part of the address; made from the title when empty."))
    summary = StringField(_l("Summary"), validators=[Optional(), Length(max=500)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=50_000)],
                                description=_l("Markdown."))
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k, KINDS[k]) for k in EVENT_KINDS], default="live discussion")
    tags = StringField(_l("Tags"), validators=[Optional(), Length(max=500)], description=_l("Comma-separated."))
    timezone = StringField(_l("Timezone"), validators=[DataRequired(), valid_timezone], default="UTC",
                           description=_l("IANA name: every occurrence starts at the same wall-clock time there, "
                                          "across daylight-saving changes."))
    freq = SelectField(_l("Repeats"), default="weekly", choices=[
        SelectChoice("weekly", _l("Weekly")), SelectChoice("monthly", _l("Monthly"))])
    interval = IntegerField(_l("Every"), default=1, validators=[InputRequired(), NumberRange(min=1, max=52)],
                            description=_l("1: every week or month; 2: every other one; …"))
    byday = StringField(_l("On"), validators=[Optional(), Length(max=40)],
                        description=_l("Weekly: MO, WE (empty: the first day's weekday). Monthly: 3WE for the "
                                       "third Wednesday, -1FR for the last Friday (empty: the first day's date)."))
    bymonthday = IntegerField(_l("Day of the month"), validators=[Optional(), NumberRange(min=1, max=31)],
                              description=_l("Monthly only, instead of a weekday."))
    starts_on = DateField(_l("From"), validators=[InputRequired()],
                          description=_l("The first occurrence is the first the rule gives on or after this day."))
    start_time = TimeField(_l("At"), validators=[InputRequired()])
    duration_minutes = IntegerField(_l("Minutes"), default=60, validators=[InputRequired(),
                                                                         NumberRange(min=1, max=24 * 60)])
    count = IntegerField(_l("Occurrences"), validators=[Optional(), NumberRange(min=1, max=MAX_OCCURRENCES)],
                         description=_l("End after this many; empty for no count."))
    until = DateField(_l("Until"), validators=[Optional()], description=_l("The last day; empty for no end date."))
    venue = StringField(_l("Venue"), validators=[Optional(), Length(max=300)])
    join_url = StringField(_l("Join link"), validators=[Optional(), URL(require_tld=False), Length(max=500)],
                           description=_l("Private: only confirmed registrants and speakers see it."))
    capacity = IntegerField(_l("Capacity of each occurrence"), validators=[Optional(), NumberRange(min=0,
                                                                                                  max=1_000_000)],
                            description=_l("Empty for unlimited."))
    reminders = StringField(_l("Reminders"), validators=[Optional(), offsets_list], default="1d, 1h",
                            description=_l("Before each occurrence, e.g. 1d, 1h, 10m."))
    double_opt_in = BooleanField(_l("Ask attendees to confirm their email"), default=True)


class FollowingForm(Form):
    """This occurrence and every later one; fields left empty stay as they are."""

    start_time = TimeField(_l("New start time"), validators=[Optional()])
    duration_minutes = IntegerField(_l("Minutes"), validators=[Optional(), NumberRange(min=1, max=24 * 60)])
    title = StringField(_l("Title"), validators=[Optional(), Length(max=200)])
    venue = StringField(_l("Venue"), validators=[Optional(), Length(max=300)])
    join_url = StringField(_l("Join link"), validators=[Optional(), URL(require_tld=False), Length(max=500)])
    capacity = IntegerField(_l("Capacity"), validators=[Optional(), NumberRange(min=0, max=1_000_000)])
