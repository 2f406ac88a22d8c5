"""The outbox: outgoing mail is a row written in the transaction of the change that caused it.

:func:`enqueue` only adds rows to the caller's session; the mail leaves when
the caller commits and the sender (:mod:`daemon.smtp_sender`) picks it up. A
rolled-back ticket change therefore never sends mail, and a committed one
always will, even across a crash.

Each row gets a signed Message-ID (:func:`daemon.references.make_reference`)
before it is stored, so every retry, and a duplicate after a crash, carries
the same one.

Loops are cut here twice: automatic mail is never addressed to one of our own
addresses, and at most ``flood_cap_count`` automatic mails per recipient are
queued per window. Mail over the cap is stored with status ``suppressed`` and
the reason, with an event on the ticket: nothing silently disappears.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.mail_headers import (
    MAX_SUBJECT,
    clean_header_text,
    clean_message_id,
    format_address,
    loop_headers,
    normalise_email,
    parse_address,
)
from daemon.references import make_reference
from models import Event, OutboxMail, Ticket

__all__ = [
    "OutboxConfig",
    "OutboxSettings",
    "Recipient",
    "agent_audience",
    "enqueue",
    "forget_flood_counts",
    "preload_flood_counts",
]

logger = logging.getLogger(__name__)

Recipient = str | tuple[str, str]
"""A bare address, or ``(display name, address)``."""

_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_FLOOD_COUNTS = "complaintd.outbox.flood_counts"  # session.info key: (transaction, counts)
_AGENT_KEY_CHARS = 12  # 60 bits of base32: unique among any realistic set of agents


class OutboxSettings(BaseModel):
    """``[outbox]``: the flood cap, and how the sender batches and retries."""

    # Unknown keys are almost always typos; reporting them beats ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)

    flood_cap_count: Annotated[int, Field(ge=1)] = 5
    """At most this many automatic mails to one address per window."""
    flood_cap_window_minutes: Annotated[int, Field(ge=1)] = 60
    connections: Annotated[int, Field(ge=1, le=50)] = 4
    """SMTP connections kept open while a batch is sent."""
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 200
    """Rows claimed at once."""
    max_age_hours: Annotated[float, Field(gt=0)] = 72
    """A mail still not accepted this long after it was queued fails for good."""
    retry_base_seconds: Annotated[float, Field(gt=0)] = 5
    retry_max_seconds: Annotated[float, Field(gt=0)] = 600
    sender_process: bool = True
    """``complaintd run`` sends from a child process, so sending and intake use two
    cores instead of taking turns on one (see :mod:`daemon.sender_process`)."""


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """What :func:`enqueue` needs: signing, our identity, and the flood cap."""

    secret: bytes
    """The server secret that signs Message-IDs."""
    domain: str
    """The right-hand side of our Message-IDs."""
    loop_value: str
    """Our ``X-Loop`` value; intake recognises our own mail by it."""
    from_address: str
    """``Name <address>`` or a bare address: the From of every mail."""
    own_addresses: frozenset[str] = field(default_factory=frozenset)
    """Addresses of ours: never recipients of automatic mail."""
    flood_cap_count: int = 5
    flood_cap_window: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("OutboxConfig.secret must not be empty")
        # Fail at start, not at the first mail, when the configured From is unusable;
        # keep it in the stored, formatted form.
        object.__setattr__(self, "from_address", format_address(*parse_address(self.from_address)))
        object.__setattr__(self, "own_addresses", frozenset(a.lower() for a in self.own_addresses))

    @classmethod
    def from_settings(
        cls,
        settings: OutboxSettings,
        *,
        secret: bytes,
        domain: str,
        loop_value: str,
        from_address: str,
        own_addresses: Iterable[str],
    ) -> OutboxConfig:
        """A config with the flood cap taken from ``[outbox]``."""
        return cls(
            secret=secret,
            domain=domain,
            loop_value=loop_value,
            from_address=from_address,
            own_addresses=frozenset(own_addresses),
            flood_cap_count=settings.flood_cap_count,
            flood_cap_window=timedelta(minutes=settings.flood_cap_window_minutes),
        )


def agent_audience(email: str) -> str:
    """The reference audience of mail to an agent: ``a`` and a short stable hash of the address.

    Intake compares it with the hash of the replying agent's address, so a
    command is obeyed only from the agent the referenced mail was sent to.
    """
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).digest()
    return "a" + base64.b32encode(digest).decode("ascii").lower()[:_AGENT_KEY_CHARS]


def enqueue(
    session: Session,
    *,
    ticket: Ticket,
    kind: str,
    to: Sequence[Recipient],
    subject: str,
    text: str,
    html: str | None = None,
    in_reply_to: str | None = None,
    references: Iterable[str] = (),
    audience: Literal["customer", "agent"],
    automatic: bool,
    config: OutboxConfig,
    cc: Sequence[Recipient] = (),
    now: datetime | None = None,
    flood_capped: bool | None = None,
) -> OutboxMail | None:
    """Queue one mail about ``ticket`` in the caller's transaction (adds rows, never commits).

    ``kind`` names the mail (``acknowledgement``, ``assignment_notice``, ...);
    ``audience`` is whom the signed Message-ID is minted for: the customer, or
    the agent at the first ``to`` address. ``automatic`` marks mail no person
    wrote: it gets ``Auto-Submitted`` and counts towards the flood cap, unless
    ``flood_capped`` is False (notices to our own agents: the cap is there to
    stop ping-pong with robots outside, not to silence staff notices).
    ``subject`` and display names may hold customer text; they are sanitised.

    Returns the new row: ``pending``, or ``suppressed`` when the flood cap was
    reached (with the reason and a ``mail_suppressed`` event). Returns None,
    with a ``mail_not_sent`` event, when no acceptable recipient is left
    (invalid addresses, or automatic mail to our own addresses).
    """
    now = now if now is not None else datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not _KIND.fullmatch(kind):
        raise ValueError(f"invalid mail kind {kind!r}")
    if ticket.id is None:
        session.flush()  # the signed Message-ID needs the ticket id

    problems: list[str] = []
    to_list = _recipients(to, problems)
    cc_list = _recipients(cc, problems)
    if automatic:
        to_list = _without_own(to_list, config.own_addresses, problems)
        cc_list = _without_own(cc_list, config.own_addresses, problems)
    cc_list = [entry for entry in cc_list if entry[1] not in {email for _, email in to_list}]
    if not to_list:
        _event(session, ticket, now, "mail_not_sent", kind=kind, reasons=problems)
        logger.warning(
            "ticket %s: %s not queued: %s", ticket.id, kind, "; ".join(problems) or "no recipient"
        )
        return None
    if problems:
        _event(session, ticket, now, "mail_recipients_dropped", kind=kind, reasons=problems)

    recipient_key = to_list[0][1].lower()
    audience_code = "c" if audience == "customer" else agent_audience(recipient_key)
    parent = clean_message_id(in_reply_to) if in_reply_to else None
    chain = [mid for mid in (clean_message_id(value) for value in references) if mid]
    if parent is not None and parent not in chain:
        chain.append(parent)

    mail = OutboxMail(
        ticket_id=ticket.id,
        kind=kind,
        message_id=make_reference(config.secret, ticket.id, audience_code, config.domain),
        from_address=config.from_address,
        to_addresses=[formatted for formatted, _ in to_list],
        cc=[formatted for formatted, _ in cc_list],
        recipient_key=recipient_key,
        subject=clean_header_text(subject, MAX_SUBJECT),
        body_text=text,
        body_html=html,
        in_reply_to=parent,
        references=chain,
        extra_headers=loop_headers(kind, automatic=automatic, loop_value=config.loop_value),
        automatic=automatic,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    if automatic if flood_capped is None else flood_capped:
        recent = _take_flood_slot(session, recipient_key, now - config.flood_cap_window, config)
        if recent >= config.flood_cap_count:
            window = int(config.flood_cap_window.total_seconds() // 60)
            mail.status = "suppressed"
            mail.last_error = (
                f"flood cap: {recent} automatic mails to this address in the last {window} min"
            )
            _event(
                session, ticket, now, "mail_suppressed",
                kind=kind, to=recipient_key, message_id=mail.message_id, reason=mail.last_error,
            )  # fmt: skip
            logger.warning(
                "ticket %s: %s to %s suppressed by the flood cap", ticket.id, kind, recipient_key
            )
    session.add(mail)
    return mail


def _recipients(values: Sequence[Recipient], problems: list[str]) -> list[tuple[str, str]]:
    """``(formatted, normalised address)`` per acceptable recipient, de-duplicated."""
    found: list[tuple[str, str]] = []
    for value in values:
        name, email = ("", value) if isinstance(value, str) else value
        try:
            address = normalise_email(email)
            formatted = format_address(name, address)
        except ValueError as exc:
            problems.append(f"{clean_header_text(email, 100)!r}: {exc}")
            continue
        if address not in {known for _, known in found}:
            found.append((formatted, address))
    return found


def _without_own(
    recipients: list[tuple[str, str]], own: frozenset[str], problems: list[str]
) -> list[tuple[str, str]]:
    kept = []
    for formatted, address in recipients:
        if address.lower() in own:
            problems.append(f"{address}: our own address never gets automatic mail")
        else:
            kept.append((formatted, address))
    return kept


def preload_flood_counts(session: Session, recipients: Iterable[str], since: datetime) -> None:
    """Count the automatic mails to many recipients since ``since`` with one query.

    For a batch that is about to queue mail to many addresses: the counts are
    kept in the session for the current transaction only, and :func:`enqueue`
    uses and updates them instead of counting again for every mail, so the cap
    stays exact for every mail queued in this transaction. Call
    :func:`forget_flood_counts` after a rolled-back savepoint that queued
    mail; until then the counts may be too high (mail is suppressed early,
    never sent over the cap). Addresses that are not acceptable are skipped.
    """
    keys: set[str] = set()
    for email in recipients:
        try:
            keys.add(normalise_email(email).lower())
        except ValueError:
            continue
    cache = _flood_cache(session, create=True)
    assert cache is not None
    wanted = sorted(key for key in keys if key not in cache)
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = session.execute(
            select(OutboxMail.recipient_key, func.count())
            .where(
                OutboxMail.recipient_key.in_(chunk),
                OutboxMail.created_at >= since,
                OutboxMail.automatic.is_(True),
                OutboxMail.status != "suppressed",
            )
            .group_by(OutboxMail.recipient_key)
        ).all()
        found.update((str(key), int(count)) for key, count in rows)
    for row in session.new:
        # Queued in this transaction and not flushed yet: not in the query.
        if (
            isinstance(row, OutboxMail)
            and row.recipient_key in found
            and row.automatic
            and row.status != "suppressed"
            and row.created_at >= since
        ):
            found[row.recipient_key] += 1
    for key in wanted:
        cache[key] = found.get(key, 0)


def forget_flood_counts(session: Session) -> None:
    """Drop the counts :func:`preload_flood_counts` kept; :func:`enqueue` counts each again."""
    session.info.pop(_FLOOD_COUNTS, None)


def _flood_cache(session: Session, *, create: bool = False) -> dict[str, int] | None:
    """The flood-cap counts kept for the session's current transaction, if any."""
    transaction = session.get_transaction()
    entry = session.info.get(_FLOOD_COUNTS)
    if entry is not None and entry[0] is transaction and transaction is not None:
        counts: dict[str, int] = entry[1]
        return counts
    if entry is not None:
        del session.info[_FLOOD_COUNTS]  # left from an earlier transaction
    if not create or transaction is None:
        return None
    counts = {}
    session.info[_FLOOD_COUNTS] = (transaction, counts)
    return counts


