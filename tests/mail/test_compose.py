"""Rendering mail templates: counts agree with their nouns ("1 question", "2 questions")."""

from __future__ import annotations

import quopri
import re
from email import policy
from email.parser import BytesParser
from email.policy import Compat32
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scheduler.mail import compose
from scheduler.mail.compose import render


def figures(n: int) -> dict:
    return dict(confirmed=n, waitlisted=n, cancelled=n, pending=n, reminders_sent=n, questions=n)


@pytest.mark.parametrize(("n", "lines"), [
    (1, ["- 1 reminder email delivered", "- 1 question submitted"]),
    (2, ["- 2 reminder emails delivered", "- 2 questions submitted"]),
])
def test_speaker_thanks_counts_agree_with_their_nouns(app, create_event, n, lines):
    event = create_event(title="Plural talk")
    with app.test_request_context():
        _, text, html = render("speaker_thanks", event=event, figures=figures(n), when="", name="Ada",
                               role="speaker")
    assert [line for line in text.splitlines() if line.endswith((" delivered", " submitted"))] == lines
    noun = "question" if n == 1 else "questions"
    assert f"<strong>{n}</strong> {noun} submitted</li>" in html


@pytest.mark.parametrize(("n", "sentence"), [(1, "1 person is registered."), (2, "2 people are registered.")])
def test_speaker_nudge_counts_people(app, create_event, n, sentence):
    event = create_event(title="Plural talk")
    with app.test_request_context():
        _, text, html = render("speaker_nudge", event=event, figures=figures(n), when="", name="Ada",
                               role="speaker", starts_in="1 hour")
    assert sentence in text and sentence in html


# --- the wire bytes: the fast header path and the fixed boundaries change nothing a reader sees ---------------

HEADER_NAMES = st.sampled_from(["Subject", "To", "From", "List-Unsubscribe", "Message-ID", "X-Long-Header-Name"])


#: Words of printable ASCII joined by single spaces (the shortcut's case, up to past the 998-character line),
#: or any ASCII at all (control characters, runs of spaces, line breaks: compat32's own way).
WORD = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
HEADER_VALUES = st.one_of(st.lists(WORD, max_size=60).map(" ".join),
                          st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=200))


@given(name=HEADER_NAMES, value=HEADER_VALUES)
@example(name="Subject", value=("word " * 198)[:989])  # "Subject: " and 989 characters: 998, on one line
@example(name="Subject", value=("word " * 198)[:990] + "s")  # one more: folded
@settings(max_examples=400, deadline=None)
def test_a_header_is_written_as_compat32_writes_it(name, value):
    """The policy's shortcut for plain ASCII values gives compat32's very bytes, whatever the value."""
    def written(policy):
        try:
            return policy.fold_binary(name, value)
        except Exception as exc:  # a value compat32 refuses (an embedded header) is refused alike
            return type(exc)

    assert written(compose._WIRE_POLICY) == written(Compat32(max_line_length=998, linesep="\r\n"))


BODY_TEXT = st.text(st.sampled_from(list("ab .=\t\r\n-") + ["é", "学", "🎉", "\u2028", "\x0c"]), max_size=400)


@given(body=BODY_TEXT)
@example(body="a" * 74 + " \n")  # binascii writes "=20" as the 77th character: the email package's encoder
@example(body="x" * 200 + "\r\n" + "y " * 50 + "\r" + "é" * 40)
@settings(max_examples=500, deadline=None)
def test_quoted_printable_bodies_read_back_as_written_within_the_line_limit(body):
    """Every line at most 76 characters, no line ending in white space, and the text back as it was, line
    ends as the wire writes them (any of CRLF, CR, LF is a line end)."""
    encoded = compose.quoted_printable(body)
    lines = encoded.splitlines()
    assert all(len(line) <= compose.QP_LINE for line in lines), [line for line in lines if len(line) > 76]
    assert not any(line.endswith((" ", "\t")) for line in lines)
    decoded = quopri.decodestring(encoded.encode("ascii")).decode("utf-8")
    wire = re.compile(r"\r\n|\r|\n")
    assert wire.sub("\n", decoded) == wire.sub("\n", body)


def test_the_parts_read_back_as_written_even_when_they_hold_boundary_like_text(app, now):
    """A boundary starts with "=_": text that looks like one (or like any boundary) stays inside its part."""
    tricky = "--=_0123456789abcdef0123456789abcdef\n=_ = =3D\n--\n" + "é, 学, 🎉\n"
    row = SimpleNamespace(body_text="Hello\n" + tricky, body_html=f"<p>{tricky}</p>", ics="BEGIN:VCALENDAR\r\n"
                          f"X-NOTE:{tricky.replace(chr(10), ' ')}\r\nEND:VCALENDAR\r\n", ics_method="REQUEST",
                          to_addr="ada@example.org", to_name="Ada Lovelace", subject="Starting soon: « Q&A »",
                          message_id=None, dedupe_key="test:1", unsubscribe_url="https://townhall.test/u/1")
    prepared = compose.prepare(row, app.config, now=now)
    message = BytesParser(policy=policy.default).parsebytes(prepared.data)
    assert message["Subject"] == "Starting soon: « Q&A »"
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    boundaries = {part.get_boundary() for part in message.walk() if part.is_multipart()}
    assert len(boundaries) == 2 and all(b.startswith("=_") for b in boundaries)
    texts = {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}
    # Text parts travel with CRLF line ends, as SMTP wants them.
    assert texts["text/plain"].replace("\r\n", "\n") == row.body_text
    assert texts["text/html"].replace("\r\n", "\n") == row.body_html
    assert texts["text/calendar"] == row.ics
    assert texts["application/ics"] == row.ics.encode()
