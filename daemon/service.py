"""The intake service: runs raw mail through parse → kind → thread → store, exactly once.

Workers hand it raw bytes with where they came from; it decides and records,
and never lets one bad mail stop the others. A batch shares one transaction
(one fsync for many mails) while each mail gets its own SAVEPOINT, so a mail
that fails is rolled back alone and quarantined with the reason.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.errors import TransientError
from daemon.mail_kind import MailKind, classify_mail
from daemon.parsing import ParsedMessage, parse_message
from daemon.references import format_ticket_ref, parse_ticket_tag, verify_references
from daemon.ticket_matching import MatchCandidates, TicketMatch, match_ticket
from models import (
    Attachment,
    Event,
    MailboxReceipt,
    Message,
    Participant,
    Quarantine,
    RawMessage,
    Ticket,
)

__all__ = ["IngestOutcome", "IngestResult", "IntakeService", "MailSource", "ServiceConfig"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MailSource:
    """Where a mail was read: the exactly-once key of intake."""

    mailbox: str
    uidvalidity: int
    uid: int


class IngestOutcome(StrEnum):
    """What happened to one mail."""

    CREATED = "created"
    """A new ticket."""
    ADDED = "added"
    """Added to an existing ticket."""
    DUPLICATE = "duplicate"
    """The same mail was already stored (another address, or a re-delivery)."""
    ALREADY_STORED = "already_stored"
    """This (mailbox, UIDVALIDITY, UID) was stored before (e.g. before a crash)."""
    REJECTED = "rejected"
    """Recorded in the quarantine by policy (loop, bounce for nothing we know, ...)."""
    QUARANTINED = "quarantined"
    """Processing failed; recorded in the quarantine with the error."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The outcome of one mail, and whether the IMAP server may now move/flag it."""

    outcome: IngestOutcome
    ticket_ref: str | None = None
    message_pk: int | None = None
    quarantine_id: int | None = None
    leave_on_server: bool = False
    detail: str = ""
    source: MailSource | None = None


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """The settings the service needs, already resolved."""

    secret: bytes
    own_addresses: frozenset[str]
    loop_value: str
    ticket_prefix: str = "CMP"
    max_message_bytes: int = 64 * 1024 * 1024


class _RejectionError(Exception):
    """A policy decision not to make a ticket of this mail (not an error)."""