def _take_flood_slot(
    session: Session, recipient_key: str, since: datetime, config: OutboxConfig
) -> int:
    """Automatic mails to ``recipient_key`` since ``since``; a kept count grows by this one."""
    cache = _flood_cache(session)
    if cache is None:
        return _recent_automatic(session, recipient_key, since)
    recent = cache.get(recipient_key)
    if recent is None:
        recent = _recent_automatic(session, recipient_key, since)
    # Under the cap this mail is queued and counts from now on; over it, it is suppressed.
    cache[recipient_key] = recent + 1 if recent < config.flood_cap_count else recent
    return recent


def _recent_automatic(session: Session, recipient_key: str, since: datetime) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(OutboxMail)
        .where(
            OutboxMail.recipient_key == recipient_key,
            OutboxMail.created_at >= since,
            OutboxMail.automatic.is_(True),
            OutboxMail.status != "suppressed",
        )
    )
    # After the query (which autoflushes unless the caller turned that off): rows
    # queued in this transaction and still unflushed count too, flushed ones
    # are in the query already.
    pending = sum(
        1
        for row in session.new
        if isinstance(row, OutboxMail)
        and row.recipient_key == recipient_key
        and row.automatic
        and row.status != "suppressed"
        and row.created_at >= since
    )
    return int(count or 0) + pending


def _event(
    session: Session, ticket: Ticket, now: datetime, event_kind: str, **data: object
) -> None:
    session.add(Event(ticket_id=ticket.id, at=now, kind=event_kind, actor="system", data=data))
