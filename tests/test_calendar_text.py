"""Any text, through every TEXT property of every calendar Townhall writes, read back by four parsers.

Hypothesis draws a title, summary, description, place, tag, speaker, attendee and organiser name
full of what TEXT escaping (RFC 5545 3.3.11) and folding are about: commas, semicolons, colons,
backslashes, line breaks, quotes, carets, control characters, emoji, long lines. For each draw the
app writes the event's download, the public, tag, personal and speaker feeds, the confirmation and
update REQUESTs and the CANCEL; icalendar, vobject and ics read each one at once, ical.js (under
Node) reads all of them in one process at the end. Each must read back what Townhall means to write:
the stored text as the calendars module cleans it (one line for names, titles and places; control
characters stripped) in SUMMARY, LOCATION, DESCRIPTION, CATEGORIES, the alarm's DESCRIPTION, NAME and
X-WR-CALNAME, and in the CN of ORGANIZER and ATTENDEE.

The examples are bounded and derandomized (the same on every run). Where a parser is known to read
correct bytes its own way, the expectation says how (for_vobject, for_ics), rather than the text being
kept away from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import ics
import pytest
import vobject
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from icalendar import Calendar
from icalendar.parser import unescape_backslash
from ics.utils import unescape_string as ics_unescape
from sqlalchemy import select

from scheduler import calendars
from scheduler.domain import events as event_rules
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.mail import outbox
from scheduler.models import OutboxMessage
from scheduler.text import one_line as stored_line
from scheduler.tokens import feed_token
from scheduler.urls import door_url, registration_url, speaker_door_url
from scheduler.web.feeds import speaker_feed_url

JS = Path(__file__).resolve().parent / "js"
#: Examples per database; each writes and reads eight calendars.
EXAMPLES = 25

#: What escaping, quoting and folding are about, drawn often: escapes already written out, separators,
#: line breaks of every kind, quotes and carets (RFC 6868), controls, wide and combining characters, long runs.
SNIPPETS = ["\\", "\\n", "\\N", "\\,", "\\;", "\\\\", ",", ";", ":", '"', "'", "^", "^'", "^n", "^^", "\n",
            "\r\n", "\r", "\t", "  ", " ", "🎉", "😀", "👩‍👩‍👧", "é", "e\u0301", "日本", "\u00a0", "\u200b", "\ufeff",
            "\x85", "\x9b", "\x00", "\x07", "\x7f", "\u2028", "\u202e", "%", "Lovelace, Ada", "x" * 80, "é" * 40,
            "😀" * 30, "BEGIN:VEVENT", "\r\nATTENDEE:mailto:x@y"]
#: Any character but a lone surrogate (which no UTF-8 text can hold).
CHARACTERS = st.characters(exclude_categories=("Cs",))


def texts(limit: int) -> st.SearchStrategy[str]:
    """Snippets and random characters, sometimes repeated into a long line, at most `limit` characters, not
    blank as one line (every one is required or would be left out)."""
    piece = st.one_of(st.sampled_from(SNIPPETS), st.text(CHARACTERS, min_size=1, max_size=8))
    text = st.lists(piece, min_size=1, max_size=12).map("".join)
    return (st.builds(lambda text, times: (text * times)[:limit], text, st.integers(1, 8))
            .filter(lambda text: calendars.one_line(stored_line(text))))


#: The path of a join link: what a URI may hold (no space, no backslash), commas and semicolons included.
JOIN_PATHS = st.text(st.sampled_from(list("abcXYZ019-._~:/?#[]@!$&'()*+,;=%")), max_size=80)

DRAWS = st.fixed_dictionaries({
    "title": texts(200), "summary": texts(500), "description": texts(3000), "venue": texts(300),
    "tag": texts(120), "speaker": texts(200), "attendee": texts(200), "organizer": texts(100),
    "join": JOIN_PATHS,
})


# --- what Townhall means to write --------------------------------------------------------------

def line(text: str) -> str:
    return calendars.one_line(text)


def block(text: str) -> str:
    """A multi-line TEXT value: control characters stripped, and line breaks, whatever their kind, as \\n."""
    return calendars.strip_controls(text).strip().replace("\r\n", "\n").replace("\r", "\n")


def description(event, speaker: str, join: str) -> str:
    parts = [block(event.summary), f"With: {line(speaker)} (host)", f"Join online: {join}" if join else "",
             block(event.description)]
    return "\n\n".join(part for part in parts if part)


def rfc6868(value: str) -> str:
    """A parameter value as written: what a reader without RFC 6868 shows."""
    return value.replace("^", "^^").replace('"', "^'")


def rfc5545_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def ics_reads(text: str | None) -> str | None:
    """What ics 0.7 makes of correctly escaped text: it undoes \\n before \\\\, so a backslash followed by n
    (written \\\\n) comes back as a backslash and a line break."""
    return text if text is None or "\\" not in text else ics_unescape(rfc5545_escape(text))


# --- what each parser reads --------------------------------------------------------------------

def read_icalendar(text: str, uid: str) -> dict:
    calendar = Calendar.from_ical(text)
    [event] = [e for e in calendar.events if str(e["UID"]) == uid]

    def cn(name):
        return event[name].params.get("CN") if name in event else None

    # NAME and X-WR-CALNAME are unknown to icalendar, which keeps them as written: read as TEXT here.
    return {
        "name": unescape_backslash(str(calendar["NAME"])) if "NAME" in calendar else None,
        "x_wr_calname": unescape_backslash(str(calendar["X-WR-CALNAME"])) if "X-WR-CALNAME" in calendar else None,
        "summary": str(event["SUMMARY"]), "location": str(event["LOCATION"]),
        "description": str(event["DESCRIPTION"]), "categories": [str(c) for c in event.categories],
        "alarms": [str(alarm["DESCRIPTION"]) for alarm in event.walk("VALARM")], "url": str(event["URL"]),
        "organizer_cn": cn("ORGANIZER"), "attendee_cn": cn("ATTENDEE"),
    }


def read_vobject(text: str, uid: str) -> dict:
    calendar = vobject.readOne(text)
    [event] = [e for e in calendar.vevent_list if e.uid.value == uid]

    def first(component, name):
        found = component.contents.get(name)
        return found[0].value if found else None

    def cn(name):
        found = event.contents.get(name)
        return found[0].params.get("CN", [None])[0] if found else None

    return {
        "name": first(calendar, "name"), "x_wr_calname": first(calendar, "x-wr-calname"),
        "summary": event.summary.value, "location": event.location.value, "description": event.description.value,
        "categories": list(event.categories.value), "alarms": [a.description.value for a in event.contents.get(
            "valarm", [])], "url": event.url.value, "organizer_cn": cn("organizer"), "attendee_cn": cn("attendee"),
    }


def read_ics(text: str, uid: str) -> dict:
    calendar = ics.Calendar(text)
    [event] = [e for e in calendar.events if e.uid == uid]
    # ics keeps calendar properties it does not know as written (read as TEXT, by its own unescaping).
    extra = {line.name: ics_unescape(line.value) for line in calendar.extra}
    return {
        "name": extra.get("NAME"), "x_wr_calname": extra.get("X-WR-CALNAME"), "summary": event.name,
        "location": event.location, "description": event.description, "categories": sorted(event.categories),
        "alarms": [alarm.display_text for alarm in event.alarms], "url": event.url,
    }


def read_icaljs(calendar: dict, uid: str) -> dict:
    [event] = [e for e in calendar["events"] if e["uid"] == uid]
    return {
        "name": calendar["name"], "x_wr_calname": calendar["x_wr_calname"], "summary": event["summary"],
        "location": event["location"], "description": event["description"], "categories": event["categories"],
        "alarms": [alarm["description"] for alarm in event["alarms"]], "url": event["url"],
        "organizer_cn": (event["organizer"] or {}).get("cn"), "attendee_cn": (event["attendee"] or {}).get("cn"),
    }


def for_vobject(meant: dict) -> dict:
    """vobject shows parameter values as written (no RFC 6868)."""
    return {key: rfc6868(value) if key.endswith("_cn") and value else value for key, value in meant.items()}


def for_ics(meant: dict) -> dict:
    """ics 0.7: its unescaping (ics_reads); CN left out, as it keeps a quoted value's DQUOTEs and unescapes it."""
    return {key: sorted(map(ics_reads, value)) if isinstance(value, list) else ics_reads(value)
            for key, value in meant.items() if not key.endswith("_cn")}


