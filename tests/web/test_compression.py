"""gzip when the client accepts it: cached pages and feeds compressed once, the rest per response; ETags and 304s."""

from __future__ import annotations

import gzip
import json

from flask import Response

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def test_cached_page_is_gzipped_once_with_its_own_etag_and_304s(client, create_event):
    event = create_event(title="Compressed", description="Long enough. " * 100)
    path = f"/events/{event.slug}"
    plain, packed, again = client.get(path), client.get(path, headers=GZIP), client.get(path, headers=GZIP)
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert packed.get_data() == again.get_data()  # stored bytes, not compressed again with other padding
    assert all("Accept-Encoding" in r.headers["Vary"] for r in (plain, packed))
    assert packed.headers["ETag"] == plain.headers["ETag"][:-1] + '-gzip"'
    for headers, etag in ((GZIP, packed.headers["ETag"]), ({}, plain.headers["ETag"])):
        revalidated = client.get(path, headers={**headers, "If-None-Match": etag})
        assert revalidated.status_code == 304 and revalidated.get_data() == b""
        assert revalidated.headers["ETag"] == etag and "Accept-Encoding" in revalidated.headers["Vary"]
    # The other encoding's ETag does not match: the client gets the bytes it can read.
    crossed = client.get(path, headers={**GZIP, "If-None-Match": plain.headers["ETag"]})
    assert crossed.status_code == 200 and crossed.headers["Content-Encoding"] == "gzip"


def test_page_etag_changes_with_the_page(client, create_event, now):
    from scheduler.domain.events import update_event
    from scheduler.extensions import db

    event = create_event(title="Before")
    first = client.get(f"/events/{event.slug}", headers=GZIP)
    update_event(db.session, event, now=now, title="After")
    db.session.commit()
    second = client.get(f"/events/{event.slug}", headers={**GZIP, "If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200 and second.headers["ETag"] != first.headers["ETag"]
    assert b"After" in gzip.decompress(second.get_data())


def test_refused_or_absent_gzip_gets_plain_bytes(client, create_event):
    event = create_event(description="Long enough. " * 100)
    for headers in ({}, {"Accept-Encoding": "gzip;q=0, br"}, {"Accept-Encoding": "identity"}):
        for path in (f"/events/{event.slug}", "/calendar.ics", "/api/v1/events"):
            response = client.get(path, headers=headers)
            assert response.status_code == 200 and "Content-Encoding" not in response.headers, (path, headers)
    assert client.get("/", headers={"Accept-Encoding": "*"}).headers["Content-Encoding"] == "gzip"


def test_json_api_is_gzipped_per_response(client, create_event):
    for n in range(5):
        create_event(title=f"Talk {n}", summary="Something to say about it. " * 5)
    plain = client.get("/api/v1/events")
    packed = client.get("/api/v1/events", headers=GZIP)
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    assert json.loads(gzip.decompress(packed.get_data())) == plain.get_json()


def test_personal_page_is_gzipped_with_random_padding_and_no_etag(app, client, auth, create_event):
    """A page with a CSRF token: compressed per request, its length varied (BREACH) and never an ETag."""
    event = create_event(description="Long enough. " * 100)
    pages = [client.get(f"/events/{event.slug}", headers=GZIP) for _ in range(12)]
    assert {p.headers["Content-Encoding"] for p in pages} == {"gzip"}
    assert not any("ETag" in p.headers for p in pages)
    assert len({len(p.get_data()) for p in pages}) > 1
    assert all(b"Log out" in gzip.decompress(p.get_data()) for p in pages)


def test_small_streamed_and_binary_responses_stay_as_they_are(app, client):
    @app.get("/test-only/stream")
    def stream():
        return Response((f"row {n}\n" for n in range(1000)), mimetype="text/csv")

    @app.get("/test-only/small")
    def small():
        return Response("tiny", mimetype="text/plain")

    streamed = client.get("/test-only/stream", headers=GZIP)
    assert "Content-Encoding" not in streamed.headers and streamed.get_data().startswith(b"row 0\n")
    tiny = client.get("/test-only/small", headers=GZIP)
    assert "Content-Encoding" not in tiny.headers and "Accept-Encoding" in tiny.headers["Vary"]
    icon = client.get("/static/favicon.svg", headers=GZIP)
    assert icon.status_code == 200 and "Content-Encoding" not in icon.headers
    icon.close()


def test_error_pages_are_gzipped_too(client):
    response = client.get("/events/nothing-here", headers=GZIP)
    assert response.status_code == 404 and response.headers["Content-Encoding"] == "gzip"
    assert b"Page not found" in gzip.decompress(response.get_data())
