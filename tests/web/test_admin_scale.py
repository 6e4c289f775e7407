"""The organiser's pages at scale (issue 18): registrants 50 a page with search and state filters, the CSV
export streamed in batches, the signups chart in a bounded number of bins, the dashboard's counts in a
bounded number of statements, the outbox in pages, a bounded list of speakers to pick from."""

from __future__ import annotations

import csv
import io
import re
import secrets
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask import request_finished
from flask.testing import FlaskClient
from sqlalchemy import insert, update

from scheduler.domain import registrants
from scheduler.extensions import db
from scheduler.models import Event, OutboxMessage, Registration, Speaker
from tests.support import Auth, signup, statements

ROW = re.compile(r'<tr class="registration state-(\w+)">\s*<td data-label="Name">([^<]*)</td>\s*'
                 r'<td data-label="Email" class="address">([^<]*)</td>\s*<td data-label="State">[^<]*</td>\s*'
                 r'<td data-label="Waitlist">(\d*)</td>')


def add_people(event_id: int, people: list[tuple[str, str, str]], *, now, spacing=timedelta(0)) -> None:
    """Insert registrations (name, email, state) in one statement, signed up `spacing` apart ending at `now`;
    the waitlisted get waitlist numbers in that order (to a new event: the numbers start at 1)."""
    rows, seq = [], 0
    for i, (name, email, state) in enumerate(people):
        created = now - spacing * (len(people) - 1 - i)
        if state == "waitlisted":
            seq += 1
        rows.append(dict(event_id=event_id, name=name, email=email, email_key=email.lower(), question="",
                         timezone="Europe/Berlin", state=state, waitlist_seq=seq if state == "waitlisted" else None,
                         token_nonce=secrets.token_hex(16), reminders_opt_out=False, ics_sequence=0, consent_at=created,
                         created_at=created, updated_at=created, email_verified_at=created,
                         confirmed_at=created if state == "confirmed" else None,
                         cancelled_at=created if state == "cancelled" else None))
    db.session.execute(insert(Registration), rows)
    # What signing up would have counted: the seats held and the last waitlist number.
    held = sum(row["state"] in ("confirmed", "pending") for row in rows)
    db.session.execute(update(Event).where(Event.id == event_id)
                       .values(seats_taken=Event.seats_taken + held, waitlist_last=Event.waitlist_last + seq))
    db.session.commit()


def berlin(moment) -> str:
    local = moment.astimezone(ZoneInfo("Europe/Berlin"))
    return f"{local.day} {local:%b %Y %H:%M} {local.tzname()}"


def listed(page: str) -> list[tuple[str, str, str, str]]:
    """(state, name, email, waitlist position) of each row of a registrations page."""
    return ROW.findall(page)


def links(page: str, rel: str) -> list[dict]:
    """The query of each pager link with this rel, as a dict of single values."""
    hrefs = re.findall(rf'<a rel="{rel}" href="([^"]+)"', page)
    return [{k: v[0] for k, v in parse_qs(urlsplit(href.replace("&amp;", "&")).query).items()} for href in hrefs]


# --- the registrations list, 50 a page ----------------------------------------------------------

def test_registrations_list_shows_50_a_page_with_next_and_previous_links(auth, create_event, now):
    event = create_event()
    add_people(event.id, [(f"Person {i:03}", f"p{i:03}@example.org", "confirmed") for i in range(120)], now=now,
               spacing=timedelta(minutes=1))
    path = f"/admin/events/{event.id}/registrations"

    first = auth.client.get(path).get_data(as_text=True)
    second = auth.client.get(path + "?page=2").get_data(as_text=True)
    third = auth.client.get(path + "?page=3").get_data(as_text=True)

    assert [len(listed(p)) for p in (first, second, third)] == [50, 50, 20]
    assert [row[2] for p in (first, second, third) for row in listed(p)] == [f"p{i:03}@example.org" for i in range(120)]
    assert "1–50 of 120." in first and "51–100 of 120." in second and "101–120 of 120." in third
    assert "Page 1 of 3" in first and "Page 3 of 3" in third
    assert (links(first, "prev"), links(first, "next")) == ([], [{"page": "2"}])
    assert (links(second, "prev"), links(second, "next")) == ([{}], [{"page": "3"}])
    assert (links(third, "prev"), links(third, "next")) == ([{"page": "2"}], [])


