"""Templates -> message parts, and outbox rows -> EmailMessage with every header a client expects."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

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


def sender(config) -> tuple[str, str]:
    """(display name, address) from MAIL_FROM."""
    name, addr = parseaddr(config["MAIL_FROM"])
    return one_line(name) or config.get("ORGANIZER_NAME", "Townhall"), addr


def build_message(row, config, *, now) -> EmailMessage:
    """The EmailMessage for one outbox row: text + HTML, optional invitation, RFC 8058 unsubscribe."""
    message = EmailMessage()
    from_name, from_addr = sender(config)
    message["From"] = formataddr((from_name, from_addr))
    message["To"] = _address(row.to_name, row.to_addr)
    message["Subject"] = one_line(row.subject)
    message["Date"] = format_datetime(now)
    domain = from_addr.rpartition("@")[2] or "townhall.local"
    message["Message-ID"] = row.message_id or make_msgid(idstring=f"outbox{row.id}", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    if row.unsubscribe_url:
        message["List-Unsubscribe"] = f"<{row.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(row.body_text)
    message.add_alternative(row.body_html, subtype="html")
    if row.ics:
        method = row.ics_method or "REQUEST"
        # The calendar part inside the alternative is what Outlook and Gmail show as an invitation;
        # the attachment is what other clients offer to import.
        alternative = message
        alternative.add_alternative(row.ics, subtype="calendar", params={"method": method})
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
