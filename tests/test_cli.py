"""Flask commands through the CLI runner: create-admin asks for the password, or takes --password for scripts."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from sqlalchemy import select

from scheduler.extensions import db
from scheduler.models import User

README = Path(__file__).resolve().parent.parent / "README.md"


def password_works(email: str, password: str) -> bool:
    user = db.session.scalar(select(User).where(User.email == email).execution_options(populate_existing=True))
    return user is not None and user.check_password(password)


def test_create_admin_asks_for_the_password_twice_without_echo(app, runner):
    result = runner.invoke(args=["create-admin", "--email", "ann@example.org"], input="long secret\nlong secret\n")
    assert result.exit_code == 0, result.output
    assert result.output == ("Password: \nRepeat for confirmation: \nCreated admin ann@example.org\n")
    assert password_works("ann@example.org", "long secret")


def test_create_admin_takes_password_option_for_scripts(app, runner):
    result = runner.invoke(args=["create-admin", "--email", "bob@example.org", "--password", "scripted secret"])
    assert (result.exit_code, result.output) == (0, "Created admin bob@example.org\n")
    again = runner.invoke(args=["create-admin", "--email", "bob@example.org", "--password", "another secret"])
    assert (again.exit_code, again.output) == (0, "Updated password of admin bob@example.org\n")
    assert password_works("bob@example.org", "another secret")


def test_create_admin_refuses_a_short_password(app, runner):
    result = runner.invoke(args=["create-admin", "--email", "cy@example.org", "--password", "short"])
    assert result.exit_code == 2 and "use at least 8 characters" in result.output
    assert not password_works("cy@example.org", "short")


def test_readme_create_admin_commands_work_as_written(app, runner, monkeypatch):
    """The README shows the interactive command and the scripted one with --password; both run as shown."""
    monkeypatch.setenv("ADMIN_PASSWORD", "scripted secret")
    prefix = ".venv/bin/flask --app app create-admin "
    commands = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith(prefix)]
    assert [("--password" in c) for c in commands] == [False, True]
    for command in commands:
        args = [os.path.expandvars(arg) for arg in shlex.split(command)[3:]]
        result = runner.invoke(args=args, input="typed secret\ntyped secret\n")
        assert result.exit_code == 0, (command, result.output)
    assert password_works("you@example.org", "scripted secret")
