"""Configuration order and the generated secret key."""

from __future__ import annotations

import os
import stat

from scheduler import create_app
from scheduler.urls import external_url


def test_secret_key_generated_once_with_private_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("TOWNHALL_INSTANCE", str(tmp_path))
    first = create_app({"DATABASE_URL": "sqlite:///" + str(tmp_path / "a.db")})
    second = create_app({"DATABASE_URL": "sqlite:///" + str(tmp_path / "a.db")})
    key_file = tmp_path / "secret_key"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text().strip()
    assert len(first.config["SECRET_KEY"]) == 64
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_environment_beats_instance_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TOWNHALL_INSTANCE", str(tmp_path))
    (tmp_path / "config.py").write_text('BASE_URL = "https://from-file.example"\nMAIL_FROM = "File <f@x.test>"\n')
    monkeypatch.setenv("BASE_URL", "https://from-env.example")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@127.0.0.1/x")
    app = create_app()
    assert app.config["BASE_URL"] == "https://from-env.example"
    assert app.config["MAIL_FROM"] == "File <f@x.test>"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@127.0.0.1/x"


def test_default_database_is_sqlite_in_instance(tmp_path, monkeypatch):
    monkeypatch.setenv("TOWNHALL_INSTANCE", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + str(tmp_path / "townhall.db")
    assert app.config["SCHEDULER_MODE"] == "embedded"


def test_base_url_follows_the_served_host_and_port_when_not_set(tmp_path, monkeypatch):
    monkeypatch.setenv("TOWNHALL_INSTANCE", str(tmp_path))
    for name in ("BASE_URL", "FLASK_RUN_HOST", "FLASK_RUN_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert create_app().config["BASE_URL"] == "http://127.0.0.1:5000"
    monkeypatch.setenv("FLASK_RUN_PORT", "5100")
    app = create_app()
    assert app.config["BASE_URL"] == "http://127.0.0.1:5100"
    with app.app_context():
        assert external_url("public.index") == "http://127.0.0.1:5100/"
    monkeypatch.setenv("FLASK_RUN_HOST", "0.0.0.0")
    assert create_app().config["BASE_URL"] == "http://127.0.0.1:5100"
    monkeypatch.setenv("FLASK_RUN_HOST", "events.lan")
    assert create_app().config["BASE_URL"] == "http://events.lan:5100"
    monkeypatch.setenv("FLASK_RUN_HOST", "::1")
    assert create_app().config["BASE_URL"] == "http://[::1]:5100"
    monkeypatch.setenv("BASE_URL", "https://events.example.org")  # configured: used as it is
    assert create_app().config["BASE_URL"] == "https://events.example.org"
