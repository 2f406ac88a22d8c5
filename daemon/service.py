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
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.batch_context import BatchContext, KnownMessage, KnownMessages
from daemon.errors import TransientError
from daemon.mail_kind import MailKind, classify_mail
from daemon.parsing import ParsedMessage, parse_message
from daemon.records import (
    describe_error,
    fingerprint,
    fingerprints_of_stored,
    new_event,
    new_message,
    new_receipt,
    quarantine_entry,
)
from daemon.references import format_ticket_ref, parse_ticket_tag, verify_references
from daemon.ticket_classification import Classify, apply_prediction
from daemon.ticket_matching import MatchCandidates, TicketMatch, match_ticket
from daemon.triage import Triage
from models import (
    MailboxReceipt,
    Message,
    Participant,
    Quarantine,
    RawMessage,
    Ticket,
    is_outage,
)

if TYPE_CHECKING:
    from classifier import Prediction
    from daemon.lifecycle import TicketLifecycle

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
        classify: Classify | None = None,
        triage: Triage | None = None,
        on_queued: Callable[[], None] | None = None,
        lifecycle: TicketLifecycle | None = None,
    ) -> None:
        self._sessions = sessions
        self._config = config
        self._clock = clock
        self._classify = classify
        self._triage = triage
        self._on_queued = on_queued
        self._lifecycle = lifecycle

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
        predictions = self._predict(parsed)
        try:
            with self._sessions() as session, session.begin():
                receipts = self._receipts(session, [source for _raw, source in items])
                readable = [mail for mail in parsed if not isinstance(mail, Exception)]
                batch = BatchContext(
                    KnownMessages.load(session, readable),
                    predictions,
                    self._triage.begin(session, readable, now=self._clock())
                    if self._triage is not None
                    else None,
                )
                results: list[IngestResult | None] = [None] * len(items)
                group: list[int] = []
                for index, ((raw, source), mail) in enumerate(zip(items, parsed, strict=True)):
                    receipt = _receipt_for(receipts, source)
                    if receipt is not None:
                        results[index] = _already_stored(receipt, source)
                    elif self._is_fresh(mail, batch.known, [parsed[i] for i in group]):
                        group.append(index)
                    else:
                        self._store_group(session, items, parsed, group, results, batch)
                        group = []
                        results[index] = replace(
                            self._ingest_isolated(session, raw, mail, source, batch),
                            source=source,
                        )
                self._store_group(session, items, parsed, group, results, batch)
                if batch.triage is not None:
                    batch.triage.finish(session)
        except OperationalError as exc:
            raise TransientError(f"database unavailable: {exc.orig}") from exc
        if batch.triage is not None and batch.triage.queued and self._on_queued is not None:
            self._on_queued()
        return [result for result in results if result is not None]

    def reject_oversized(self, header: bytes, size: int, source: MailSource) -> IngestResult:
        """Record a mail too large to store; it stays on the IMAP server, nothing is lost."""
        now = self._clock()
        reason = (
            f"message is {size} bytes, over the limit of {self._config.max_message_bytes}; "
            "left on the IMAP server, not stored"
        )
        try:
            with self._sessions() as session, session.begin():
                entry = quarantine_entry(header, source, "rejected", reason, now, None)
                session.add(entry)
                session.flush()
                session.add(new_receipt(source, now, quarantine_id=entry.id, leave_on_server=True))
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
                triage = self._triage.begin(session) if self._triage is not None else None
                known = KnownMessages.load(session, [parsed])
                batch = BatchContext(known, self._predict([parsed]), triage)
                with session.begin_nested():
                    result = self._store(session, raw.data, parsed, None, raw, batch)
            except _RejectionError as exc:
                entry.attempts += 1
                entry.reason = str(exc)
                entry.kind = "rejected"
                return IngestResult(IngestOutcome.REJECTED, quarantine_id=entry.id, detail=str(exc))
            except Exception as exc:  # the retry itself failed: keep it quarantined
                entry.attempts += 1
                entry.kind = "error"
                entry.reason = describe_error(exc)
                return IngestResult(
                    IngestOutcome.QUARANTINED, quarantine_id=entry.id, detail=entry.reason
                )
            entry.resolved_at = self._clock()
            entry.resolved_message_pk = result.message_pk
            if triage is not None:
                triage.finish(session)
        if triage is not None and triage.queued and self._on_queued is not None:
            self._on_queued()
        return result

    # -- one mail -------------------------------------------------------------

    def _parse(self, raw: bytes) -> ParsedMessage | Exception:
        try:
            return parse_message(raw, own_loop_header_value=self._config.loop_value)
        except Exception as exc:  # the parser promises not to raise; if it does, quarantine
            logger.exception("the parser failed on a mail; quarantining it")
            return exc

    def _predict(self, parsed: Sequence[ParsedMessage | Exception]) -> dict[int, Prediction]:
        """Classify the mails that can open or extend a complaint (pure, before the lock)."""
        wanted = [
            mail
            for mail in parsed
            if not isinstance(mail, Exception)
            and classify_mail(mail, self._config.own_addresses, self._config.loop_value)
            in (MailKind.CUSTOMER, MailKind.LIST)
        ]
        if not wanted or self._classify is None:
            return {}
        try:
            predictions = self._classify([(mail.subject, mail.text) for mail in wanted])
        except Exception:  # a broken model must not stop intake: store unclassified
            logger.exception("classification failed; storing the mails unclassified")
            return {}
        if predictions is None:
            return {}
        return {id(mail): prediction for mail, prediction in zip(wanted, predictions, strict=True)}

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
        known: KnownMessages,
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
        batch: BatchContext,
    ) -> None:
        """Insert a group of fresh complaints with one flush; isolate them on failure."""
        if not group:
            return
        try:
            with session.begin_nested():
                created = [
                    self._stage_new_ticket(session, items[i][0], parsed[i], items[i][1], batch)
                    for i in group
                ]
                session.flush()
                for ticket, message in created:
                    ticket.ref = format_ticket_ref(ticket.id, self._config.ticket_prefix)
                    batch.known.add(message)
                for i, (ticket, _message) in zip(group, created, strict=True):
                    mail = parsed[i]
                    assert not isinstance(mail, Exception)
                    # Inside the group's savepoint: a failure sends the whole group
                    # down the one-by-one path, where each triage is isolated.
                    self._run_triage(session, batch, ticket, mail, isolated=False)
                session.flush()
        except Exception as exc:
            if is_outage(exc):
                raise
            logger.warning("a group insert failed; storing its %d mails one by one", len(group))
            if batch.triage is not None:
                batch.triage.forget(session)
            # The savepoint took the group's messages with it: forget them, or the
            # one-by-one pass would take each mail for a duplicate of itself.
            ids = []
            for i in group:
                mail = parsed[i]
                assert not isinstance(mail, Exception)
                ids.append(mail.message_id)
            batch.known.reload(session, *ids)
            for i in group:
                raw, source = items[i]
                results[i] = replace(
                    self._ingest_isolated(session, raw, parsed[i], source, batch), source=source
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
        batch: BatchContext,
    ) -> tuple[Ticket, Message]:
        assert not isinstance(parsed, Exception) and parsed.from_addr is not None
        now = self._clock()
        kind = classify_mail(parsed, self._config.own_addresses, self._config.loop_value)
        sender = parsed.from_addr.email
        message = new_message(parsed, kind, parsed.message_id, fingerprint(parsed), now)
        _attach_origin(session, message, raw, None, source, now)
        ticket = self._new_ticket(parsed, sender, source, now)
        message.ticket = ticket
        session.add(message)
        reason = "no reference to an existing ticket"
        session.add(
            new_event(ticket, now, "created", sender, {"reason": reason, "mailbox": ticket.mailbox})
        )
        apply_prediction(session, ticket, parsed, batch.prediction(parsed), now, new=True)
        return ticket, message

    def _ingest_isolated(
        self,
        session: Session,
        raw: bytes,
        parsed: ParsedMessage | Exception,
        source: MailSource | None,
        batch: BatchContext,
    ) -> IngestResult:
        if isinstance(parsed, Exception):
            with session.begin_nested():
                return self._quarantine(session, raw, source, "error", describe_error(parsed))
        for attempt in (1, 2):
            try:
                with session.begin_nested():
                    return self._store(session, raw, parsed, source, None, batch)
            except IntegrityError:
                # Another instance stored the same mail between our check and
                # our insert; the second pass finds its row and records a duplicate.
                batch.known.reload(session, parsed.message_id)
                if attempt == 2:
                    raise
            except _RejectionError as exc:
                with session.begin_nested():
                    return self._quarantine(session, raw, source, "rejected", str(exc))
            except Exception as exc:
                if is_outage(exc):
                    raise
                logger.exception("mail %s could not be processed; quarantining it", source)
                batch.known.reload(session, parsed.message_id)  # its rows were rolled back
                with session.begin_nested():
                    return self._quarantine(session, raw, source, "error", describe_error(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    def _store(
        self,
        session: Session,
        raw: bytes,
        parsed: ParsedMessage,
        source: MailSource | None,
        raw_row: RawMessage | None,
        batch: BatchContext,
    ) -> IngestResult:
        content, *older = fingerprints_of_stored(parsed)
        existing = batch.known.get(parsed.message_id)
        same = next((m for m in existing if m.fingerprint in (content, *older)), None)
        if same is not None:
            return self._record_duplicate(session, same, source)
        dedup_key = parsed.message_id if not existing else f"{parsed.message_id}#{content}"

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
        existing_ticket = None
        if match.ticket_id is not None:
            # Locked on PostgreSQL: the escalation sweep must not change it meanwhile.
            existing_ticket = session.get_one(Ticket, match.ticket_id, with_for_update=True)
            if (
                kind is MailKind.CUSTOMER
                and self._lifecycle is not None
                and self._lifecycle.is_stale(existing_ticket, now)
            ):
                match = TicketMatch(
                    None, f"follow-up to {existing_ticket.ref}, closed too long ago to reopen"
                )
                existing_ticket = None
        message = new_message(parsed, kind, dedup_key, content, now)
        _attach_origin(session, message, raw, raw_row, source, now)
        if existing_ticket is None:
            ticket = self._new_ticket(parsed, sender, source, now)
            message.ticket = ticket
            outcome = IngestOutcome.CREATED
        else:
            ticket = existing_ticket
            message.ticket_id = ticket.id
            outcome = IngestOutcome.ADDED
        session.add(message)
        session.flush()  # one round of INSERTs for raw, ticket, message, attachments, receipt
        batch.known.add(message)
        if outcome is IngestOutcome.CREATED:
            ticket.ref = format_ticket_ref(ticket.id, self._config.ticket_prefix)
            data = {"reason": match.reason, "mailbox": ticket.mailbox}
            session.add(new_event(ticket, now, "created", sender, data))
            apply_prediction(session, ticket, parsed, batch.prediction(parsed), now, new=True)
            self._run_triage(session, batch, ticket, parsed)
        else:
            participants = self._participants(session, ticket.id)
            self._note_follow_up(session, ticket, parsed, kind, sender, message, match, now)
            if kind in (MailKind.CUSTOMER, MailKind.LIST):
                previous_severity = ticket.severity
                prediction = batch.prediction(parsed)
                apply_prediction(session, ticket, parsed, prediction, now, new=False)
                if kind is MailKind.CUSTOMER and sender.lower() in participants:
                    self._customer_wrote(session, ticket, parsed, prediction, previous_severity)
        return IngestResult(outcome, ticket_ref=ticket.ref, message_pk=message.id)

    def _customer_wrote(
        self,
        session: Session,
        ticket: Ticket,
        parsed: ParsedMessage,
        prediction: Prediction | None,
        previous_severity: str | None,
    ) -> None:
        """Clocks, reopening and escalation triggers; a failure here never loses the mail."""
        if self._lifecycle is None:
            return
        now = self._clock()
        try:
            with session.begin_nested():
                self._lifecycle.customer_wrote(
                    session,
                    ticket,
                    now,
                    signals=prediction.signals if prediction is not None else (),
                    previous_severity=previous_severity,
                    text=parsed.text,
                )
        except Exception as exc:
            if is_outage(exc):
                raise
            logger.exception("follow-up handling of %s failed; the mail is stored", ticket.ref)
            session.add(new_event(ticket, now, "follow_up_failed", "system", {"error": str(exc)}))

    # -- steps --------------------------------------------------------------

    def _run_triage(
        self,
        session: Session,
        batch: BatchContext,
        ticket: Ticket,
        parsed: ParsedMessage,
        *,
        isolated: bool = True,
    ) -> None:
        """Route and acknowledge a new ticket; a failure here never loses the ticket."""
        if batch.triage is None:
            return
        now = self._clock()
        kind = classify_mail(parsed, self._config.own_addresses, self._config.loop_value)
        if not isolated:
            batch.triage.new_ticket(session, ticket, parsed, kind, now)
            return
        try:
            with session.begin_nested():
                batch.triage.new_ticket(session, ticket, parsed, kind, now)
        except Exception as exc:
            if is_outage(exc):
                raise
            # The ticket is stored either way; an admin sees why it has no owner.
            logger.exception("triage of %s failed; the ticket stays unrouted", ticket.ref)
            batch.triage.forget(session)
            session.add(new_event(ticket, now, "triage_failed", "system", {"error": str(exc)}))

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
        # A bounce joins a ticket only through a reference we signed: the mail
        # that bounced was ours, and ours carry one. Anyone can write a "bounce"
        # naming a customer's Message-ID.
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
        people = {sender: "customer"}
        # Our acknowledgement goes to the first Reply-To (a web form's robot sends
        # the mail, the customer is in Reply-To): the customer's replies come from
        # there, and later mail to the customer goes there too.
        for role, addresses in (
            (Participant.REPLY_TO, parsed.reply_to),
            ("cc", (*parsed.to, *parsed.cc)),
        ):
            for address in addresses:
                if address.email not in self._config.own_addresses:
                    people.setdefault(address.email, role)
        return list(people.items())

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
        session.add(new_event(ticket, now, event_kind, sender, data))
        ticket.updated_at = now
        if kind in (MailKind.CUSTOMER, MailKind.LIST):
            known = self._participants(session, ticket.id)
            for email, role in self._new_participants(parsed, sender):
                if email not in known:
                    # Only the opening mail says where the customer wants answers;
                    # a later Reply-To must not redirect the customer's mail.
                    kept = "cc" if role == Participant.REPLY_TO else role
                    session.add(Participant(ticket_id=ticket.id, email=email, role=kept))

    def _record_duplicate(
        self, session: Session, message: KnownMessage, source: MailSource | None
    ) -> IngestResult:
        now = self._clock()
        ticket = session.get(Ticket, message.ticket_id) if message.ticket_id else None
        if ticket is not None:
            where = f"{source.mailbox} uid {source.uid}" if source else "a retry"
            session.add(
                new_event(
                    ticket,
                    now,
                    "duplicate_delivery",
                    "system",
                    {"message": message.id, "via": where},
                )
            )
        if source is not None:
            session.add(new_receipt(source, now, message_pk=message.id))
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
        entry = quarantine_entry(raw, source, kind, reason, now, raw_row.id)
        session.add(entry)
        session.flush()
        if source is not None:
            session.add(new_receipt(source, now, quarantine_id=entry.id))
        session.flush()
        outcome = IngestOutcome.REJECTED if kind == "rejected" else IngestOutcome.QUARANTINED
        return IngestResult(outcome, quarantine_id=entry.id, detail=reason)


def _attach_origin(
    session: Session,
    message: Message,
    raw: bytes,
    raw_row: RawMessage | None,
    source: MailSource | None,
    now: datetime,
) -> None:
    """Keep the raw bytes with the message and, for IMAP mail, where it was read (a receipt)."""
    message.raw = raw_row or RawMessage(
        sha256=hashlib.sha256(raw).hexdigest(), size=len(raw), data=raw, received_at=now
    )
    if source is not None:
        message.mailbox, message.uidvalidity, message.uid = (
            source.mailbox,
            source.uidvalidity,
            source.uid,
        )
        session.add(new_receipt(source, now, message=message))


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
