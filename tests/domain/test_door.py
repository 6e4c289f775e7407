"""The door's rules: its state by the clock, why it stays shut, its private links, and attendance."""

from __future__ import annotations

from datetime import timedelta

from scheduler.domain import door, signups, speaker_feeds
from scheduler.extensions import db
from scheduler.models import EventSpeaker, Registration
from scheduler.tokens import manage_token


def join(app, event, name: str, now) -> Registration:
    registration = signups.sign_up(db.session, event, name=name, email=f"{name.lower()}@example.org", now=now,
                                   secret=app.config["SECRET_KEY"]).registration
    db.session.commit()
    return registration


def test_door_is_waiting_then_open_from_the_offset_until_the_end_then_ended(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=1))
    assert event.door_offset == 15 * 60
    opens = event.starts_at - timedelta(minutes=15)
    assert door.opens_at(event) == opens
    assert door.door_state(event, now=opens - timedelta(seconds=1)) == door.WAITING
    assert door.door_state(event, now=opens) == door.OPEN
    assert door.door_state(event, now=event.ends_at - timedelta(seconds=1)) == door.OPEN
    assert door.door_state(event, now=event.ends_at) == door.ENDED


def test_door_offset_is_the_events_own(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=1))
    event.door_offset = 3600
    assert door.door_state(event, now=now) == door.OPEN
    event.door_offset = 0
    assert door.door_state(event, now=event.starts_at - timedelta(seconds=1)) == door.WAITING


def test_shut_for_cancelled_registrations_unconfirmed_places_and_cancelled_events(app, create_event, now):
    event = create_event(capacity=1)
    first, second = join(app, event, "Ada", now), join(app, event, "Grace", now)
    assert (first.state, second.state) == ("confirmed", "waitlisted")
    assert door.shut_reason(event, first) is None
    assert door.shut_reason(event, second) == door.NOT_CONFIRMED
    first.state = "cancelled"
    assert door.shut_reason(event, first) == door.CANCELLED_REGISTRATION
    first.state = "expired"
    assert door.shut_reason(event, first) == door.CANCELLED_REGISTRATION
    event.status = "cancelled"
    assert door.shut_reason(event) == door.EVENT_CANCELLED
    db.session.rollback()


def test_check_offset_takes_zero_to_seven_days():
    assert door.check_offset(0) is None and door.check_offset(7 * 86400) is None
    assert door.check_offset(-1) and door.check_offset(7 * 86400 + 1) and door.check_offset(None)


def test_links_find_their_person_and_nothing_else(app, create_event, now):
    event = create_event(speakers=[("Alan Turing", "host")])
    registration = join(app, event, "Ada", now)
    secret = app.config["SECRET_KEY"]
    token = door.registrant_token(secret, registration)
    assert door.find_registration(db.session, registration.id, token, secret=secret) is registration
    assert door.find_registration(db.session, registration.id + 1, token, secret=secret) is None
    assert door.find_registration(db.session, registration.id, token[:-1] + ("A" if token[-1] != "A" else "B"),
                                  secret=secret) is None
    assert door.find_registration(db.session, registration.id, "short", secret=secret) is None
    # Not the manage link: a forwarded door link does not open the manage page.
    assert token != manage_token(secret, registration)
    assert signups.find_by_token(db.session, token) is None
    link = event.speakers[0]
    speaker_token = door.speaker_token(secret, link)
    assert door.find_speaker_link(db.session, link.id, speaker_token, secret=secret) is link
    assert door.find_speaker_link(db.session, link.id, token, secret=secret) is None
    # Issuing the speaker's calendar feed later leaves the door link they were already mailed working.
    speaker_feeds.feed_token(db.session, link.speaker, secret=secret)
    db.session.commit()
    assert door.find_speaker_link(db.session, link.id, speaker_token, secret=secret) is link


def test_first_pass_is_kept_and_the_last_moves(app, create_event, now):
    event = create_event(starts_at=now + timedelta(minutes=10))
    registration = join(app, event, "Ada", now)
    assert door.record_pass(db.session, registration, now=now) is True
    db.session.commit()
    assert (registration.door_first_at, registration.door_last_at) == (now, now)
    # Within the step nothing is written; after it only the last moves.
    assert door.record_pass(db.session, registration, now=now + timedelta(seconds=30)) is False
    later = now + timedelta(minutes=5)
    assert door.record_pass(db.session, registration, now=later) is True
    db.session.commit()
    db.session.expire_all()
    row = db.session.get(Registration, registration.id)
    assert (row.door_first_at, row.door_last_at) == (now, later)
    assert door.attendance(db.session, event) == (1, 0)


def test_speakers_attendance_is_per_event(app, create_event, now):
    event = create_event(speakers=[("Alan Turing", "host"), ("Grace Hopper", "panelist")])
    other = create_event()
    link = event.speakers[0]
    version = event.version
    door.record_pass(db.session, link, now=now)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(EventSpeaker, link.id).door_first_at == now
    assert door.attendance(db.session, event) == (0, 1)
    assert door.attendance(db.session, other) == (0, 0)
    # Attendance is on no public page: the event's cached pages stay valid.
    assert db.session.get(type(event), event.id).version == version


def test_two_passes_at_once_write_one_first_pass(app, create_event, now):
    import threading

    event = create_event(starts_at=now + timedelta(minutes=10))
    registration_id = join(app, event, "Ada", now).id
    db.session.commit()
    barrier, written = threading.Barrier(2), []

    def come_in(moment):
        with app.app_context():
            person = db.session.get(Registration, registration_id)
            db.session.commit()
            barrier.wait()
            written.append(door.record_pass(db.session, person, now=moment))
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=come_in, args=(now + timedelta(seconds=s),)) for s in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == [False, True]
    db.session.expire_all()
    row = db.session.get(Registration, registration_id)
    assert row.door_first_at == row.door_last_at and row.door_first_at in (now, now + timedelta(seconds=1))