def check_bytes(name: str, text: str) -> None:
    raw = text.encode("utf-8")
    assert raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b""), name
    assert all(len(folded) <= 75 for folded in raw.split(b"\r\n")), name
    assert not any(b < 0x20 and b not in (0x09, 0x0D, 0x0A) for b in raw), name  # controls stripped, tab kept
    assert not any("\x7f" <= c <= "\x9f" for c in text), name  # DEL and the C1 controls (NEL...) too


def node_or_skip() -> str:
    node = shutil.which("node")
    if node and (JS / "node_modules" / "ical.js").is_dir():
        return node
    reason = "node and tests/js/node_modules/ical.js are needed (make test runs npm ci)"
    if os.environ.get("REQUIRE_NODE") == "1" or os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


# --- the property ------------------------------------------------------------------------------

def test_any_text_reads_back_the_same_in_every_output_and_parser(app, client, now):
    """Every TEXT property of every calendar output, and the CNs, read by icalendar, vobject, ics and ical.js."""
    node = node_or_skip()
    secret = app.config["SECRET_KEY"]
    app.config["MAIL_FROM"] = "events@townhall.test"  # the organiser's name comes from ORGANIZER_NAME
    written: list[tuple[str, str, str, dict]] = []  # (output, calendar, uid, meant) for ical.js at the end
    runs = iter(range(1, 10_000))

    # No shrinking: each example writes to the database and runs four parsers, and a failure's draw is shown
    # whole (the assertion messages name the output and the parser).
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(draw=DRAWS)
    def round_trip(draw):
        note(f"draw={draw!r}")
        # Each example two months after the last: earlier examples' events have left the public feed.
        run = next(runs)
        moment = now + timedelta(days=60 * run)
        app.config["CLOCK"] = lambda: moment
        app.config["ORGANIZER_NAME"] = draw["organizer"]
        join = "https://meet.example.org/" + draw["join"]
        event = event_rules.create_event(
            db.session, now=moment, title=draw["title"], summary=draw["summary"], description=draw["description"],
            venue=draw["venue"], join_url=join, timezone="Europe/Berlin", kind="talk", double_opt_in=False,
            starts_at=moment + timedelta(days=7), ends_at=moment + timedelta(days=7, hours=1),
            reminder_offsets=[3600], tags=["A series", f"text {run}"])
        # The drawn tag comes second in CATEGORIES (tags go by slug), after a separator; its slug stays unique.
        [tag] = [t for t in event.tags if t.slug == f"text-{run}"]
        tag.name = stored_line(draw["tag"])[:120]  # as the domain stores a name
        speaker = event_rules.create_speaker(db.session, now=moment, name=draw["speaker"],
                                             email=f"speaker{run}@speakers.test")
        event_rules.add_speaker(db.session, event, speaker, role="host", now=moment)
        event_rules.publish_event(db.session, event, now=moment)
        registration = signups.sign_up(db.session, event, name=draw["attendee"], email=f"ann{run}@example.org",
                                       now=moment, secret=secret).registration
        speaker_path = speaker_feed_url(db.session, speaker).removeprefix("http://townhall.test")
        db.session.commit()

        outputs = {
            "download": client.get(f"/events/{event.slug}.ics").get_data(as_text=True),
            "public feed": client.get("/calendar.ics").get_data(as_text=True),
            "tag feed": client.get(f"/calendar/{tag.slug}.ics").get_data(as_text=True),
            "personal feed": client.get(f"/feeds/{feed_token(secret, registration)}.ics").get_data(as_text=True),
            "speaker feed": client.get(speaker_path).get_data(as_text=True),
            "confirmation": outbox.fill(db.session.scalar(select(OutboxMessage).where(
                OutboxMessage.kind == "confirmed", OutboxMessage.registration_id == registration.id))).ics,
        }
        event_rules.update_event(db.session, event, now=moment, starts_at=event.starts_at + timedelta(days=1),
                                 ends_at=event.ends_at + timedelta(days=1))
        db.session.commit()
        outputs["update"] = db.session.scalar(select(OutboxMessage.ics).where(
            OutboxMessage.kind == "event_updated", OutboxMessage.registration_id == registration.id))
        event_rules.cancel_event(db.session, event, now=moment)
        db.session.commit()
        outputs["cancel"] = db.session.scalar(select(OutboxMessage.ics).where(
            OutboxMessage.kind == "event_cancelled", OutboxMessage.registration_id == registration.id))

        organizer = line(draw["organizer"].replace("\\", "")) or None  # no backslash in a CN (calendars._param)
        common = {"summary": line(event.title), "location": line(event.venue),
                  "categories": ["A series", line(tag.name)], "alarms": []}
        public = common | {"description": description(event, speaker.name, ""), "url": f"http://townhall.test/events/"
                           f"{event.slug}", "organizer_cn": None, "attendee_cn": None}
        # Those who may join get their own door on Townhall (urls.door_url), never the raw join URL.
        door = door_url(registration)
        private = public | {"description": description(event, speaker.name, door)}
        spoken = public | {"description": description(event, speaker.name, speaker_door_url(event.speakers[0]))}
        invited = private | {"url": registration_url("signup.manage", registration),
                             "organizer_cn": organizer, "attendee_cn": line(registration.name.replace("\\", "")) or None,
                             "name": None, "x_wr_calname": None}

        def named(value: str) -> dict:
            return {"name": line(value), "x_wr_calname": line(value)}

        meant = {
            "download": public | {"name": None, "x_wr_calname": None},
            "public feed": public | named(f"{draw['organizer']} events"),
            "tag feed": public | named(f"{draw['organizer']}: {stored_line(tag.name)}"),
            "personal feed": private | named(f"{draw['organizer']}: my events")
            | {"url": door, "alarms": [line(event.title)]},
            "speaker feed": spoken | named(f"{draw['organizer']}: {stored_line(speaker.name)} speaking"),
            "confirmation": invited,
            "update": invited,
            "cancel": invited | {"description": public["description"]},
        }
        uid = f"event-{event.id}@townhall.test"
        for name, text in outputs.items():
            check_bytes(name, text)
            assert read_icalendar(text, uid) == meant[name], f"{name} read by icalendar"
            assert read_vobject(text, uid) == for_vobject(meant[name]), f"{name} read by vobject"
            assert read_ics(text, uid) == for_ics(meant[name]), f"{name} read by ics"
            written.append((name, text, uid, meant[name]))

    round_trip()
    assert len(written) >= 8 * EXAMPLES
    done = subprocess.run([node, str(JS / "parse_ics.mjs")], input=json.dumps([text for _, text, _, _ in written]),
                          capture_output=True, text=True, cwd=JS, timeout=120, check=True)
    for (name, text, uid, meant), calendar in zip(written, json.loads(done.stdout), strict=True):
        assert read_icaljs(calendar, uid) == meant, f"{name} read by ical.js:\n{text}"


@pytest.mark.parametrize(("text", "read"), [
    ("a\\nb", "a\\\nb"),  # a backslash and an n: ics gives a backslash and a line break
    ("a\\Nb", "a\\\nb"),
    ("a\\,b", "a\\,b"), ("a\\;b", "a\\;b"), ("a\\\\b", "a\\\\b"), ("end\\", "end\\"), ("a,b;c\nd", "a,b;c\nd"),
])
def test_ics_reads_text_as_modelled(text, read):
    """ics_reads is what ics 0.7 makes of correctly escaped text, which icalendar reads back as it was."""
    body = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTAMP:20260101T000000Z\r\n"
            "DTSTART:20260101T000000Z\r\nSUMMARY:" + rfc5545_escape(text) + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    assert str(Calendar.from_ical(body).events[0]["SUMMARY"]) == text
    assert next(iter(ics.Calendar(body).events)).name == read == ics_reads(text)
