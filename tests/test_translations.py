"""Translations (issue 21): every marked string is in every catalog, translated, with its placeholders; the
compiled catalogs are those of the .po files; and the mail a registrant gets is in their language.

The mail snapshots live in tests/snapshots/mail/; UPDATE_SNAPSHOTS=1 writes them again from the templates.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from sqlalchemy import select

from scheduler import dispatch
from scheduler.domain import events as event_rules
from scheduler.domain import signups
from scheduler.extensions import db
from scheduler.languages import DEFAULT, LANGUAGES
from scheduler.models import OutboxMessage, PlannedJob
from tests.support import outbox

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = ROOT / "scheduler" / "translations"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "mail"
TRANSLATED = [code for code in LANGUAGES if code != DEFAULT]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _keywords() -> dict:
    """Babel's keywords and the Makefile's own (BABEL_KEYWORDS, DOMAIN_ERRORS): one list for both."""
    makefile = (ROOT / "Makefile").read_text()
    keywords = dict(DEFAULT_KEYWORDS)
    for name in re.search(r"^DOMAIN_ERRORS := (.*?)(?<!\\)$", makefile, re.M | re.S).group(1).replace("\\", " ").split():
        keywords[name] = None
    for spec in re.findall(r"-k (\S+)", re.search(r"^BABEL_KEYWORDS := (.*)$", makefile, re.M).group(1)):
        name, _, args = spec.partition(":")
        if name.startswith("$("):
            continue
        keywords[name] = tuple(int(a) for a in args.split(",")) if args else None
    return keywords


@pytest.fixture(scope="module")
def source_ids() -> set:
    """The message ids in the code and templates now, extracted in-process as `make i18n-extract` does."""
    with open(ROOT / "babel.cfg") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=_keywords(), strip_comment_tags=True):
        found.add(message if isinstance(message, str) else tuple(message[:2]))
    return found


def _catalog(code: str):
    with open(CATALOGS / code / "LC_MESSAGES" / "messages.po", "rb") as po:
        return read_po(po, locale=code)


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_string_of_the_source_is_in_the_catalog(code, source_ids):
    catalog = _catalog(code)
    in_catalog = {m.id for m in catalog if m.id}
    missing = sorted(str(i) for i in source_ids - in_catalog)
    assert not missing, f"{len(missing)} strings missing from {code} (make i18n-update, then translate):\n" + \
        "\n".join(missing[:40])


@pytest.mark.parametrize("code", TRANSLATED)
def test_the_catalog_has_no_fuzzy_or_empty_entry_and_keeps_every_placeholder(code):
    catalog = _catalog(code)
    assert not catalog.fuzzy, f"{code}: the catalog's header is fuzzy"
    problems = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = set().union(*(PLACEHOLDER.findall(i) for i in ids))
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if len(strings) != catalog.num_plurals and isinstance(message.id, tuple):
            problems.append(f"{len(strings)} plural forms, not {catalog.num_plurals}: {message.id!r}")
        for string in strings:
            if not string.strip():
                problems.append(f"empty: {message.id!r}")
            elif set(PLACEHOLDER.findall(string)) - wanted:
                problems.append(f"unknown placeholder in {string!r} for {message.id!r}")
            elif isinstance(message.id, str) and set(PLACEHOLDER.findall(string)) != wanted:
                problems.append(f"placeholder dropped in {string!r} for {message.id!r}")
    assert not problems, f"{code}:\n" + "\n".join(problems[:40])


@pytest.mark.parametrize("code", TRANSLATED)
def test_the_plural_forms_are_babels_for_the_language(code):
    """The Plural-Forms header is the one `pybabel init` writes for the language (CLDR's rules)."""
    from babel.messages.catalog import Catalog

    assert _catalog(code).plural_forms == Catalog(locale=code).plural_forms


@pytest.mark.parametrize("code", TRANSLATED)
def test_the_compiled_catalog_is_the_po_file(code):
    """The committed .mo says what the .po says (make i18n-compile after editing a .po)."""
    catalog = _catalog(code)
    with open(CATALOGS / code / "LC_MESSAGES" / "messages.mo", "rb") as mo:
        compiled = read_mo(mo)
    def plain(value):
        return value if isinstance(value, str) else tuple(value)

    expected = {plain(m.id): plain(m.string) for m in catalog if m.id}
    actual = {plain(m.id): plain(m.string) for m in compiled if m.id}
    stale = sorted(str(k) for k in expected if actual.get(k) != expected[k])
    assert not stale, f"{code}: messages.mo is older than messages.po (make i18n-compile): {stale[:10]}"


# --- pages ---------------------------------------------------------------------------------------


def test_a_page_is_in_the_browsers_language_then_in_the_one_chosen(client, create_event):
    event = create_event(title="Open Source AI")
    german = client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    page = german.get_data(as_text=True)
    assert '<html lang="de">' in page and "Kommende Veranstaltungen" in page
    assert {"Accept-Language", "Cookie"} <= set(german.vary)
    chosen = client.get(f"/language?lang=zh_Hans&next=/events/{event.slug}")
    assert chosen.status_code == 303 and chosen.headers["Location"].endswith(f"/events/{event.slug}")
    page = client.get(f"/events/{event.slug}", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page and "2026年11月9日星期一" in page


def test_the_signup_forms_messages_are_in_the_visitors_language(client, create_event):
    """Townhall's own messages and WTForms' (through Flask-WTF's I18N) alike."""
    from tests.support import signup

    event = create_event(title="Formular")
    client.set_cookie("lang", "de")
    page = signup(client, event, name="x" * 201, consent="").get_data(as_text=True)
    assert "Feld kann nicht länger als 200 Zeichen sein." in page
    assert "Bitte stimmen Sie zu, damit wir Sie anmelden können." in page
    assert "Bitte korrigieren Sie die unten markierten Felder." in page


def test_the_manage_page_changes_the_language_of_later_mail(app, client, create_event):
    from tests.support import csrf_token, registration, token_for

    event = create_event(title="Umzug")
    signups.sign_up(db.session, event, name="Ada", email="ada@example.org", now=NOW,
                    secret=app.config["SECRET_KEY"], language="de")
    db.session.commit()
    token = token_for(app, registration("ada@example.org"))
    refused = client.post(f"/r/{token}/language", data={"language": "xx", "csrf_token": csrf_token(client, f"/r/{token}")})
    assert refused.status_code == 303 and registration("ada@example.org").language == "de"
    answer = client.post(f"/r/{token}/language", data={"language": "es", "csrf_token": csrf_token(client, f"/r/{token}")})
    assert answer.status_code == 303 and "lang=es" in answer.headers["Set-Cookie"]
    assert registration("ada@example.org").language == "es"
    assert "Tus correos están ahora en Español." in client.get(f"/r/{token}").get_data(as_text=True)


def test_the_language_menu_goes_back_only_to_this_site(client):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.get("/language", query_string={"lang": "fr", "next": target})
        assert response.headers["Location"] in ("/", "http://townhall.test/")
    assert "lang=" not in client.get("/language?lang=xx&next=/").headers.get("Set-Cookie", "")


def test_a_cached_page_is_kept_per_language(client, create_event):
    create_event(title="Cached talk")
    first = client.get("/", headers={"Accept-Language": "fr"})
    assert "Événements à venir" in first.get_data(as_text=True)
    second = client.get("/", headers={"Accept-Language": "es"})
    assert "Próximos eventos" in second.get_data(as_text=True)
    assert first.headers["ETag"] != second.headers["ETag"]
    assert "Événements à venir" in client.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)


# --- mail: a snapshot of each kind in each language ---------------------------------------------

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
START = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
#: Private links hold tokens (made from ids, which differ between databases): the snapshots show their path.
TOKEN = re.compile(r"((?:https?|webcal)://townhall\.test/(?:r|feeds|door(?:/s)?/\d+)/)[A-Za-z0-9_-]{20,}")


@pytest.fixture
def now() -> datetime:
    return NOW


def _shown(row: OutboxMessage) -> str:
    text = f"Subject: {row.subject}\n\n--- text ---\n{row.body_text}\n--- html ---\n{row.body_html}"
    return TOKEN.sub(r"\1<token>", text)


def _check(name: str, row: OutboxMessage) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    # The greeting names them in every language (a reminder's stand-in for the name was once lost in Chinese).
    assert "Ada Lovelace" in row.body_text and "Ada Lovelace" in row.body_html, name
    shown = _shown(row)
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(shown, encoding="utf-8")
    assert shown == path.read_text(encoding="utf-8"), f"{path} differs (UPDATE_SNAPSHOTS=1 to write it again)"


def _fire_reminder(app, offset: int) -> OutboxMessage:
    job = db.session.scalar(select(PlannedJob).where(PlannedJob.kind == "reminder", PlannedJob.offset_seconds == offset))
    fired_at = job.due_at + timedelta(seconds=1)
    db.session.commit()
    app.config["CLOCK"] = lambda: fired_at
    assert dispatch.fire(db.session, job.id, worker="test", clock=lambda: fired_at).outcome == "done"
    return outbox("reminder")[-1]


@pytest.mark.parametrize("code", list(LANGUAGES))
def test_the_registrants_mail_is_in_their_language(app, create_event, code):
    """Confirmation, a reminder, an update and a cancellation, composed by the outbox in the registrant's language."""
    event = create_event(title="PyTorch: A Foundation for Open Source AI/ML", timezone="America/Los_Angeles",
                         starts_at=START, join_url="https://meet.example.org/pytorch", reminder_offsets=[86400])
    ada = signups.sign_up(db.session, event, name="Ada Lovelace", email="ada@example.org", timezone="Europe/Berlin",
                          now=NOW, secret=app.config["SECRET_KEY"], language=code).registration
    db.session.commit()
    _check(f"confirmed.{code}", outbox("confirmed")[-1])
    _check(f"reminder.{code}", _fire_reminder(app, 86400))
    later = NOW + timedelta(days=1)
    event_rules.update_event(db.session, event, now=later, starts_at=START + timedelta(hours=1),
                             ends_at=START + timedelta(hours=2))
    db.session.commit()
    _check(f"event_updated.{code}", outbox("event_updated")[-1])
    signups.cancel_registration(db.session, db.session.get(type(ada), ada.id), now=later)
    db.session.commit()
    _check(f"cancelled.{code}", outbox("cancelled")[-1])


def test_german_mail_has_german_dates(app, create_event):
    event = create_event(title="Sprechstunde", timezone="Europe/Berlin", starts_at=START)
    signups.sign_up(db.session, event, name="Grace", email="grace@example.org", timezone="Europe/Berlin",
                    now=NOW, secret=app.config["SECRET_KEY"], language="de")
    db.session.commit()
    row = outbox("confirmed")[-1]
    assert row.subject == "Sie sind angemeldet: Sprechstunde"
    assert "Donnerstag, 3. Dezember 2026, 18:00–19:00 MEZ (Europe/Berlin)" in row.body_text
    assert '<html lang="de">' in row.body_html


def test_a_speakers_mail_is_in_the_speakers_language(app, create_event):
    event = create_event(title="Panel", timezone="Europe/Paris", starts_at=START, speakers=[("Marie Curie", "host")])
    event.speakers[0].speaker.language = "fr"
    db.session.commit()
    job = db.session.scalar(select(PlannedJob).where(PlannedJob.kind == "briefing"))
    fired_at = job.due_at + timedelta(seconds=1)
    db.session.commit()
    app.config["CLOCK"] = lambda: fired_at
    assert dispatch.fire(db.session, job.id, worker="test", clock=lambda: fired_at).outcome == "done"
    row = outbox("speaker_briefing")[-1]
    assert row.subject == "Briefing intervenant : Panel"
    assert "où vous êtes hôte" in row.body_text and "jeudi 3 décembre 2026, 18:00–19:00" in row.body_text


def test_a_domain_refusal_is_translated_with_its_values(app):
    """A domain error carries its message as written and its values apart: the web shows it translated."""
    from flask_babel import force_locale

    from scheduler.domain.offsets import parse_offset
    from scheduler.errors import InvalidInput
    from scheduler.labels import refusal_text

    with pytest.raises(InvalidInput) as refused:
        parse_offset("soon")
    assert refused.value.message == "“soon” is not an offset like 1d, 2h or 10m."
    with force_locale("de"):
        assert refusal_text(refused.value) == "„soon“ ist kein Abstand wie 1d, 2h oder 10m."
    with force_locale("fr"):
        assert refusal_text(InvalidInput()) == "Certains champs ne sont pas valides."


def test_the_domains_field_checks_are_translated(app, now):
    """validate()'s messages (domain/events.py, domain/series.py) are in the catalogs: the web shows them translated."""
    from flask_babel import force_locale

    from scheduler.domain import events as event_rules
    from scheduler.domain import series as series_rules
    from scheduler.errors import InvalidInput
    from scheduler.web.refusals import fields_of

    event = event_rules.validate({"title": "", "slug": "a", "kind": "lecture", "timezone": "UTC",
                                  "starts_at": now, "ends_at": now, "board_mode": "chaos"})
    refused = InvalidInput(fields={**event, **series_rules.validate({"freq": "daily"}, now=now)})
    with force_locale("de"):
        fields = fields_of(refused)
    assert fields["title"] == ["Ein Titel ist erforderlich."]
    assert fields["ends_at"] == ["Das Ende muss nach dem Beginn liegen."]
    assert fields["freq"] == ["Wählen Sie wöchentlich oder monatlich."]
    assert fields["kind"] == ["Wählen Sie eines von: talk, panel, live discussion, workshop, meetup."]
    assert fields["board_mode"] == ["Wählen Sie eines von: open, moderated."]
    with force_locale("zh_Hans"):
        assert fields_of(refused)["ends_at"] == ["结束时间必须晚于开始时间。"]


def test_the_choices_written_whole_name_every_choice(now):
    """The messages are literals (for the catalogs): they must follow the lists they name."""
    from scheduler.domain import events as event_rules
    from scheduler.models.board import BOARD_MODES
    from scheduler.models.events import EVENT_KINDS

    refused = event_rules.validate({"kind": "lecture", "board_mode": "chaos"})
    assert refused["kind"] == ["Choose one of: " + ", ".join(EVENT_KINDS) + "."]
    assert refused["board_mode"] == ["Choose one of: " + ", ".join(BOARD_MODES) + "."]