def test_registrations_search_finds_part_of_a_name_or_address_in_any_case(auth, create_event, now):
    event = create_event()
    add_people(event.id, [("Ada Lovelace", "ada@analytical.example", "confirmed"),
                          ("Grace Hopper", "GRACE@Navy.example", "confirmed"),
                          ("Alan Turing", "alan@bletchley.example", "waitlisted"),
                          ("100% Sure_Thing", "odd@example.org", "confirmed")], now=now)
    path = f"/admin/events/{event.id}/registrations"

    def found(query: str) -> list[str]:
        response = auth.client.get(path, query_string={"q": query})
        assert response.status_code == 200
        return [name for _, name, _, _ in listed(response.get_data(as_text=True))]

    assert found("LOVELACE") == ["Ada Lovelace"]
    assert found("navy.EXAMPLE") == ["Grace Hopper"]
    assert found("  a  ") == ["Ada Lovelace", "Grace Hopper", "100% Sure_Thing", "Alan Turing"]
    # LIKE's wildcards are searched for as they are: "e_t" is not "let" in bletchley.
    assert found("%") == ["100% Sure_Thing"]
    assert found("e_t") == ["100% Sure_Thing"]
    assert found("nobody") == []
    page = auth.client.get(path, query_string={"q": "nobody"}).get_data(as_text=True)
    assert "No registrations matching “nobody”." in page
    assert auth.client.get(path, query_string={"q": "ada\x00\x1f"}).status_code == 200
    assert found("x" * 5000) == []


def test_search_state_filter_and_pages_combine_and_ranks_stay_the_waitlists(auth, create_event, now):
    """Waitlisted Smiths on page 2: their positions are their places in the whole waitlist, not in the search."""
    event = create_event(capacity=10)
    people = [(f"Smith {i}" if i % 2 else f"Jones {i}", f"w{i}@example.org", "waitlisted") for i in range(130)]
    people += [(f"Smith confirmed {i}", f"c{i}@example.org", "confirmed") for i in range(10)]
    add_people(event.id, people, now=now, spacing=timedelta(seconds=30))
    path = f"/admin/events/{event.id}/registrations"

    first = auth.client.get(path, query_string={"state": "waitlisted", "q": "smith"}).get_data(as_text=True)
    second = auth.client.get(path, query_string={"state": "waitlisted", "q": "smith", "page": 2}).get_data(as_text=True)

    rows = listed(first) + listed(second)
    assert len(listed(first)) == 50 and len(rows) == 65
    assert {state for state, *_ in rows} == {"waitlisted"}
    assert [(name, position) for _, name, _, position in rows] == [(f"Smith {i}", str(i + 1)) for i in range(1, 130, 2)]
    assert links(first, "next") == [{"state": "waitlisted", "q": "smith", "page": "2"}]
    assert links(second, "prev") == [{"state": "waitlisted", "q": "smith"}]
    assert "51–65 of 65 matching “smith”." in second
    # The state links keep the search, the search form keeps the state.
    assert f'href="/admin/events/{event.id}/registrations?state=confirmed&amp;q=smith"' in first
    assert '<input type="hidden" name="state" value="waitlisted">' in first
    confirmed = auth.client.get(path, query_string={"state": "confirmed", "q": "SMITH"}).get_data(as_text=True)
    assert [name for _, name, _, _ in listed(confirmed)] == [f"Smith confirmed {i}" for i in range(10)]


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "²", "\x00", "99999999999999999999", "1" * 5000])
def test_a_page_number_that_is_no_page_number_is_404(auth, create_event, page):
    event = create_event()
    assert auth.client.get(f"/admin/events/{event.id}/registrations", query_string={"page": page}).status_code == 404


def test_a_page_past_the_last_goes_to_the_last(auth, create_event, now):
    event = create_event()
    add_people(event.id, [(f"P{i}", f"p{i}@example.org", "confirmed") for i in range(60)], now=now)
    path = f"/admin/events/{event.id}/registrations"
    response = auth.client.get(path, query_string={"page": 7, "state": "confirmed", "q": "p"})
    assert (response.status_code, response.headers["Location"]) == (302, path + "?state=confirmed&q=p&page=2")
    response = auth.client.get(path, query_string={"page": 2, "state": "waitlisted"})
    assert (response.status_code, response.headers["Location"]) == (302, path + "?state=waitlisted")
    assert auth.client.get(path, query_string={"page": 2147483647}).status_code == 302


