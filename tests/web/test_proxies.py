"""Rate limits behind a proxy (TRUSTED_PROXIES), per-account login limits, and the warning that limits kept
in memory are per worker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask import request

from scheduler import create_app
from scheduler.config import Defaults, rate_limit_warning
from scheduler.extensions import db
from tests.support import csrf_token, signup


@pytest.fixture
def limited(app, app_config):
    """A second app on the same database with rate limits on: limited(**config) -> a client factory."""
    def make(**config):
        db.session.rollback()  # end this session's (SQLite write) transaction before another app writes
        other = create_app({**app_config, "RATELIMIT_ENABLED": True, **config})

        def client(forwarded_for: str | None = None, remote_addr: str = "10.0.0.1"):
            test_client = other.test_client()
            test_client.environ_base["REMOTE_ADDR"] = remote_addr
            if forwarded_for is not None:
                test_client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
            return test_client

        return SimpleNamespace(app=other, client=client)

    return make


def signups(event, clients) -> list[int]:
    return [signup(client, event, email=f"person{n}@example.org").status_code for n, client in enumerate(clients)]


def test_forwarded_for_is_ignored_without_trusted_proxies(limited, create_event):
    """Anyone can send X-Forwarded-For: unless told there is a proxy, the limit keys on the connection."""
    event = SimpleNamespace(slug=create_event().slug)
    server = limited(SIGNUP_RATE_LIMIT="2 per hour")
    clients = [server.client(forwarded_for=f"203.0.113.{n}") for n in range(3)]
    assert signups(event, clients) == [200, 200, 429]


def test_behind_a_trusted_proxy_each_visitor_has_their_own_limit(limited, create_event):
    event = SimpleNamespace(slug=create_event().slug)
    server = limited(SIGNUP_RATE_LIMIT="2 per hour", TRUSTED_PROXIES=1)
    # Three visitors through the same proxy (same remote address): each is counted on their own.
    visitors = [server.client(forwarded_for=f"203.0.113.{n}") for n in range(3)]
    assert signups(event, visitors) == [200, 200, 200]
    # One visitor who puts made-up addresses in front of the proxy's entry is still one visitor:
    # only the last hop, written by the trusted proxy, counts.
    spoofing = [server.client(forwarded_for=f"198.51.100.{n}, 203.0.113.77") for n in range(3)]
    assert signups(event, spoofing) == [200, 200, 429]


def test_the_trusted_proxy_gives_the_visitors_address_and_scheme(limited):
    def echo():
        return f"{request.scheme} {request.remote_addr}"

    trusted, untrusted = limited(TRUSTED_PROXIES=1), limited()
    for server in (trusted, untrusted):
        server.app.add_url_rule("/echo-for-test", "echo_for_test", echo)
    headers = {"X-Forwarded-Proto": "https"}
    answer = trusted.client(forwarded_for="198.51.100.1, 203.0.113.5").get("/echo-for-test", headers=headers)
    assert answer.get_data(as_text=True) == "https 203.0.113.5"
    answer = untrusted.client(forwarded_for="203.0.113.5").get("/echo-for-test", headers=headers)
    assert answer.get_data(as_text=True) == "http 10.0.0.1"


def failed_logins(client, email: str, times: int) -> list[int]:
    token = csrf_token(client, "/admin/login")
    return [client.post("/admin/login", data={"email": email, "password": "wrong password", "csrf_token": token})
            .status_code for _ in range(times)]


def test_failed_logins_are_limited_per_account_from_every_address(limited, admin_user):
    server = limited(LOGIN_RATE_LIMIT="100 per minute", LOGIN_ACCOUNT_RATE_LIMIT="3 per hour")
    # An attacker spreading guesses over many addresses still gets three per account.
    statuses = [failed_logins(server.client(remote_addr=f"192.0.2.{n}"), "Organiser@Townhall.test", 1)[0]
                for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    # Another account is not affected, and neither is the address limit of a fresh visitor for it.
    assert failed_logins(server.client(remote_addr="192.0.2.99"), "someone@else.test", 1) == [401]


def test_a_successful_login_does_not_use_up_the_accounts_limit(limited, admin_user):
    server = limited(LOGIN_RATE_LIMIT="100 per minute", LOGIN_ACCOUNT_RATE_LIMIT="2 per hour")
    for n in range(3):
        client = server.client(remote_addr=f"192.0.2.{n}")
        token = csrf_token(client, "/admin/login")
        response = client.post("/admin/login", data={"email": "organiser@townhall.test", "password": "correct horse battery",
                                                      "csrf_token": token})
        assert response.status_code == 302


def test_the_address_limit_on_logins_still_holds(limited, admin_user):
    server = limited(LOGIN_RATE_LIMIT="2 per hour", LOGIN_ACCOUNT_RATE_LIMIT="100 per hour")
    client = server.client()
    assert [failed_logins(client, f"guess{n}@townhall.test", 1)[0] for n in range(3)] == [401, 401, 429]


def test_limits_in_memory_with_several_workers_are_reported():
    config = {"RATELIMIT_STORAGE_URI": Defaults.RATELIMIT_STORAGE_URI}
    assert rate_limit_warning(config, 1) is None
    assert "4 times each limit" in rate_limit_warning(config, 4)
    assert rate_limit_warning({"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379"}, 4) is None
