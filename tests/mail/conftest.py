"""Fixtures of the mail tests."""

import pytest

from tests.support import SMTPSink


@pytest.fixture
def sink(app):
    """A real SMTP server the app sends to."""
    server = SMTPSink().start()
    app.config["MAIL_URL"] = server.url
    yield server
    server.stop()
