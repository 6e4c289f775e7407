"""Templates -> message parts, and outbox rows -> EmailMessage with every header a client expects."""

from __future__ import annotations

import binascii
import hashlib
import hmac
import io
import itertools
import secrets
from dataclasses import dataclass
from email.charset import BASE64, QP, Charset
from email.generator import BytesGenerator
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.policy import Compat32
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

from flask import current_app, render_template

from ..text import one_line


def render(kind: str, **context) -> tuple[str, str, str]:
    """Render templates/email/<kind>.txt and .html; the .txt sets `subject`. Returns (subject, text, html)."""
    env = current_app.jinja_env
    current_app.update_template_context(context)
    text_template = env.get_template(f"email/{kind}.txt")
    module = text_template.make_module(context)
    subject = one_line(getattr(module, "subject", "") or "")[:250]
    if not subject:
        raise ValueError(f"email/{kind}.txt must set a subject")
    text = str(module).strip() + "\n"
    html = render_template(f"email/{kind}.html", subject=subject, **context)
    return subject, text, html


def message_id_for(dedupe_key: str, config) -> str:
    """The Message-ID of the message with this dedupe key: the same on every attempt, so a copy that
    went out twice is recognisably one message; keyed with SECRET_KEY, so it is unique to this
    installation and does not show the key (which names registrations)."""
    digest = hmac.new(config["SECRET_KEY"].encode(), dedupe_key.encode(), hashlib.sha256).hexdigest()[:32]
    domain = sender(config)[1].rpartition("@")[2] or "townhall.local"
    return f"<{digest}@{domain}>"


def sender(config) -> tuple[str, str]:
    """(display name, address) from MAIL_FROM."""
    return _sender(config["MAIL_FROM"], config["ORGANIZER_NAME"])


@lru_cache(maxsize=16)  # asked twice for every message delivered
def _sender(mail_from: str, organizer: str) -> tuple[str, str]:
    name, addr = parseaddr(mail_from)
    return one_line(name) or organizer, addr


@lru_cache(maxsize=16)
def _from_header(name: str, addr: str) -> str:
    return formataddr((name, addr), charset="utf-8")


def build_message(row, config, *, now) -> Message:
    """The message for one outbox row: text + HTML, optional invitation, RFC 8058 unsubscribe.

    Built with the classic (compat32) MIME classes: EmailMessage's header registry is slow enough
    per message to cap a large reminder's fan-out below what SMTP can take (bench/reminder_bench.py).
    Addresses that are not ASCII (SMTPUTF8) still go through EmailMessage.
    """
    from_name, from_addr = sender(config)
    to_addr = _ascii_address(row.to_addr)
    if to_addr is None or not from_addr.isascii():
        return _unicode_message(row, config, now=now)
    text = _text_part(row.body_text, "plain")
    alternative = MIMEMultipart("alternative", boundary=_boundary(),
                                _subparts=[text, _text_part(row.body_html, "html")])
    if row.ics:
        method = row.ics_method or "REQUEST"
        # The calendar part inside the alternative is what Outlook and Gmail show as an invitation;
        # the attachment is what other clients offer to import.
        calendar = _text_part(row.ics, "calendar", base64=True)
        calendar.set_param("method", method)
        alternative.attach(calendar)
        attachment = MIMEApplication(row.ics.encode("utf-8"), "ics")
        del attachment["MIME-Version"]
        attachment.add_header("Content-Disposition", "attachment",
                              filename="invite.ics" if method == "REQUEST" else "cancel.ics")
        del alternative["MIME-Version"]
        message = MIMEMultipart("mixed", boundary=_boundary(), _subparts=[alternative, attachment])
    else:
        message = alternative
    message.policy = _POLICY
    del message["MIME-Version"]
    _add_headers(message, row, now=now, config=config,
                 sender_value=_from_header(from_name, from_addr),
                 to_value=formataddr((one_line(row.to_name or "")[:100], to_addr), charset="utf-8"),
                 subject=_header(one_line(row.subject)))
    message["MIME-Version"] = "1.0"
    return message


@dataclass(frozen=True)
class Prepared:
    """A message ready for the wire: its envelope and bytes, flattened while the previous one is sent."""

    message: Message
    sender: str = ""
    recipients: tuple[str, ...] = ()
    #: None for an SMTPUTF8 message: smtplib's send_message flattens it with the right options.
    data: bytes | None = None


