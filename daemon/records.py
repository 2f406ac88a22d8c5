"""Builders of the rows intake writes: messages, receipts, events, quarantine entries."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.mail_kind import MailKind
from daemon.parsing import ParsedMessage, parse_message
from models import Attachment, Event, MailboxReceipt, Message, Quarantine, Ticket

if TYPE_CHECKING:
    from daemon.service import MailSource

__all__ = [
    "describe_error",
    "fingerprint",
    "new_event",
    "new_message",
    "new_receipt",
    "quarantine_entry",
]


def fingerprint(parsed: ParsedMessage) -> str:
    """What makes two mails with one Message-ID the same mail: sender, subject, date, text."""
    sender = parsed.from_addr.email if parsed.from_addr else ""
    date = parsed.date.isoformat() if parsed.date else ""
    material = "\x1f".join((sender, parsed.subject, date, parsed.full_text))
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
