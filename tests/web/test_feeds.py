"""Calendar routes and calendar mail through the app: feeds, conditional GETs, revocation, updates."""

from __future__ import annotations

from datetime import timedelta

from icalendar import Calendar
from sqlalchemy import select

from scheduler.domain import events as event_rules
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.models import OutboxMessage
from scheduler.tokens import feed_token
from tests.support import csrf_token


def sign_up(app, event, now, email="ann@example.org", name="Ann"):
    result = signups.sign_up(db.session, event, name=name, email=email, timezone="Europe/Paris", now=now,
                             secret=app.config["SECRET_KEY"])
    db.session.commit()
    return result


def events_in(body: bytes) -> dict[str, Calendar]:
    return {str(e["SUMMARY"]): e for e in Calendar.from_ical(body).events}


def outbox(kind: str) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                   .order_by(OutboxMessage.to_addr)))


def test_download_is_calendar_with_attachment_name(client, create_event):
    event = create_event(title="Launch")
    response = client.get(f"/events/{event.slug}.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{event.slug}.ics"'
    body = response.get_data()
    assert b"METHOD" not in body
    assert event.join_url.encode() not in body
    assert list(events_in(body)) == ["Launch"]


def test_download_of_draft_or_unknown_event_is_404(client, create_event):
    draft = create_event(publish=False)
    assert client.get(f"/events/{draft.slug}.ics").status_code == 404
    assert client.get("/events/nope.ics").status_code == 404


def test_feed_etag_stable_and_conditional_get_is_304_without_body(client, create_event):
    create_event(title="One")
    first, second = client.get("/calendar.ics"), client.get("/calendar.ics")
    assert first.status_code == second.status_code == 200
    assert first.headers["ETag"] == second.headers["ETag"]
    assert first.get_data() == second.get_data()
    again = client.get("/calendar.ics", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    since = client.get("/calendar.ics", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    assert since.get_data() == b""


def test_feed_etag_changes_when_an_event_changes(client, create_event, now):
    event = create_event(title="One")
    before = client.get("/calendar.ics")
    event_rules.update_event(db.session, event, now=now + timedelta(seconds=5), starts_at=event.starts_at
                             + timedelta(hours=1), ends_at=event.ends_at + timedelta(hours=1))
    db.session.commit()
    after = client.get("/calendar.ics", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert events_in(after.get_data())["One"]["SEQUENCE"] == 1
    download = client.get(f"/events/{event.slug}.ics")
    assert download.headers["ETag"] != client.get("/calendar.ics").headers["ETag"]


def test_public_feed_shows_upcoming_recent_and_cancelled_but_no_drafts_or_join_links(client, create_event, now):
    create_event(title="Upcoming")
    create_event(title="Draft", publish=False)
    create_event(title="Last week", starts_at=now - timedelta(days=7))
    create_event(title="Long ago", starts_at=now - timedelta(days=40))
    cancelled = create_event(title="Called off")
    event_rules.cancel_event(db.session, cancelled, now=now)
    db.session.commit()
    response = client.get("/calendar.ics")
    found = events_in(response.get_data())
    assert sorted(found) == ["Called off", "Last week", "Upcoming"]
    assert str(found["Called off"]["STATUS"]) == "CANCELLED"
    assert str(found["Upcoming"]["STATUS"]) == "CONFIRMED"
    assert b"meet.example.org" not in response.get_data()


def test_tag_feed_has_only_that_series(client, create_event):
    create_event(title="Tagged", tags=["Open Source AI"])
    create_event(title="Other", tags=["Cooking"])
    response = client.get("/calendar/open-source-ai.ics")
    assert response.status_code == 200
    assert list(events_in(response.get_data())) == ["Tagged"]
    assert b"X-WR-CALNAME:Townhall: Open Source AI" in response.get_data()
    assert client.get("/calendar/unknown.ics").status_code == 404


def test_personal_feed_lists_the_persons_events_with_their_door_link(app, client, create_event, now):
    from scheduler.urls import door_url

    first, second, other = create_event(title="First"), create_event(title="Second"), create_event(title="Other")
    mine = sign_up(app, first, now).registration
    sign_up(app, second, now, email="ANN@example.org")
    sign_up(app, other, now, email="bob@example.org")
    token = feed_token(app.config["SECRET_KEY"], mine)
    response = client.get(f"/feeds/{token}.ics")
    assert response.status_code == 200
    found = events_in(response.get_data())
    assert sorted(found) == ["First", "Second"]
    # Their own door (web/door.py), never the join URL itself.
    assert str(found["First"]["URL"]) == door_url(mine)
    assert f"Join online: {door_url(mine)}" in str(found["First"]["DESCRIPTION"])
    assert first.join_url.encode() not in response.get_data()


def test_revoked_personal_feed_token_is_404(app, client, create_event, now):
    event = create_event(title="Mine")
    result = sign_up(app, event, now)
    old = feed_token(app.config["SECRET_KEY"], result.registration)
    assert client.get(f"/feeds/{old}.ics").status_code == 200
    manage = f"/r/{result.token}"
    assert f"/feeds/{old}.ics".encode() in client.get(manage).get_data()
    response = client.post(f"/r/{result.token}/feed/revoke", data={"csrf_token": csrf_token(client, manage)})
    assert response.status_code == 303
    assert client.get(f"/feeds/{old}.ics").status_code == 404
    db.session.expire_all()
    new = feed_token(app.config["SECRET_KEY"], db.session.get(type(result.registration), result.registration.id))
    assert new != old
    assert client.get(f"/feeds/{new}.ics").status_code == 200


def test_revoke_without_csrf_token_is_refused(app, client, create_event, now):
    result = sign_up(app, create_event(), now)
    old = feed_token(app.config["SECRET_KEY"], result.registration)
    assert client.post(f"/r/{result.token}/feed/revoke").status_code == 400
    assert client.get(f"/feeds/{old}.ics").status_code == 200


def test_speaker_feed_lists_their_events_with_their_door_link(app, client, create_event, now):
    from scheduler.urls import speaker_door_url
    from scheduler.web.feeds import speaker_feed_url

    event = create_event(title="Panel", speakers=[("Soumith Chintala", "panelist")])
    create_event(title="Without them")
    url = speaker_feed_url(db.session, event.speakers[0].speaker)
    db.session.commit()
    response = client.get(url.removeprefix("http://townhall.test"))
    assert response.status_code == 200
    found = events_in(response.get_data())
    assert list(found) == ["Panel"]
    assert speaker_door_url(event.speakers[0]) in str(found["Panel"]["DESCRIPTION"])
    assert event.join_url.encode() not in response.get_data()
    assert client.get("/speakers/feeds/" + "x" * 43 + ".ics").status_code == 404


def test_moving_an_event_queues_one_update_per_person_with_higher_sequence(app, create_event, now):
    event = create_event(title="Moving", speakers=[("Ibrahim Haddad", "host")], capacity=1)
    sign_up(app, event, now, email="ann@example.org")
    sign_up(app, event, now, email="bob@example.org", name="Bob")  # waitlisted: no invitation to update
    for minutes in (30, 60):  # two quick edits: one update per person, with the newest SEQUENCE
        event_rules.update_event(db.session, event, now=now, starts_at=event.starts_at + timedelta(minutes=minutes),
                                 ends_at=event.ends_at + timedelta(minutes=minutes))
        db.session.commit()
    updates = outbox("event_updated")
    assert [m.to_addr for m in updates] == ["ann@example.org", "bob@example.org", "ibrahim@speakers.test"]
    assert [m.ics_method for m in updates] == ["REQUEST", None, "REQUEST"]  # Bob waits: a note, no invitation
    assert event.join_url not in updates[1].body_text
    updates = [m for m in updates if m.ics]
    for message in updates:
        vevent = Calendar.from_ical(message.ics).events[0]
        assert message.ics_method == "REQUEST"
        assert vevent["SEQUENCE"] == 2 == event.sequence
        assert vevent.start == event.starts_at
    assert "(was: " in updates[0].body_text
    assert [m.next_attempt_at for m in updates] == [now, now]  # UPDATE_BATCH_SECONDS is 0 in tests

    event_rules.cancel_event(db.session, event, now=now, reason="Speaker ill")
    db.session.commit()
    assert outbox("event_updated") == []  # the waiting update is replaced by the cancellation
    cancels = outbox("event_cancelled")
    assert [m.to_addr for m in cancels] == ["ann@example.org", "bob@example.org", "ibrahim@speakers.test"]
    invited = [m for m in cancels if m.ics]
    assert [m.to_addr for m in invited] == ["ann@example.org", "ibrahim@speakers.test"]
    for message in invited:
        cal = Calendar.from_ical(message.ics)
        assert message.ics_method == "CANCEL" == str(cal["METHOD"])
        assert cal.events[0]["SEQUENCE"] == 3
        assert str(cal.events[0]["STATUS"]) == "CANCELLED"


def test_update_waits_update_batch_seconds_in_the_outbox(app, create_event, now):
    app.config["UPDATE_BATCH_SECONDS"] = 120
    event = create_event()
    sign_up(app, event, now)
    event_rules.update_event(db.session, event, now=now, venue="Room 2")
    db.session.commit()
    assert [m.next_attempt_at for m in outbox("event_updated")] == [now + timedelta(seconds=120)]


def test_title_change_queues_no_calendar_update(app, create_event, now):
    event = create_event()
    sign_up(app, event, now)
    event_rules.update_event(db.session, event, now=now, title="Renamed")
    db.session.commit()
    assert outbox("event_updated") == []


def test_event_page_offers_add_to_calendar(client, create_event):
    event = create_event(title="Visible", tags=["Series"])
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert f'href="/events/{event.slug}.ics"' in page
    assert "https://calendar.google.com/calendar/render?action=TEMPLATE" in page
    assert "https://outlook.live.com/calendar/0/action/compose?" in page
    assert 'href="webcal://townhall.test/calendar.ics"' in page
    assert 'href="webcal://townhall.test/calendar/series.ics"' in page
    assert event.join_url not in page


def test_calendar_links_carry_a_join_link_only_when_given_one(app, create_event):
    from urllib.parse import parse_qs, urlsplit

    from scheduler.web.feeds import google_calendar_url, outlook_calendar_url

    def query(url: str) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}

    online = create_event(title="Online", summary="Short", venue="")
    page = f"http://townhall.test/events/{online.slug}"
    public = [query(google_calendar_url(online)), query(outlook_calendar_url(online))]
    assert [(q.get("details") or q.get("body"), q.get("location")) for q in public] == [(f"Short\n\n{page}", None)] * 2
    private = [query(google_calendar_url(online, join_url=online.join_url)),
               query(outlook_calendar_url(online, join_url=online.join_url))]
    assert [(q.get("details") or q.get("body"), q["location"]) for q in private] == [
        (f"Short\n\nJoin online: {online.join_url}\n\n{page}", online.join_url)] * 2
    both = create_event(title="Both", venue="Hall 1")
    assert query(google_calendar_url(both, join_url=both.join_url))["location"] == "Hall 1"


# --- gzip: compressed once per version, an ETag per encoding ------------------------------------

GZIP = {"Accept-Encoding": "gzip"}


def test_feed_is_gzipped_once_per_version_with_an_etag_per_encoding(client, create_event, now):
    import gzip

    event = create_event(title="Packed")
    plain, packed, again = (client.get("/calendar.ics"), client.get("/calendar.ics", headers=GZIP),
                            client.get("/calendar.ics", headers=GZIP))
    assert packed.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert packed.get_data() == again.get_data()
    assert packed.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert packed.headers["ETag"] == plain.headers["ETag"][:-1] + '-gzip"'
    assert all("Accept-Encoding" in r.headers["Vary"] for r in (plain, packed))
    not_modified = client.get("/calendar.ics", headers={**GZIP, "If-None-Match": packed.headers["ETag"]})
    assert not_modified.status_code == 304 and not_modified.headers["ETag"] == packed.headers["ETag"]
    assert client.get("/calendar.ics", headers={"If-None-Match": packed.headers["ETag"]}).status_code == 200
    event_rules.update_event(db.session, event, now=now + timedelta(seconds=5), title="Packed again")
    db.session.commit()
    changed = client.get("/calendar.ics", headers={**GZIP, "If-None-Match": packed.headers["ETag"]})
    assert changed.status_code == 200 and b"SUMMARY:Packed again" in gzip.decompress(changed.get_data())


def test_download_and_personal_feed_are_gzipped_too(app, client, create_event, now):
    import gzip

    event = create_event(title="Mine")
    token = feed_token(app.config["SECRET_KEY"], sign_up(app, event, now).registration)
    for path in (f"/events/{event.slug}.ics", f"/feeds/{token}.ics"):
        plain, packed = client.get(path), client.get(path, headers=GZIP)
        assert packed.headers["Content-Encoding"] == "gzip", path
        assert gzip.decompress(packed.get_data()) == plain.get_data()
        assert packed.headers["ETag"] != plain.headers["ETag"]


def test_feed_changes_even_when_an_edit_is_older_than_the_latest(client, create_event, now):
    """Another machine's clock may run behind: the feed follows the versions, not only the latest update time."""
    first, second = create_event(title="First"), create_event(title="Second")
    event_rules.update_event(db.session, second, now=now + timedelta(minutes=5), venue="Hall 2")
    db.session.commit()
    before = client.get("/calendar.ics")
    event_rules.update_event(db.session, first, now=now + timedelta(minutes=1), title="First, renamed")
    db.session.commit()
    after = client.get("/calendar.ics", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert sorted(events_in(after.get_data())) == ["First, renamed", "Second"]


def test_feed_after_a_change_writes_only_the_changed_event_and_equals_a_full_build(app, client, create_event, now):
    from scheduler.web.feeds import state

    events = [create_event(title=f"Talk {n}", tags=["Series"], speakers=[(f"Speaker {n}", "host")]) for n in range(4)]
    client.get("/calendar.ics")
    written = dict(state().vevents)
    event_rules.update_event(db.session, events[2], now=now, title="Talk 2, renamed")
    db.session.commit()
    after = client.get("/calendar.ics").get_data()
    kept = state().vevents
    assert [key[0] for key in set(kept) - set(written)] == [events[2].id]
    assert all(kept[key] is part for key, part in written.items())  # the others were not written again
    state().__init__()  # nothing kept: every VEVENT written again
    assert client.get("/calendar.ics").get_data() == after
    speaker = events[1].speakers[0].speaker
    speaker.name = "Speaker One, renamed"
    db.session.commit()
    description = str(events_in(client.get("/calendar.ics").get_data())["Talk 1"]["DESCRIPTION"])
    assert "With: Speaker One, renamed (host)" in description


# --- issue 20: names, alarms, cancelled signups, Last-Modified, no ORGANIZER -------------------


def raw_lines(body: bytes) -> list[str]:
    return body.decode().split("\r\n")


def alarms_in(vevent) -> list[tuple[str, str, timedelta]]:
    return [(str(a["ACTION"]), str(a["DESCRIPTION"]), a["TRIGGER"].dt) for a in vevent.walk("VALARM")]


def test_feeds_have_escaped_names_refresh_and_no_organizer(app, client, create_event, now):
    from icalendar.parser import unescape_backslash

    from scheduler.web.feeds import speaker_feed_url

    event = create_event(title="Tagged", tags=["Café; ÜML, 🎉"], speakers=[("Lovelace, Ada\\", "host")])
    token = feed_token(app.config["SECRET_KEY"], sign_up(app, event, now).registration)
    speaker_url = speaker_feed_url(db.session, event.speakers[0].speaker).removeprefix("http://townhall.test")
    db.session.commit()
    names = {
        "/calendar.ics": ("Townhall events", "Townhall events"),
        "/calendar/cafe-uml.ics": ("Townhall: Café\\; ÜML\\, 🎉", "Townhall: Café; ÜML, 🎉"),
        f"/feeds/{token}.ics": ("Townhall: my events", "Townhall: my events"),
        speaker_url: ("Townhall: Lovelace\\, Ada\\\\ speaking", "Townhall: Lovelace, Ada\\ speaking"),
    }
    for path, (written, meant) in names.items():
        body = client.get(path).get_data()
        lines = raw_lines(body)
        assert lines[4:8] == [f"NAME:{written}", f"X-WR-CALNAME:{written}", "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
                              "X-PUBLISHED-TTL:PT1H"], path
        calendar = Calendar.from_ical(body)
        # icalendar reads NAME and X-WR-CALNAME as unknown properties, kept as written: read them as TEXT.
        assert [unescape_backslash(str(calendar[name])) for name in ("NAME", "X-WR-CALNAME")] == [meant, meant], path
        assert calendar.refresh_interval == timedelta(hours=1), path
        assert not any(line.startswith("ORGANIZER") for line in lines), path
    download = raw_lines(client.get(f"/events/{event.slug}.ics").get_data())
    assert not [line for line in download if line.startswith(("ORGANIZER", "NAME", "X-WR-CALNAME", "REFRESH"))]


def test_personal_feed_keeps_a_cancelled_signup_as_cancelled_for_30_days_after_the_event(app, client, create_event,
                                                                                        now):
    dropped = create_event(title="Dropped", starts_at=now + timedelta(days=2))
    kept = create_event(title="Kept", starts_at=now + timedelta(days=60))
    result = sign_up(app, dropped, now)
    sign_up(app, kept, now)
    path = f"/feeds/{feed_token(app.config['SECRET_KEY'], result.registration)}.ics"
    before = client.get(path)
    assert str(events_in(before.get_data())["Dropped"]["STATUS"]) == "CONFIRMED"

    later = now + timedelta(hours=1)
    app.config["CLOCK"] = lambda: later
    signups.cancel_registration(db.session, result.registration, now=later)
    db.session.commit()
    after = client.get(path)
    assert after.status_code == 200
    found = events_in(after.get_data())
    assert sorted(found) == ["Dropped", "Kept"]
    assert str(found["Dropped"]["STATUS"]) == "CANCELLED"
    assert found["Dropped"]["SEQUENCE"] == 1  # above the 0 their calendar holds, as in the CANCEL they were sent
    assert dropped.join_url not in after.get_data(as_text=True)
    assert str(found["Kept"]["STATUS"]) == "CONFIRMED"
    assert after.headers["ETag"] != before.headers["ETag"]
    assert after.headers["Last-Modified"] != before.headers["Last-Modified"]
    assert after.headers["Last-Modified"] == "Mon, 02 Nov 2026 13:00:00 GMT"
    for old in ({"If-None-Match": before.headers["ETag"]}, {"If-Modified-Since": before.headers["Last-Modified"]}):
        assert client.get(path, headers=old).status_code == 200, old
    assert client.get(path, headers={"If-Modified-Since": after.headers["Last-Modified"]}).status_code == 304

    for days, titles in ((29, ["Dropped", "Kept"]), (31, ["Kept"])):  # after the event's end
        moment = dropped.ends_at + timedelta(days=days)
        app.config["CLOCK"] = lambda moment=moment: moment
        assert sorted(events_in(client.get(path).get_data())) == titles, days


def test_personal_feed_keeps_a_lapsed_hold_as_cancelled(app, client, create_event, now):
    event = create_event(title="Held", double_opt_in=True)
    result = sign_up(app, event, now)
    path = f"/feeds/{feed_token(app.config['SECRET_KEY'], result.registration)}.ics"
    assert str(events_in(client.get(path).get_data())["Held"]["STATUS"]) == "TENTATIVE"
    signups.expire_holds(db.session, now=now + timedelta(days=2))
    db.session.commit()
    held = events_in(client.get(path).get_data())["Held"]
    assert (str(held["STATUS"]), held["SEQUENCE"]) == ("CANCELLED", 1)


def test_personal_feed_alarms_follow_the_reminder_choice(app, client, create_event, now):
    event = create_event(title="Remind me", reminder_offsets=[86400, 3600])
    waiting = create_event(title="Full", capacity=0, reminder_offsets=[86400])
    result = sign_up(app, event, now)
    sign_up(app, waiting, now)
    path = f"/feeds/{feed_token(app.config['SECRET_KEY'], result.registration)}.ics"

    def alarms() -> dict[str, list]:
        return {title: alarms_in(vevent) for title, vevent in events_in(client.get(path).get_data()).items()}

    assert alarms() == {"Remind me": [("DISPLAY", "Remind me", timedelta(days=-1)),
                                      ("DISPLAY", "Remind me", timedelta(hours=-1))],
                        "Full": []}  # a waitlist place gets no reminders, so no alarm
    signups.set_reminders(db.session, result.registration, opt_out=True, now=now)
    db.session.commit()
    assert alarms()["Remind me"] == []
    signups.set_reminders(db.session, result.registration, opt_out=False, now=now)
    db.session.commit()
    # Offsets are not part of Event.version: a changed plan must still reach the feed at once.
    event_rules.update_event(db.session, event, now=now, reminder_offsets=[600])
    db.session.commit()
    assert alarms()["Remind me"] == [("DISPLAY", "Remind me", timedelta(minutes=-10))]
    event_rules.cancel_event(db.session, event, now=now)
    db.session.commit()
    assert alarms()["Remind me"] == []


def test_each_language_gets_its_own_feed_and_etag(client, create_event):
    """The stored feed is keyed by the request's language (its cookie, else Accept-Language)."""
    create_event(title="Polyglot")
    english = client.get("/calendar.ics")
    german = client.get("/calendar.ics", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert "Veranstaltungen von" in german.text and "Veranstaltungen von" not in english.text
    assert german.headers["ETag"] != english.headers["ETag"]
    # One language's copy is not confirmed for another: the 304 needs the ETag of this language's bytes.
    assert client.get("/calendar.ics", headers={"If-None-Match": german.headers["ETag"]}).status_code == 200
    assert client.get("/calendar.ics", headers={"Accept-Language": "de",
                                                 "If-None-Match": german.headers["ETag"]}).status_code == 304
    # The cookie wins over Accept-Language, for the feed as for the pages.
    client.set_cookie("lang", "fr")
    french = client.get("/calendar.ics", headers={"Accept-Language": "de"})
    assert "Événements de" in french.text and french.headers["ETag"] not in (german.headers["ETag"],
                                                                              english.headers["ETag"])
    assert client.get("/calendar.ics", headers={"Accept-Language": "de",
                                                 "If-None-Match": german.headers["ETag"]}).status_code == 200


def test_the_feeds_language_is_the_one_flask_babel_gives_the_request(app):
    from flask_babel import get_locale

    from scheduler.web.locale import request_language

    cases = [{}, {"Accept-Language": "fr-CA,fr;q=0.9"}, {"Accept-Language": "zh-CN,zh;q=0.9"},
             {"Accept-Language": "xx"}, {"Accept-Language": "de", "Cookie": "lang=es"},
             {"Cookie": "lang=nonsense"}]
    seen = set()
    for headers in cases:
        # A new app context each time, as each request gets: Flask-Babel keeps its answer in `g`.
        with app.app_context(), app.test_request_context("/calendar.ics", headers=headers):
            assert request_language() == str(get_locale()), headers
            seen.add(request_language())
    assert seen == {"en", "fr", "zh_Hans", "es"}