class IntakeService:
    """Stores inbound mail as tickets; safe to call again with the same mail."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: ServiceConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._config = config
        self._clock = clock

    # -- public API ---------------------------------------------------------

    def ingest(self, raw: bytes, source: MailSource | None = None) -> IngestResult:
        """Store one mail; see :meth:`ingest_batch`."""
        return self.ingest_batch([(raw, source)])[0]

    def ingest_batch(self, items: Sequence[tuple[bytes, MailSource | None]]) -> list[IngestResult]:
        """Store a batch of mails in one transaction, each isolated from the others.

        Returns one result per item, in order, after the commit. Raises
        :class:`TransientError` when the database itself is unavailable, in
        which case nothing of the batch was stored and nothing may be acked.

        New complaints that reference nothing (the bulk of any burst) are
        inserted together in one flush; if that group fails, each of its
        mails is retried alone in its own savepoint, so one bad mail is
        quarantined without taking the others with it.
        """
        # Parsing is pure and the slowest step: do it before taking the write lock.
        parsed = [self._parse(raw) for raw, _source in items]
        try:
            with self._sessions() as session, session.begin():
                receipts = self._receipts(session, [source for _raw, source in items])
                known = _KnownMessages.load(
                    session, [mail for mail in parsed if not isinstance(mail, Exception)]
                )
                results: list[IngestResult | None] = [None] * len(items)
                group: list[int] = []
                for index, ((raw, source), mail) in enumerate(zip(items, parsed, strict=True)):
                    receipt = _receipt_for(receipts, source)
                    if receipt is not None:
                        results[index] = _already_stored(receipt, source)
                    elif self._is_fresh(mail, known, [parsed[i] for i in group]):
                        group.append(index)
                    else:
                        self._store_group(session, items, parsed, group, results, known)
                        group = []
                        results[index] = replace(
                            self._ingest_isolated(session, raw, mail, source, known),
                            source=source,
                        )
                self._store_group(session, items, parsed, group, results, known)
                return [result for result in results if result is not None]
        except OperationalError as exc:
            raise TransientError(f"database unavailable: {exc.orig}") from exc

    def reject_oversized(self, header: bytes, size: int, source: MailSource) -> IngestResult:
        """Record a mail too large to store; it stays on the IMAP server, nothing is lost."""
        now = self._clock()
        reason = (
            f"message is {size} bytes, over the limit of {self._config.max_message_bytes}; "
            "left on the IMAP server, not stored"
        )
        try:
            with self._sessions() as session, session.begin():
                entry = _quarantine_entry(header, source, "rejected", reason, now, None)
                session.add(entry)
                session.flush()
                session.add(_receipt(source, now, quarantine_id=entry.id, leave_on_server=True))
        except OperationalError as exc:
            raise TransientError(f"database unavailable: {exc.orig}") from exc
        return IngestResult(
            IngestOutcome.REJECTED,
            quarantine_id=entry.id,
            leave_on_server=True,
            detail=reason,
            source=source,
        )

    def retry_quarantined(self, quarantine_id: int) -> IngestResult:
        """Run a quarantined mail through the pipeline again (after a fix or a config change)."""
        with self._sessions() as session, session.begin():
            entry = session.get(Quarantine, quarantine_id)
            if entry is None:
                raise LookupError(f"no quarantine entry {quarantine_id}")
            if entry.resolved_at is not None:
                return IngestResult(IngestOutcome.ALREADY_STORED, detail="already resolved")
            raw = session.get(RawMessage, entry.raw_id) if entry.raw_id is not None else None
            if raw is None:
                return IngestResult(
                    IngestOutcome.REJECTED,
                    quarantine_id=entry.id,
                    detail="the raw mail was not kept (too large); nothing to retry",
                )
            try:
                parsed = parse_message(raw.data, own_loop_header_value=self._config.loop_value)
                known = _KnownMessages.load(session, [parsed])
                with session.begin_nested():
                    result = self._store(session, raw.data, parsed, None, raw, known)
            except _RejectionError as exc:
                entry.attempts += 1
                entry.reason = str(exc)
                entry.kind = "rejected"
                return IngestResult(IngestOutcome.REJECTED, quarantine_id=entry.id, detail=str(exc))
            except Exception as exc:  # the retry itself failed: keep it quarantined
                entry.attempts += 1
                entry.kind = "error"
                entry.reason = _describe(exc)
                return IngestResult(
                    IngestOutcome.QUARANTINED, quarantine_id=entry.id, detail=entry.reason
                )
            entry.resolved_at = self._clock()
            entry.resolved_message_pk = result.message_pk
            return result

    # -- one mail -------------------------------------------------------------

    def _parse(self, raw: bytes) -> ParsedMessage | Exception:
        try:
            return parse_message(raw, own_loop_header_value=self._config.loop_value)
        except Exception as exc:  # the parser promises not to raise; if it does, quarantine
            logger.exception("the parser failed on a mail; quarantining it")
            return exc

    @staticmethod
    def _receipts(
        session: Session, sources: Sequence[MailSource | None]
    ) -> dict[tuple[str, int, int], MailboxReceipt]:
        keys = {(s.mailbox, s.uidvalidity, s.uid) for s in sources if s is not None}
        if not keys:
            return {}
        uids = [uid for _box, _validity, uid in keys]
        rows = session.scalars(
            select(MailboxReceipt).where(
                MailboxReceipt.mailbox.in_({box for box, _v, _u in keys}),
                MailboxReceipt.uid >= min(uids),
                MailboxReceipt.uid <= max(uids),
            )
        )
        found = {(r.mailbox, r.uidvalidity, r.uid): r for r in rows}
        return {key: receipt for key, receipt in found.items() if key in keys}

    def _is_fresh(
        self,
        parsed: ParsedMessage | Exception,
        known: _KnownMessages,
        group: Sequence[ParsedMessage | Exception],
    ) -> bool:
        """A new complaint that needs no lookup: it can only open a new ticket."""
        if isinstance(parsed, Exception) or parsed.from_addr is None:
            return False
        if parsed.in_reply_to or parsed.references or known.get(parsed.message_id):
            return False
        if any(not isinstance(m, Exception) and m.message_id == parsed.message_id for m in group):
            return False
        kind = classify_mail(parsed, self._config.own_addresses, self._config.loop_value)
        if kind not in (MailKind.CUSTOMER, MailKind.LIST):
            return False
        return parse_ticket_tag(parsed.subject, self._config.ticket_prefix) is None

    def _store_group(
        self,
        session: Session,
        items: Sequence[tuple[bytes, MailSource | None]],
        parsed: Sequence[ParsedMessage | Exception],
        group: Sequence[int],
        results: list[IngestResult | None],
        known: _KnownMessages,
    ) -> None:
        """Insert a group of fresh complaints with one flush; isolate them on failure."""
        if not group:
            return
        try:
            with session.begin_nested():
                created = [
                    self._stage_new_ticket(session, items[i][0], parsed[i], items[i][1])
                    for i in group
                ]
                session.flush()
                for ticket, message in created:
                    ticket.ref = format_ticket_ref(ticket.id, self._config.ticket_prefix)
                    known.add(message)
                session.flush()
        except OperationalError:
            raise
        except Exception:
            logger.warning("a group insert failed; storing its %d mails one by one", len(group))
            for i in group:
                raw, source = items[i]
                results[i] = replace(
                    self._ingest_isolated(session, raw, parsed[i], source, known), source=source
                )
            return
        for i, (ticket, message) in zip(group, created, strict=True):
            results[i] = IngestResult(
                IngestOutcome.CREATED,
                ticket_ref=ticket.ref,
                message_pk=message.id,
                source=items[i][1],
            )

    def _stage_new_ticket(
        self,
        session: Session,
        raw: bytes,
        parsed: ParsedMessage | Exception,
        source: MailSource | None,
    ) -> tuple[Ticket, Message]:
        assert not isinstance(parsed, Exception) and parsed.from_addr is not None
        now = self._clock()
        kind = classify_mail(parsed, self._config.own_addresses, self._config.loop_value)
        sender = parsed.from_addr.email
        message = _new_message(parsed, kind, parsed.message_id, _fingerprint(parsed), now)
        message.raw = RawMessage(
            sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), data=raw, received_at=now
        )
        if source is not None:
            message.mailbox, message.uidvalidity, message.uid = (
                source.mailbox,
                source.uidvalidity,
                source.uid,
            )
            session.add(_receipt(source, now, message=message))
        ticket = self._new_ticket(parsed, sender, source, now)
        message.ticket = ticket
        session.add(message)
        reason = "no reference to an existing ticket"
        session.add(
            _event(ticket, now, "created", sender, {"reason": reason, "mailbox": ticket.mailbox})
        )
        return ticket, message

    def _ingest_isolated(
        self,
        session: Session,
        raw: bytes,
        parsed: ParsedMessage | Exception,
        source: MailSource | None,
        known: _KnownMessages,
    ) -> IngestResult:
        if isinstance(parsed, Exception):
            with session.begin_nested():
                return self._quarantine(session, raw, source, "error", _describe(parsed))
        for attempt in (1, 2):
            try:
                with session.begin_nested():
                    return self._store(session, raw, parsed, source, None, known)
            except IntegrityError:
                # Another instance stored the same mail between our check and
                # our insert; the second pass finds its row and records a duplicate.
                known.reload(session, parsed.message_id)
                if attempt == 2:
                    raise
            except _RejectionError as exc:
                with session.begin_nested():
                    return self._quarantine(session, raw, source, "rejected", str(exc))
            except OperationalError:
                raise
            except Exception as exc:
                logger.exception("mail %s could not be processed; quarantining it", source)
                with session.begin_nested():
                    return self._quarantine(session, raw, source, "error", _describe(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    def _store(
        self,
        session: Session,
        raw: bytes,
        parsed: ParsedMessage,
        source: MailSource | None,
        raw_row: RawMessage | None,
        known: _KnownMessages,
    ) -> IngestResult:
        fingerprint = _fingerprint(parsed)
        existing = known.get(parsed.message_id)
        same = next((m for m in existing if m.fingerprint == fingerprint), None)
        if same is not None:
            return self._record_duplicate(session, same, source)
        dedup_key = parsed.message_id if not existing else f"{parsed.message_id}#{fingerprint}"

        kind = classify_mail(parsed, self._config.own_addresses, self._config.loop_value)
        sender = parsed.from_addr.email if parsed.from_addr else None
        if kind is MailKind.LOOP:
            raise _RejectionError("our own mail came back (mail loop); not processed")
        match = self._find_ticket(session, parsed, sender, kind)
        if kind in (MailKind.BOUNCE, MailKind.AUTO_REPLY) and match.ticket_id is None:
            what = "bounce" if kind is MailKind.BOUNCE else "automatic reply"
            raise _RejectionError(f"{what} that concerns no known ticket ({match.reason})")
        if sender is None:
            raise _RejectionError(
                "no sender address (From, Sender, Reply-To and Return-Path missing)"
            )

        now = self._clock()
        message = _new_message(parsed, kind, dedup_key, fingerprint, now)
        message.raw = raw_row or RawMessage(
            sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), data=raw, received_at=now
        )
        if source is not None:
            message.mailbox, message.uidvalidity, message.uid = (
                source.mailbox,
                source.uidvalidity,
                source.uid,
            )
            session.add(_receipt(source, now, message=message))
        if match.ticket_id is None:
            ticket = self._new_ticket(parsed, sender, source, now)
            message.ticket = ticket
            outcome = IngestOutcome.CREATED
        else:
            ticket = session.get_one(Ticket, match.ticket_id)
            message.ticket_id = ticket.id
            outcome = IngestOutcome.ADDED
        session.add(message)
        session.flush()  # one round of INSERTs for raw, ticket, message, attachments, receipt
        known.add(message)
        if outcome is IngestOutcome.CREATED:
            ticket.ref = format_ticket_ref(ticket.id, self._config.ticket_prefix)
            data = {"reason": match.reason, "mailbox": ticket.mailbox}
            session.add(_event(ticket, now, "created", sender, data))
        else:
            self._note_follow_up(session, ticket, parsed, kind, sender, message, match, now)
        return IngestResult(outcome, ticket_ref=ticket.ref, message_pk=message.id)

    # -- steps --------------------------------------------------------------

    def _find_ticket(
        self, session: Session, parsed: ParsedMessage, sender: str | None, kind: MailKind
    ) -> TicketMatch:
        references = [*parsed.in_reply_to, *reversed(parsed.references)]
        if kind is MailKind.BOUNCE:
            references = [*parsed.bounced_message_ids, *references]
        tag = parse_ticket_tag(parsed.subject, self._config.ticket_prefix)
        if not references and tag is None:
            return TicketMatch(None, "no reference to an existing ticket")
        signed_ids = [ref.ticket_id for ref in verify_references(self._config.secret, references)]
        existing_signed = [
            ticket_id for ticket_id in dict.fromkeys(signed_ids) if session.get(Ticket, ticket_id)
        ]
        referenced: dict[int, frozenset[str]] = {}
        if references:
            rows = session.execute(
                select(Message.ticket_id)
                .where(Message.message_id.in_(references[:100]))
                .where(Message.ticket_id.is_not(None))
                .distinct()
            ).scalars()
            for ticket_id in rows:
                if ticket_id is not None:
                    referenced[ticket_id] = self._participants(session, ticket_id)
        tagged: tuple[int, frozenset[str]] | None = None
        if tag is not None:
            tagged_id = session.scalars(select(Ticket.id).where(Ticket.ref == tag)).first()
            if tagged_id is not None:
                tagged = (tagged_id, self._participants(session, tagged_id))
        candidates = MatchCandidates(existing_signed, referenced, tagged, tag)
        if kind is MailKind.BOUNCE and not existing_signed and referenced:
            # A bounce comes from a mail server, never a participant: the
            # bounced mail's own Message-ID is proof enough.
            first = next(iter(referenced))
            return TicketMatch(first, "bounce of a mail on this ticket")
        return match_ticket(sender, candidates)

    @staticmethod
    def _participants(session: Session, ticket_id: int) -> frozenset[str]:
        return frozenset(
            session.scalars(select(Participant.email).where(Participant.ticket_id == ticket_id))
        )

    def _new_ticket(
        self, parsed: ParsedMessage, sender: str, source: MailSource | None, now: datetime
    ) -> Ticket:
        assert parsed.from_addr is not None
        ticket = Ticket(
            status="new",
            customer_email=sender,
            customer_name=parsed.from_addr.name,
            subject=parsed.subject,
            language=None,
            signals=[],
            mailbox=source.mailbox if source else None,
            created_at=now,
            updated_at=now,
        )
        ticket.participants = [
            Participant(email=email, role=role)
            for email, role in self._new_participants(parsed, sender)
        ]
        return ticket

    def _new_participants(self, parsed: ParsedMessage, sender: str) -> list[tuple[str, str]]:
        people = [(sender, "customer")]
        for address in (*parsed.to, *parsed.cc):
            if address.email not in self._config.own_addresses and address.email != sender:
                people.append((address.email, "cc"))
        return list(dict(people).items())

    def _note_follow_up(
        self,
        session: Session,
        ticket: Ticket,
        parsed: ParsedMessage,
        kind: MailKind,
        sender: str,
        message: Message,
        match: TicketMatch,
        now: datetime,
    ) -> None:
        event_kind = {MailKind.BOUNCE: "bounce", MailKind.AUTO_REPLY: "auto_reply"}.get(
            kind, "message_added"
        )
        data: dict[str, Any] = {"message": message.id, "reason": match.reason}
        if kind is MailKind.AUTO_REPLY:
            data["auto_submitted"] = parsed.auto_submitted
        session.add(_event(ticket, now, event_kind, sender, data))
        ticket.updated_at = now
        if kind in (MailKind.CUSTOMER, MailKind.LIST):
            known = self._participants(session, ticket.id)
            for email, role in self._new_participants(parsed, sender):
                if email not in known:
                    session.add(Participant(ticket_id=ticket.id, email=email, role=role))

    def _record_duplicate(
        self, session: Session, message: _KnownMessage, source: MailSource | None
    ) -> IngestResult:
        now = self._clock()
        ticket = session.get(Ticket, message.ticket_id) if message.ticket_id else None
        if ticket is not None:
            where = f"{source.mailbox} uid {source.uid}" if source else "a retry"
            session.add(
                _event(
                    ticket,
                    now,
                    "duplicate_delivery",
                    "system",
                    {"message": message.id, "via": where},
                )
            )
        if source is not None:
            session.add(_receipt(source, now, message_pk=message.id))
        session.flush()
        return IngestResult(
            IngestOutcome.DUPLICATE,
            ticket_ref=ticket.ref if ticket else None,
            message_pk=message.id,
        )

    def _quarantine(
        self,
        session: Session,
        raw: bytes,
        source: MailSource | None,
        kind: str,
        reason: str,
    ) -> IngestResult:
        now = self._clock()
        raw_row = RawMessage(
            sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), data=raw, received_at=now
        )
        session.add(raw_row)
        session.flush()
        entry = _quarantine_entry(raw, source, kind, reason, now, raw_row.id)
        session.add(entry)
        session.flush()
        if source is not None:
            session.add(_receipt(source, now, quarantine_id=entry.id))
        session.flush()
        outcome = IngestOutcome.REJECTED if kind == "rejected" else IngestOutcome.QUARANTINED
        return IngestResult(outcome, quarantine_id=entry.id, detail=reason)


def _fingerprint(parsed: ParsedMessage) -> str:
    sender = parsed.from_addr.email if parsed.from_addr else ""
    date = parsed.date.isoformat() if parsed.date else ""
    material = "\x1f".join((sender, parsed.subject, date, parsed.full_text))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def _receipt(
    source: MailSource,
    now: datetime,
    *,
    message: Message | None = None,
    message_pk: int | None = None,
    quarantine_id: int | None = None,
    leave_on_server: bool = False,
) -> MailboxReceipt:
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


def _receipt_for(
    receipts: dict[tuple[str, int, int], MailboxReceipt], source: MailSource | None
) -> MailboxReceipt | None:
    if source is None:
        return None
    return receipts.get((source.mailbox, source.uidvalidity, source.uid))


def _already_stored(receipt: MailboxReceipt, source: MailSource | None) -> IngestResult:
    return IngestResult(
        IngestOutcome.ALREADY_STORED,
        message_pk=receipt.message_pk,
        quarantine_id=receipt.quarantine_id,
        leave_on_server=receipt.leave_on_server,
        source=source,
    )


def _new_message(
    parsed: ParsedMessage, kind: MailKind, dedup_key: str, fingerprint: str, now: datetime
) -> Message:
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


@dataclass(frozen=True, slots=True)
class _KnownMessage:
    id: int
    ticket_id: int | None
    fingerprint: str


class _KnownMessages:
    """Messages already stored, by Message-ID, for the mails of one batch.

    Loaded with one query per batch instead of one per mail, and kept up to
    date as the batch inserts, so the same mail twice in one batch is caught.
    """

    def __init__(self, by_id: dict[str, list[_KnownMessage]]) -> None:
        self._by_id = by_id

    @classmethod
    def load(cls, session: Session, parsed: Sequence[ParsedMessage]) -> _KnownMessages:
        known = cls({})
        ids = list({mail.message_id for mail in parsed})
        for start in range(0, len(ids), 500):
            known._query(session, ids[start : start + 500])
        return known

    def _query(self, session: Session, message_ids: Sequence[str]) -> None:
        rows = session.execute(
            select(Message.id, Message.ticket_id, Message.fingerprint, Message.message_id).where(
                Message.message_id.in_(message_ids)
            )
        )
        for pk, ticket_id, fingerprint, message_id in rows:
            entries = self._by_id.setdefault(message_id, [])
            if all(entry.id != pk for entry in entries):
                entries.append(_KnownMessage(pk, ticket_id, fingerprint))

    def reload(self, session: Session, message_id: str) -> None:
        self._by_id.pop(message_id, None)
        self._query(session, [message_id])

    def get(self, message_id: str) -> list[_KnownMessage]:
        return self._by_id.get(message_id, [])

    def add(self, message: Message) -> None:
        entry = _KnownMessage(message.id, message.ticket_id, message.fingerprint)
        self._by_id.setdefault(message.message_id, []).append(entry)


def _event(ticket: Ticket, now: datetime, kind: str, actor: str, data: dict[str, Any]) -> Event:
    return Event(ticket=ticket, at=now, kind=kind, actor=actor, data=data)


def _quarantine_entry(
    raw: bytes,
    source: MailSource | None,
    kind: str,
    reason: str,
    now: datetime,
    raw_id: int | None,
) -> Quarantine:
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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:4000]
