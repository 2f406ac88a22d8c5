"""Realistic test mails built with the standard library (no fixtures on disk needed)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

__all__ = ["complaint", "reply_to"]

_counter = itertools.count(1)
_BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def complaint(
    *,
    sender: str = "anna@example.com",
    name: str = "Anna Berg",
    to: str = "support@example.com",
    subject: str | None = None,
    body: str | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    cc: str | None = None,
) -> bytes:
    """One complaint mail; every call gives a distinct Message-ID, date and body by default."""
    number = next(_counter)
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>" if name else sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = (
        subject if subject is not None else f"Order {10000 + number} arrived broken"
    )
    message["Date"] = format_datetime(_BASE + timedelta(minutes=number))
    message["Message-ID"] = message_id or f"<test-{number}-{id(message)}@mail.example>"
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(
        body
        if body is not None
        else f"Hello,\n\nmy order {10000 + number} arrived with a cracked screen.\n"
        "Please send a replacement.\n\nAnna\n"
    )
    return bytes(message)


def reply_to(
    original: bytes,
    *,
    sender: str,
    subject: str,
    body: str = "Any news?\n",
    references: list[str] | None = None,
) -> bytes:
    """A reply from ``sender`` whose In-Reply-To/References name ``references``."""
    del original  # the reply is built from what a mail client would put in it
    number = next(_counter)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Date"] = format_datetime(_BASE + timedelta(hours=1, minutes=number))
    message["Message-ID"] = f"<reply-{number}@mail.example>"
    if references:
        message["In-Reply-To"] = references[-1]
        message["References"] = " ".join(references)
    message.set_content(body)
    return bytes(message)
