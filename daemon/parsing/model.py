"""The value the parser returns: everything later stages need from one raw mail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment of a mail; the bytes stay in the raw message."""

    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox address with its (decoded, sanitised) display name."""

    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A parsed inbound mail.

    ``text`` is the customer's new text only (quoted history and signature
    removed); ``full_text`` is the whole readable body. Header values are
    decoded (RFC 2047/2231), stripped of CR/LF and NUL, and never raise.
    """

    message_id: str
    """Angle-bracketed Message-ID; synthetic and stable when the mail had none."""
    message_id_synthetic: bool
    from_addr: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None
    """Timezone-aware Date header, or None when absent or unparseable."""
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    full_text: str
    attachments: tuple[Attachment, ...]
    auto_submitted: str | None
    """Value of Auto-Submitted (or an equivalent header) when the mail is automatic."""
    is_bounce: bool
    bounced_message_ids: tuple[str, ...]
    """Message-IDs of our mail that a bounce reports on (from the DSN's returned headers)."""
    is_list_mail: bool
    loop_marker: str | None
    """Value of our X-Loop style header when present (mail that came back to us)."""
    header_defects: tuple[str, ...] = field(default=())
    """Human-readable notes on what was malformed and repaired."""
    machine_sender: str | None = None
    """Why no automatic answer may go to it (RFC 3834: an empty Return-Path, a mail
    system's mailbox), when a person may still have written it."""
