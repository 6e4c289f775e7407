"""Rendering mail templates: counts agree with their nouns ("1 question", "2 questions")."""

from __future__ import annotations

import pytest

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
