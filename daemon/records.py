"""Builders of the rows intake writes: messages, receipts, events, quarantine entries."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.mail_kind import MailKind
from daemon.parsing import ParsedMessage, parse_message
from models import Attachment, Event, MailboxReceipt, Message, Quarantine, Ticket
from routing import RenderedMail, TemplateError, render

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from daemon.service import MailSource

__all__ = [
    "describe_error",
    "fingerprint",
    "fingerprints_of_stored",
    "mail_not_sent",
    "new_event",
    "new_message",
    "new_receipt",
    "quarantine_entry",
    "render_or_record",
]

logger = logging.getLogger(__name__)


def fingerprint(parsed: ParsedMessage) -> str:
    """What makes two mails with one Message-ID the same mail.

    Sender, subject, date, text and the attachments' contents: a second mail
    that reuses a Message-ID with another attachment is another mail, and kept.
    """
    return _fingerprint(parsed, with_attachments=True)


def fingerprints_of_stored(parsed: ParsedMessage) -> tuple[str, ...]:
    """Every fingerprint a stored copy of ``parsed`` may carry.

    Mail stored before attachments counted (2026-12) carries the fingerprint
    without them; a redelivery of it must still be recognised as the same mail.
    """
    current = _fingerprint(parsed, with_attachments=True)
    legacy = _fingerprint(parsed, with_attachments=False)
    return (current,) if legacy == current else (current, legacy)


def _fingerprint(parsed: ParsedMessage, *, with_attachments: bool) -> str:
    sender = parsed.from_addr.email if parsed.from_addr else ""
    date = parsed.date.isoformat() if parsed.date else ""
    parts = [sender, parsed.subject, date, parsed.full_text]
    if with_attachments and parsed.attachments:  # without any, the fingerprint never changed
        parts.append(",".join(item.sha256 for item in parsed.attachments))
    material = "\x1f".join(parts)
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def new_receipt(
    source: MailSource,
    now: datetime,
    *,
    message: Message | None = None,
    message_pk: int | None = None,
    quarantine_id: int | None = None,
    leave_on_server: bool = False,
) -> MailboxReceipt:
    """Proof that (mailbox, UIDVALIDITY, UID) was stored, as a message or a quarantine entry."""
    receipt = MailboxReceipt(
        mailbox=source.mailbox,
        uidvalidity=source.uidvalidity,
        uid=source.uid,
        message_pk=message_pk,
        quarantine_id=quarantine_id,
        leave_on_server=leave_on_server,
        stored_at=now,
    )
    if message is not None:
        receipt.message = message
    return receipt


def new_message(
    parsed: ParsedMessage, kind: MailKind, dedup_key: str, fingerprint: str, now: datetime
) -> Message:
    """An inbound message row (with its attachments) for a parsed mail."""
    message = Message(
        direction="in",
        kind=kind.value,
        message_id=parsed.message_id,
        dedup_key=dedup_key,
        fingerprint=fingerprint,
        in_reply_to=list(parsed.in_reply_to),
        references=list(parsed.references),
        from_email=parsed.from_addr.email if parsed.from_addr else None,
        from_name=parsed.from_addr.name if parsed.from_addr else "",
        to=[address.email for address in parsed.to],
        cc=[address.email for address in parsed.cc],
        subject=parsed.subject,
        text=parsed.text,
        full_text=parsed.full_text,
        date=parsed.date,
        received_at=now,
    )
    message.attachments = [
        Attachment(
            filename=item.filename,
            content_type=item.content_type,
            size=item.size,
            sha256=item.sha256,
        )
        for item in parsed.attachments
    ]
    return message


def new_event(ticket: Ticket, now: datetime, kind: str, actor: str, data: dict[str, Any]) -> Event:
    """One entry of the ticket's audit log."""
    return Event(ticket=ticket, at=now, kind=kind, actor=actor, data=data)


def render_or_record(
    session: Session,
    ticket: Ticket,
    template: str,
    language: str | None,
    context: Mapping[str, Any],
    *,
    folder: Path | None,
    now: datetime,
) -> RenderedMail | None:
    """Render ``template``; when it fails, record ``mail_not_sent`` on the ticket and return None.

    An admin's custom template can fail on one ticket only (a customer without a
    name, an unclassified ticket): that mail is not sent, and everything else the
    ticket needs (its owner, its deadlines, its other mails) still happens.
    """
    try:
        return render(template, language, context, folder=folder)
    except TemplateError as exc:
        logger.error("template %s failed for %s: %s", template, ticket.ref, exc)
        session.add(mail_not_sent(ticket, template, f"template error: {exc}", now))
        return None


def mail_not_sent(ticket: Ticket, template: str, reason: str, now: datetime) -> Event:
    """The event that says a mail the ticket called for was not written, and why."""
    return new_event(ticket, now, "mail_not_sent", "system", {"kind": template, "reason": reason})


def quarantine_entry(
    raw: bytes,
    source: MailSource | None,
    kind: str,
    reason: str,
    now: datetime,
    raw_id: int | None,
) -> Quarantine:
    """A quarantine row with what can be read of the mail, for ``quarantine list``."""
    # Best-effort identification for `quarantine list`; the parser never raises.
    parsed = parse_message(raw)
    return Quarantine(
        kind=kind,
        reason=reason[:4000],
        raw_id=raw_id,
        mailbox=source.mailbox if source else None,
        uidvalidity=source.uidvalidity if source else None,
        uid=source.uid if source else None,
        message_id=parsed.message_id[:998],
        from_email=parsed.from_addr.email if parsed.from_addr else None,
        subject=parsed.subject[:998],
        created_at=now,
    )


def describe_error(exc: BaseException) -> str:
    """An exception as one line for the quarantine's reason column."""
    return f"{type(exc).__name__}: {exc}"[:4000]