def prepare(row, config, *, now) -> Prepared:
    """build_message, then flattened to CRLF bytes exactly as smtplib.send_message would."""
    message = build_message(row, config, now=now)
    if isinstance(message, EmailMessage):
        return Prepared(message)
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=_WIRE_POLICY).flatten(message)
    return Prepared(message, sender(config)[1], (_ascii_address(row.to_addr),), buffer.getvalue())


def _add_headers(message, row, *, now, config, sender_value, to_value, subject) -> None:
    """From, To, Subject, Date, Message-ID, Auto-Submitted and the RFC 8058 unsubscribe pair."""
    message["From"] = sender_value
    message["To"] = to_value
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = row.message_id or message_id_for(row.dedupe_key, config)
    message["Auto-Submitted"] = "auto-generated"
    if row.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{row.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"


class _Policy(Compat32):
    """compat32, except that a header value of plain ASCII words that fits on its line is written as it
    is. compat32 wraps every value in an email.header.Header to fold it, which for such a value writes
    the same line at a third of a message's composing time (tests/mail/test_compose.py compares them)."""

    def fold_binary(self, name, value):
        if (isinstance(value, str) and value.isascii() and len(name) + 2 + len(value) <= self.max_line_length
                and value == " ".join(value.split())):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


def _boundary() -> str:
    """A multipart boundary no part can hold: "=_" never occurs in quoted-printable or base64 text, so the
    generator need not search the parts for it (a regular expression compiled for every message). Unique
    in the process and all of one length, so no boundary begins with another (RFC 2046 5.1.1); the random
    prefix keeps it from telling how many messages went before."""
    return f"=_{_BOUNDARY_PREFIX}{next(_boundaries):012x}"


_BOUNDARY_PREFIX = secrets.token_hex(8)
_boundaries = itertools.count()


#: Header lines up to RFC 5322's 998 characters: a long List-Unsubscribe URL stays on its line.
_POLICY = _Policy(max_line_length=998)
_WIRE_POLICY = _POLICY.clone(linesep="\r\n")
_QP_UTF8 = Charset("utf-8")
_QP_UTF8.body_encoding = QP  # readable in raw form, and no line is ever too long
_BASE64_UTF8 = Charset("utf-8")
_BASE64_UTF8.body_encoding = BASE64  # an invitation's CRLF line ends arrive exactly as written
#: RFC 2045's longest quoted-printable line, soft line break included.
QP_LINE = 76


def _text_part(body: str, subtype: str, *, base64: bool = False) -> Message:
    """A text part in UTF-8, in quoted-printable (base64 if asked), encoded once (set_payload(body, charset)
    would parse and rewrite the Content-Type and add a MIME-Version the part does not need)."""
    part = Message(policy=_POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "base64" if base64 else "quoted-printable"
    part.set_payload(_BASE64_UTF8.body_encode(body) if base64 else quoted_printable(body))
    return part


def quoted_printable(body: str) -> str:
    """The body in quoted-printable, encoded by binascii (C) rather than the email package (pure Python,
    a tenth of a message's composing time). binascii can let a space encoded at a line's end run that
    line one past the limit; such a body is encoded by the email package instead."""
    if "\r" in body:  # a line end as the wire has it; binascii would keep a lone CR as a raw byte
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii")
    if any(len(line) > QP_LINE for line in encoded.splitlines()):
        return _QP_UTF8.body_encode(body)
    return encoded


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _ascii_address(addr: str) -> str | None:
    """The address with its domain in IDNA form; None when the local part itself is not ASCII."""
    local, _, domain = (addr or "").rpartition("@")
    if not local.isascii():
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return f"{local}@{domain}"


def _unicode_message(row, config, *, now) -> EmailMessage:
    """EmailMessage with SMTPUTF8 headers, for the rare address with a non-ASCII local part."""
    message = EmailMessage()
    from_name, from_addr = sender(config)
    _add_headers(message, row, now=now, config=config, sender_value=formataddr((from_name, from_addr)),
                 to_value=_address(row.to_name, row.to_addr), subject=one_line(row.subject))
    message.set_content(row.body_text)
    message.add_alternative(row.body_html, subtype="html")
    if row.ics:
        method = row.ics_method or "REQUEST"
        message.add_alternative(row.ics, subtype="calendar", params={"method": method})
        message.make_mixed()
        message.add_attachment(row.ics.encode("utf-8"), maintype="application", subtype="ics",
                               filename="invite.ics" if method == "REQUEST" else "cancel.ics")
    return message


def _address(name: str, addr: str) -> str:
    name = one_line(name or "")[:100]
    try:
        local, _, domain = addr.rpartition("@")
        return str(Address(display_name=name, username=local, domain=domain))
    except (ValueError, IndexError):
        return formataddr((name, addr))
