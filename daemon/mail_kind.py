"""What kind of inbound mail this is, before any ticket is touched (pure)."""

from __future__ import annotations

from enum import StrEnum

from daemon.parsing import ParsedMessage

__all__ = ["MailKind", "classify_mail"]


class MailKind(StrEnum):
    """How intake treats a mail."""

    CUSTOMER = "customer"
    """A person writing: may open a ticket."""
    LIST = "list"
    """Mailing-list traffic, or mail no automatic answer may go to (an empty
    Return-Path, a mail system's mailbox): may open a ticket, never acknowledged."""
    AUTO_REPLY = "auto_reply"
    """Out-of-office and other automatic answers: recorded, never a new ticket."""
    BOUNCE = "bounce"
    """Delivery failure reports: recorded on the ticket of the bounced mail."""
    LOOP = "loop"
    """Our own mail come back: never processed as a complaint."""


def classify_mail(
    parsed: ParsedMessage, own_addresses: frozenset[str], own_loop_value: str
) -> MailKind:
    """Sort a parsed mail into one :class:`MailKind` (loops first, then bounces, then autos)."""
    sender = parsed.from_addr.email if parsed.from_addr else None
    if parsed.loop_marker is not None and parsed.loop_marker.strip().lower() == own_loop_value:
        return MailKind.LOOP
    if sender is not None and sender in own_addresses:
        return MailKind.LOOP
    if parsed.is_bounce:
        return MailKind.BOUNCE
    if parsed.auto_submitted is not None:
        return MailKind.AUTO_REPLY
    if parsed.is_list_mail or parsed.machine_sender is not None:
        return MailKind.LIST
    return MailKind.CUSTOMER
