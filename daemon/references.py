"""Signed references: Message-IDs of our mail that prove which ticket a reply belongs to.

A reply joins a ticket through a reference only we can mint. Our Message-IDs
look like ``<cmp.123.c.Q2F0.2x7k...@support.example>``: ticket id, audience
(``c`` the customer, ``a<key>`` an agent), a nonce, and an HMAC-SHA256 over
those fields with the server secret. Anyone can copy a subject tag; nobody
can forge this without the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "SignedReference",
    "format_ticket_ref",
    "make_reference",
    "parse_ticket_tag",
    "verify_references",
]

_SIGNATURE_CHARS = 26  # 130 bits of base32: far beyond guessing, short enough for a header
_REFERENCE = re.compile(
    r"^<cmp\.(?P<ticket>\d{1,12})\.(?P<audience>c|a[a-z0-9]{1,40})"
    r"\.(?P<nonce>[a-z0-9]{1,32})\.(?P<sig>[a-z2-7]{26})@[^<>\s]+>$"
)


@dataclass(frozen=True, slots=True)
class SignedReference:
    """A verified reference: the ticket and whom our mail was addressed to."""

    ticket_id: int
    audience: str


def _signature(secret: bytes, ticket_id: int, audience: str, nonce: str) -> str:
    mac = hmac.new(secret, f"{ticket_id}.{audience}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii").lower()[:_SIGNATURE_CHARS]


def make_reference(
    secret: bytes, ticket_id: int, audience: str, domain: str, nonce: str | None = None
) -> str:
    """A new signed Message-ID for mail about ``ticket_id`` sent to ``audience``."""
    if not re.fullmatch(r"c|a[a-z0-9]{1,40}", audience):
        raise ValueError(f"invalid audience {audience!r}")
    nonce = nonce or secrets.token_hex(8)
    signature = _signature(secret, ticket_id, audience, nonce)
    return f"<cmp.{ticket_id}.{audience}.{nonce}.{signature}@{domain}>"


def verify_references(secret: bytes, message_ids: Iterable[str]) -> list[SignedReference]:
    """The references among ``message_ids`` that carry a valid signature, in order."""
    verified: list[SignedReference] = []
    for message_id in message_ids:
        match = _REFERENCE.match(message_id.strip().lower())
        if match is None:
            continue
        ticket_id = int(match["ticket"])
        expected = _signature(secret, ticket_id, match["audience"], match["nonce"])
        if hmac.compare_digest(expected, match["sig"]):
            verified.append(SignedReference(ticket_id, match["audience"]))
    return verified


def parse_ticket_tag(subject: str, prefix: str = "CMP") -> str | None:
    """The last ``[CMP-000123]`` reference in a subject, normalised, or None."""
    found = re.findall(rf"\[\s*({re.escape(prefix)})-(\d{{1,12}})\s*\]", subject, re.IGNORECASE)
    if not found:
        return None
    return format_ticket_ref(int(found[-1][1]), prefix)


def format_ticket_ref(ticket_id: int, prefix: str = "CMP") -> str:
    """The public reference of a ticket id: ``CMP-000123``."""
    return f"{prefix}-{ticket_id:06d}"
