"""Where messages go: SMTP (one connection reused per batch) or .eml files in instance/outbox/."""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit


class TransientError(Exception):
    """Try again later: 4xx replies, refused or dropped connections, timeouts."""


class ConnectionLost(TransientError):
    """The connection dropped mid-batch: the rest of the batch waits for the next try."""


class PermanentError(Exception):
    """Do not try again: 5xx replies. The message is the server's reply."""


class FileTransport:
    """The embedded default: each message becomes one .eml file, written atomically."""

    def __init__(self, directory: str):
        self.directory = directory

    def __enter__(self):
        os.makedirs(self.directory, exist_ok=True)
        return self

    def __exit__(self, *exc):
        return False

    def send(self, message) -> None:
        """Write one message (an email Message, or a compose.Prepared) as an .eml file."""
        data = getattr(message, "data", None) or getattr(message, "message", message).as_bytes()
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}.eml"  # sorts by arrival
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, os.path.join(self.directory, name))


class SMTPTransport:
    """smtp://user:pass@host:587 (STARTTLS when offered, or forced with ?starttls=1), smtps:// for TLS."""

    def __init__(self, url: str, timeout: float = 30.0):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("MAIL_URL must start with smtp:// or smtps://")
        query = parse_qs(parts.query)
        self.ssl = parts.scheme == "smtps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.ssl else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = query.get("starttls", ["auto"])[0]
        self.verify = query.get("verify", ["1"])[0] not in ("0", "false", "no")
        self.timeout = timeout
        self.connection: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def __enter__(self):
        try:
            if self.ssl:
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context())
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                conn.ehlo()
                wants_tls = self.starttls in ("1", "true", "yes") or (
                    self.starttls == "auto" and conn.has_extn("starttls"))
                if wants_tls:
                    conn.starttls(context=self._context())
                    conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(_reply(exc)) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.connection = conn
        return self

    def __exit__(self, *exc):
        if self.connection is not None:
            try:
                self.connection.quit()
            except (OSError, smtplib.SMTPException):
                self.connection.close()
            self.connection = None
        return False

    def send(self, message) -> None:
        """Send one message: an email Message, or a compose.Prepared (envelope and bytes ready)."""
        assert self.connection is not None, "use SMTPTransport as a context manager"
        try:
            if getattr(message, "data", None) is not None:
                refused = self.connection.sendmail(message.sender, list(message.recipients), message.data)
            else:
                refused = self.connection.send_message(getattr(message, "message", message))
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise (PermanentError if code >= 500 else TransientError)(f"{code} {_text(reply)}") from exc
        except smtplib.SMTPResponseException as exc:
            raise (PermanentError if exc.smtp_code >= 500 else TransientError)(_reply(exc)) from exc
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            raise ConnectionLost(f"connection lost: {exc}") from exc
        except smtplib.SMTPException as exc:
            raise TransientError(str(exc)) from exc
        if refused:
            code, reply = next(iter(refused.values()))
            raise (PermanentError if code >= 500 else TransientError)(f"{code} {_text(reply)}")


def _text(reply) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def transport_from_config(config) -> FileTransport | SMTPTransport:
    url = config.get("MAIL_URL") or ""
    if url:
        return SMTPTransport(url, timeout=float(config["MAIL_TIMEOUT"]))
    return FileTransport(config["OUTBOX_DIR"])
