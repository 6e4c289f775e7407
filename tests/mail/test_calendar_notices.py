"""Invitations composed at delivery: what an update says was there before, and SEQUENCE against a later CANCEL."""

from __future__ import annotations

from datetime import timedelta

from icalendar import Calendar
from sqlalchemy import select

from scheduler.domain import events as event_rules
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.mail.outbox import fill
from scheduler.models import OutboxMessage
from scheduler.timefmt import format_range


def test_second_edit_says_original_time(app, create_event, now):
    app.config["UPDATE_BATCH_SECONDS"] = 120
    event = create_event(title="Moving")
    signups.sign_up(db.session, event, name="Ann", email="ann@example.org", timezone="Europe/Paris", now=now,
                    secret=app.config["SECRET_KEY"])
    db.session.commit()
    original = format_range(event.starts_at, event.ends_at, "Europe/Paris")
    start, end = event.starts_at, event.ends_at
    for minutes in (30, 60):
        event_rules.update_event(db.session, event, now=now, starts_at=start + timedelta(minutes=minutes),
                                 ends_at=end + timedelta(minutes=minutes))
        db.session.commit()
    body = db.session.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "event_updated"))
    assert f"(was: {original})" in body


def _rows(kind):
    db.session.expire_all()
    rows = list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)))
    for row in rows:
        db.session.expunge(row)
        fill(row)
    return rows


def _seq(row):
    cal = Calendar.from_ical(row.ics)
    return str(cal["METHOD"]), int(cal.events[0]["SEQUENCE"]), str(cal.events[0].get("STATUS", ""))


def test_event_cancelled_before_confirmed_mail_is_sent(app, create_event, now):
    event = create_event(title="Doomed")
    signups.sign_up(db.session, event, name="Ann", email="ann@example.org", now=now, secret=app.config["SECRET_KEY"])
    db.session.commit()
    event_rules.cancel_event(db.session, event, now=now, reason="ill")
    db.session.commit()
    [request] = _rows("confirmed")
    [cancel] = _rows("event_cancelled")
    assert _seq(request)[1] < _seq(cancel)[1]


def test_registration_cancelled_before_confirmed_mail_is_sent(app, create_event, now):
    event = create_event(title="Changed mind")
    result = signups.sign_up(db.session, event, name="Ann", email="ann@example.org", now=now,
                             secret=app.config["SECRET_KEY"])
    db.session.commit()
    signups.cancel_registration(db.session, result.registration, now=now)
    db.session.commit()
    [request] = _rows("confirmed")
    [cancel] = _rows("cancelled")
    assert _seq(request)[1] < _seq(cancel)[1]


def _vevent(row):
    return Calendar.from_ical(row.ics).events[0]


def test_invitation_url_is_the_same_in_the_request_its_updates_and_the_cancel(app, create_event, now):
    """A registrant's invitations all point at their manage page, a speaker's at the event page."""
    from scheduler.urls import event_url, registration_url

    event = create_event(title="Steady", speakers=[("Ibrahim Haddad", "host")])
    result = signups.sign_up(db.session, event, name="Ann", email="ann@example.org", now=now,
                             secret=app.config["SECRET_KEY"])
    db.session.commit()
    manage = registration_url("signup.manage", result.registration)
    for minutes in (30, 60):
        event_rules.update_event(db.session, event, now=now, starts_at=event.starts_at + timedelta(minutes=minutes),
                                 ends_at=event.ends_at + timedelta(minutes=minutes))
        db.session.commit()
    [request] = _rows("confirmed")
    updates = _rows("event_updated")
    event_rules.cancel_event(db.session, event, now=now)
    db.session.commit()
    cancels = _rows("event_cancelled")
    urls = {(row.kind, row.to_addr, str(_vevent(row)["URL"])) for row in [request, *updates, *cancels]}
    assert urls == {
        ("confirmed", "ann@example.org", manage),
        ("event_updated", "ann@example.org", manage),
        ("event_updated", "ibrahim@speakers.test", event_url(event)),
        ("event_cancelled", "ann@example.org", manage),
        ("event_cancelled", "ibrahim@speakers.test", event_url(event)),
    }
    assert manage.startswith("http://townhall.test/r/")
    for row in [request, *updates, *cancels]:  # invitations keep ORGANIZER, unlike the feeds
        assert str(_vevent(row)["ORGANIZER"]) == "mailto:events@townhall.test"


def test_invitation_quotes_the_attendee_name(app, create_event, now):
    event = create_event(title="Quoted")
    signups.sign_up(db.session, event, name="Lovelace, Ada", email="ada@example.org", now=now,
                    secret=app.config["SECRET_KEY"])
    db.session.commit()
    [request] = _rows("confirmed")
    unfolded = request.ics.replace("\r\n ", "")
    assert 'ATTENDEE;CN="Lovelace, Ada";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=FALSE:mailto:ada@example.org' \
        in unfolded.split("\r\n")
    assert 'ORGANIZER;CN="Townhall":mailto:events@townhall.test' in unfolded.split("\r\n")
    assert _vevent(request)["ATTENDEE"].params["CN"] == "Lovelace, Ada"