def test_removing_someone_returns_to_the_same_page_search_and_state(auth, create_event, now):
    event = create_event()
    add_people(event.id, [(f"Person {i:03}", f"p{i:03}@example.org", "confirmed") for i in range(80)], now=now,
               spacing=timedelta(minutes=1))
    path = f"/admin/events/{event.id}/registrations"
    page = auth.client.get(path, query_string={"state": "confirmed", "q": "person", "page": 2}).get_data(as_text=True)
    action = re.search(r'action="(/admin/registrations/\d+/remove[^"]*)"', page).group(1).replace("&amp;", "&")
    response = auth.post(action)
    assert response.status_code == 303
    assert response.headers["Location"] == path + "?state=confirmed&q=person&page=2"


# --- the CSV export ------------------------------------------------------------------------------

@contextmanager
def responses_of(app):
    """The response objects the app hands to the server (before the test client reads them)."""
    seen = []

    def record(sender, response, **extra):
        seen.append(response)

    with request_finished.connected_to(record, app):
        yield seen


def streaming_client(app):
    """A logged-in test client whose requests run in the test's app context, as Flask's own does.

    The `auth` client (CommittedClient) commits the test's session when its request returns, which for a
    streamed response is before the body is read: it would end the transaction the export reads from.
    """
    client = FlaskClient(app, use_cookies=True)
    assert Auth(client).login().status_code == 302
    return client


def test_registrations_csv_is_streamed_with_the_same_content(app, auth, create_event):
    event = create_event(capacity=1)
    signup(auth.client, event, name='=HYPERLINK("http://evil.example","x")', email="a@example.org",
           question="+1 @SUM(A1) -2")
    signup(auth.client, event, name="<b>Bob</b>, \"quoted\"", email="b@example.org", timezone="Asia/Tokyo")
    signup(auth.client, event, name="\uff1d1+1", email="c@example.org")  # a fullwidth equals sign
    client = streaming_client(app)
    with responses_of(app) as seen:
        response = client.get(f"/admin/events/{event.id}/registrations.csv")

    assert len(seen) == 1 and seen[0].is_streamed and "Content-Length" not in response.headers
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{event.slug}-registrations.csv"'
    at = "2026-11-02T12:00:00+00:00"
    assert response.get_data(as_text=True) == (
        "\ufeffname,email,state,waitlist_position,question,timezone,reminders,registered_at,confirmed_at,"
        "cancelled_at\r\n"
        f"\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",a@example.org,confirmed,,'+1 @SUM(A1) -2,"
        f"Europe/London,on,{at},{at},\r\n"
        f"\"<b>Bob</b>, \"\"quoted\"\"\",b@example.org,waitlisted,1,,Asia/Tokyo,on,{at},,\r\n"
        f"'\uff1d1+1,c@example.org,waitlisted,2,,Europe/London,on,{at},,\r\n")


def test_registrations_csv_of_thousands_is_sent_in_batches(app, admin_user, create_event, now):
    event = create_event(capacity=10)
    people = [(f"P{i}", f"p{i}@example.org", "waitlisted" if i % 3 == 0 else "confirmed") for i in range(2500)]
    add_people(event.id, people, now=now)
    client = streaming_client(app)
    response = client.get(f"/admin/events/{event.id}/registrations.csv")
    chunks = list(response.response)
    assert registrants.EXPORT_BATCH == 1000
    assert len(chunks) == 3  # a batch at a time, the header with the first
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode().lstrip("\ufeff"))))
    assert len(rows) == 2501
    waitlisted = [row for row in rows[1:] if row[2] == "waitlisted"]
    assert [row[3] for row in waitlisted] == [str(n) for n in range(1, 835)]
    assert [row[0] for row in waitlisted][:3] == ["P0", "P3", "P6"]
    state = client.get(f"/admin/events/{event.id}/registrations.csv?state=waitlisted").get_data(as_text=True)
    assert len(state.splitlines()) == 835


def test_registrations_csv_of_nobody_is_the_header(auth, create_event):
    event = create_event()
    body = auth.client.get(f"/admin/events/{event.id}/registrations.csv").get_data(as_text=True)
    assert body == ("\ufeffname,email,state,waitlist_position,question,timezone,reminders,registered_at,"
                    "confirmed_at,cancelled_at\r\n")


