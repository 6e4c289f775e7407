"""Organiser accounts (scheduler.domain.accounts): a login's check, the organiser behind a session id,
and ending every session at once."""

from __future__ import annotations

import pytest

from scheduler.domain import accounts
from scheduler.extensions import db


@pytest.mark.parametrize(("email", "password", "found"), [
    ("organiser@townhall.test", "correct horse battery", True),
    ("  ORGANISER@townhall.test ", "correct horse battery", True),
    ("organiser@townhall.test", "wrong", False),
    ("stranger@townhall.test", "correct horse battery", False),
])
def test_authenticate(admin_user, email, password, found):
    assert (accounts.authenticate(db.session, email, password) is admin_user) is found


def test_authenticate_refuses_an_inactive_organiser(admin_user):
    admin_user.active = False
    assert accounts.authenticate(db.session, "organiser@townhall.test", "correct horse battery") is None


def test_session_id_names_the_organiser_until_sessions_end(admin_user):
    session_id = admin_user.get_id()
    assert session_id == f"{admin_user.id}:1"
    assert accounts.user_for_session(db.session, session_id) is admin_user
    accounts.end_sessions(db.session, admin_user.id)
    assert admin_user.session_version == 2
    assert accounts.user_for_session(db.session, session_id) is None
    assert accounts.user_for_session(db.session, admin_user.get_id()) is admin_user


@pytest.mark.parametrize("session_id", ["1", "1:", ":1", "1:x", "x:1", "1:1:1", "², 1", "2:1"])
def test_session_id_of_another_shape_or_organiser_names_no_one(admin_user, session_id):
    assert admin_user.id == 1
    assert accounts.user_for_session(db.session, session_id) is None


def test_new_password_ends_earlier_sessions(admin_user):
    session_id = admin_user.get_id()
    admin_user.set_password("another long password")
    assert accounts.user_for_session(db.session, session_id) is None