# --- the signups chart ---------------------------------------------------------------------------

def test_signups_chart_of_thousands_has_at_most_200_steps_and_counts_what_the_header_counts(auth, create_event, now):
    event = create_event(capacity=2000)
    states = ["confirmed"] * 2000 + ["waitlisted"] * 700 + ["cancelled"] * 300
    people = [(f"P{i}", f"p{i}@example.org", state) for i, state in enumerate(states)]
    people = people[::3] + people[1::3] + people[2::3]  # the states mixed over time
    add_people(event.id, people, now=now, spacing=timedelta(minutes=7))

    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)

    registered = re.search(r'<path class="line-registered" d="([^"]+)"', page).group(1)
    confirmed = re.search(r'<path class="line-confirmed" d="([^"]+)"', page).group(1)
    assert 2 < registered.count("V") <= registrants.CHART_BINS + 1
    assert 2 < confirmed.count("V") <= registrants.CHART_BINS + 1
    drawn = dict(re.findall(r'<circle class="end-(\w+)"[^>]* data-count="(\d+)"', page))
    assert drawn == {"registered": "2700", "confirmed": "2000"}
    assert "<li><strong>2000</strong> confirmed</li>" in page and "<li><strong>700</strong> waitlisted</li>" in page
    assert "Cancelled and expired signups are not counted (300)." in page
    times = [now - timedelta(minutes=7) * (2999 - i) for i, (_, _, state) in enumerate(people) if state != "cancelled"]
    desc = re.search(r'<desc id="chart-signups-desc-\w+">([^<]+)</desc>', page).group(1)
    assert desc.startswith("2700 signups between ")
    assert desc.endswith(f"the first at {berlin(min(times))}, the latest at {berlin(max(times))}.")
    assert len(page) < 60_000


def test_signup_bins_add_up_and_keep_the_first_and_last_signup(app, create_event, now):
    event = create_event()
    people = [(f"P{i}", f"p{i}@example.org", ("confirmed", "pending", "expired")[i % 3]) for i in range(1500)]
    add_people(event.id, people, now=now, spacing=timedelta(minutes=1))
    start = now - timedelta(days=5)
    bins = registrants.signup_bins(db.session, event.id, start=start, end=now, bins=50)
    assert 1 < len(bins.registered) <= 50 and 1 < len(bins.confirmed) <= 50
    assert sum(n for *_, n in bins.registered) == 1000 and sum(n for *_, n in bins.confirmed) == 500
    assert bins.left_out == 500
    assert bins.registered[0][0] == now - timedelta(minutes=1499) and bins.registered[-1][1] == now - timedelta(minutes=1)
    assert all(a[1] < b[0] for a, b in zip(bins.registered, bins.registered[1:], strict=False))
    # Equal widths: a 5-day span in 50 bins of whole seconds.
    assert all(last - first < timedelta(seconds=5 * 86400 // 50 + 1) for first, last, _ in bins.registered)


def test_signups_outside_the_span_asked_for_widen_it(app, create_event, now):
    """Signups before `start` (brought in from elsewhere) and seats given after `end`: the bins cover them."""
    event = create_event()
    people = [(f"P{i}", f"p{i}@example.org", ("confirmed", "waitlisted", "cancelled")[i % 3]) for i in range(300)]
    add_people(event.id, people, now=now, spacing=timedelta(hours=1))  # over 12 days up to now
    late = now + timedelta(days=2)
    db.session.execute(update(Registration).where(Registration.event_id == event.id, Registration.email == "p0@example.org")
                       .values(confirmed_at=late))
    db.session.commit()
    start, end = now - timedelta(days=3), now
    bins = registrants.signup_bins(db.session, event.id, start=start, end=end, bins=40)
    assert sum(n for *_, n in bins.registered) == 200 and sum(n for *_, n in bins.confirmed) == 100
    assert bins.left_out == 100
    assert bins.registered[0][0] == now - timedelta(hours=299) and bins.registered[-1][1] == now - timedelta(hours=1)
    assert bins.confirmed[-1][1] == late
    assert 1 < len(bins.registered) <= 40 and 1 < len(bins.confirmed) <= 40
    # Equal widths over the widened span (from the first signup to the late seat), not over start..end.
    widened = (late - (now - timedelta(hours=299))).total_seconds()
    assert all(last - first <= timedelta(seconds=widened // 40 + 1) for first, last, _ in bins.registered)
    assert max(last - first for first, last, _ in bins.registered) > timedelta(seconds=3 * 86400 // 40 + 1)


def test_an_event_entered_after_it_ended_still_gets_its_bins(app, create_event, now):
    """The span asked for is empty or backwards (the event's end before its creation): the data's own is used."""
    event = create_event()
    add_people(event.id, [(f"P{i}", f"p{i}@example.org", "confirmed") for i in range(120)], now=now - timedelta(days=9),
               spacing=timedelta(minutes=30))
    for start, end in ((now, now - timedelta(days=8)), (now, now - timedelta(seconds=10)), (now, now)):
        bins = registrants.signup_bins(db.session, event.id, start=start, end=end, bins=20)
        assert sum(n for *_, n in bins.registered) == 120 and sum(n for *_, n in bins.confirmed) == 120
        assert 1 < len(bins.registered) <= 20
        assert bins.registered[-1][1] == now - timedelta(days=9)


def test_an_older_sqlite_counts_the_same_bins_with_strftime(app, backend, create_event, now, monkeypatch):
    """unixepoch() came with SQLite 3.38; before it the chart reads epoch seconds with strftime('%s')."""
    if backend != "sqlite":
        pytest.skip("SQLite's version decides between unixepoch() and strftime()")
    event = create_event()
    add_people(event.id, [(f"P{i}", f"p{i}@example.org", ("confirmed", "pending")[i % 2]) for i in range(400)],
               now=now, spacing=timedelta(minutes=13, seconds=7))
    start = now - timedelta(days=5)
    current = registrants.signup_bins(db.session, event.id, start=start, end=now, bins=30)
    with statements() as newer:
        registrants.signup_bins(db.session, event.id, start=start, end=now, bins=30)
    monkeypatch.setattr(db.engine.dialect, "server_version_info", (3, 37, 2))  # the library we cannot choose
    with statements() as older:
        assert registrants.signup_bins(db.session, event.id, start=start, end=now, bins=30) == current
    assert any("unixepoch" in s for s in newer) and not any("unixepoch" in s for s in older)
    assert any("strftime" in s for s in older)


def test_no_active_signup_draws_no_line_and_counts_those_left_out(app, create_event, now):
    event = create_event()
    add_people(event.id, [("A", "a@example.org", "cancelled"), ("B", "b@example.org", "expired")], now=now)
    bins = registrants.signup_bins(db.session, event.id, start=now - timedelta(days=1), end=now)
    assert (bins.registered, bins.confirmed, bins.left_out) == ([], [], 2)


# --- the dashboard -------------------------------------------------------------------------------


def add_events(count: int, *, now, first: int = 0) -> None:
    db.session.execute(insert(Event), [
        dict(slug=f"bulk-{n}", title=f"Bulk event {n}", starts_at=now + timedelta(days=30, hours=n),
             ends_at=now + timedelta(days=30, hours=n + 1), timezone="UTC", status="published", capacity=20)
        for n in range(first, first + count)])
    db.session.commit()


def test_dashboard_counts_are_right_in_a_number_of_statements_that_does_not_grow(auth, create_event, now):
    for n in range(3):
        event = create_event(title=f"Counted {n}", capacity=2, starts_at=now + timedelta(days=n + 1))
        add_people(event.id, [(f"P{i}", f"p{i}@example.org", state) for i, state in
                              enumerate(["confirmed"] * (n + 1) + ["pending"] * n + ["waitlisted"] * 2 + ["cancelled"])],
                   now=now)
    auth.client.get("/admin/")  # the first request of a worker may load what later ones reuse
    with statements() as few:
        page = auth.client.get("/admin/").get_data(as_text=True)
    add_events(45, now=now)
    with statements() as many:
        crowded = auth.client.get("/admin/").get_data(as_text=True)

    assert crowded.count("Bulk event") == 45
    assert len(many) == len(few)
    # One statement reads the events and their counts; none reads the registrations on its own.
    assert [s for s in many if "registrations" in s and "events" not in s] == []
    assert len([s for s in many if "registrations" in s]) == 1
    for n in range(3):
        row = re.search(rf">Counted {n}</a></td>(.*?)</tr>", page, re.S).group(1)
        cells = re.findall(r'<td data-label="(Confirmed|Pending|Waitlist)">(\d+)</td>', row)
        assert cells == [("Confirmed", str(n + 1)), ("Pending", str(n)), ("Waitlist", "2")]


def test_dashboard_lists_upcoming_events_50_a_page(auth, now):
    add_events(60, now=now)
    first = auth.client.get("/admin/").get_data(as_text=True)
    second = auth.client.get("/admin/?page=2").get_data(as_text=True)
    assert first.count(">Bulk event ") == 50 and second.count(">Bulk event ") == 10
    assert ">Bulk event 0<" in first and ">Bulk event 50<" in second
    assert (links(first, "next"), links(second, "prev"), links(second, "next")) == ([{"page": "2"}], [{}], [])
    assert auth.client.get("/admin/?page=3").status_code == 404
    assert auth.client.get("/admin/?page=x").status_code == 404


# --- the outbox ----------------------------------------------------------------------------------

def add_messages(count: int, *, now, state: str = "sent") -> None:
    db.session.execute(insert(OutboxMessage), [
        dict(dedupe_key=f"bulk:{state}:{n}", kind="confirmed", to_addr=f"m{n}@example.org", to_name=f"M {n}",
             subject=f"Message {state} {n}", body_text="Hello", state=state, attempts=1, next_attempt_at=now,
             created_at=now, sent_at=now if state == "sent" else None)
        for n in range(count)])
    db.session.commit()


def subjects(page: str) -> list[str]:
    return re.findall(r'<td data-label="Subject" class="subject">Message \w+ (\d+)</td>', page)


def test_outbox_pages_50_newest_first_by_id(auth, now):
    add_messages(120, now=now)
    first = auth.client.get("/admin/outbox").get_data(as_text=True)
    assert subjects(first) == [str(n) for n in range(119, 69, -1)]
    assert links(first, "prev") == []
    (older,) = links(first, "next")
    second = auth.client.get("/admin/outbox", query_string=older).get_data(as_text=True)
    assert subjects(second) == [str(n) for n in range(69, 19, -1)]
    third = auth.client.get("/admin/outbox", query_string=links(second, "next")[0]).get_data(as_text=True)
    assert subjects(third) == [str(n) for n in range(19, -1, -1)] and links(third, "next") == []
    back = auth.client.get("/admin/outbox", query_string=links(third, "prev")[0]).get_data(as_text=True)
    assert subjects(back) == subjects(second)
    top = auth.client.get("/admin/outbox", query_string=links(back, "prev")[0]).get_data(as_text=True)
    assert subjects(top) == subjects(first)
    assert auth.client.get("/admin/outbox?before=abc").status_code == 404
    assert auth.client.get("/admin/outbox?after=-3").status_code == 404


def test_outbox_pages_within_a_state(auth, now):
    add_messages(60, now=now, state="failed")
    add_messages(60, now=now, state="sent")
    first = auth.client.get("/admin/outbox?state=failed").get_data(as_text=True)
    assert subjects(first) == [str(n) for n in range(59, 9, -1)]
    (older,) = links(first, "next")
    assert older["state"] == "failed"
    second = auth.client.get("/admin/outbox", query_string=older).get_data(as_text=True)
    assert subjects(second) == [str(n) for n in range(9, -1, -1)]
    assert "<li><strong>60</strong> failed</li>" in second and "<li><strong>60</strong> sent</li>" in second


# --- the event page's speakers to pick from ------------------------------------------------------

def test_event_page_offers_at_most_100_speakers_and_finds_the_others(auth, create_event, now):
    event = create_event()
    db.session.execute(insert(Speaker), [dict(name=f"Speaker {n:03}", email=f"s{n:03}@talks.example", created_at=now,
                                              updated_at=now) for n in range(150)])
    db.session.commit()
    page = auth.client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    options = re.findall(r'<option value="\d+">(Speaker \d+)</option>', page)
    assert options == [f"Speaker {n:03}" for n in range(50, 150)]  # the latest added, by name
    assert "The 100 speakers added last, of 150: find the others by name or email." in page
    found = auth.client.get(f"/admin/events/{event.id}", query_string={"find": "S007@TALKS"}).get_data(as_text=True)
    assert re.findall(r'<option value="\d+">(Speaker \d+)</option>', found) == ["Speaker 007"]
    assert "1 of 150 speakers match “S007@TALKS”." in found
