"""Triage of a new ticket: route it, set its deadlines, acknowledge it, notify its owner.

The decisions are pure (:mod:`routing`); this module gathers their inputs
from the database once per batch (open tickets per agent, round-robin
positions), records the outcome on the ticket, and queues the mails in the
outbox inside the same transaction, so a ticket and its acknowledgement are
committed together or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from daemon.mail_kind import MailKind
from daemon.outbox import OutboxConfig, enqueue, forget_flood_counts, preload_flood_counts
from daemon.parsing import ParsedMessage
from daemon.records import new_event, render_or_record
from daemon.ticket_sla import SlaBook
from models import RoutingState, Ticket
from routing import BusinessCalendar, RoutingConfig, RoutingDecision, TicketFacts, route
from routing.sla import Deadline, Deadlines, compute_deadlines
from routing.ticket_clocks import TicketClocks

__all__ = ["OPEN_STATUSES", "PastTicket", "Triage", "TriageBatch", "facts_for"]

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("new", "open", "pending")
"""Statuses that count towards an agent's load."""

_PREVIOUS_TICKETS = 5  # earlier tickets of the customer listed in an assignment notice


def facts_for(
    parsed: ParsedMessage,
    *,
    category: str | None,
    category_confidence: float | None,
    severity: str | None,
    severity_confidence: float | None,
    language: str | None,
    signals: Sequence[str],
    mailbox: str | None,
) -> TicketFacts:
    """What routing rules may look at, for a parsed mail and its classification."""
    sender = parsed.from_addr.email if parsed.from_addr else ""
    return TicketFacts(
        sender=sender,
        category=category,
        category_confidence=category_confidence or 0.0,
        severity=severity,
        severity_confidence=severity_confidence or 0.0,
        language=language,
        mailbox=mailbox,
        to_addresses=tuple(address.email for address in (*parsed.to, *parsed.cc)),
        subject=parsed.subject,
        text=parsed.text,
        signals=tuple(signals),
    )


@dataclass
class Triage:
    """Routing, deadlines and the first mails of a new ticket."""

    routing: RoutingConfig
    outbox: OutboxConfig
    template_folder: Path | None = None
    _calendars: dict[str, BusinessCalendar] = field(default_factory=dict)

    def begin(
        self,
        session: Session,
        mails: Sequence[ParsedMessage] = (),
        *,
        now: datetime | None = None,
    ) -> TriageBatch:
        """Read the state routing needs once for a whole batch.

        With the batch's ``mails`` (and ``now``), what their mails need is
        read here too, with one query each instead of one per ticket: the
        senders' earlier tickets (for the assignment notice) and the
        automatic mails already sent to them (for the flood cap).
        """
        with session.no_autoflush:
            load = dict(
                session.execute(
                    select(Ticket.assignee, func.count(Ticket.id))
                    .where(Ticket.status.in_(OPEN_STATUSES), Ticket.assignee.is_not(None))
                    .group_by(Ticket.assignee)
                ).all()
            )
            rr_state = {
                str(team): int(index)
                for team, index in session.execute(
                    select(RoutingState.team, RoutingState.next_index)
                ).all()
            }
            batch = TriageBatch(self, {str(k): int(v) for k, v in load.items()}, rr_state)
            senders = [mail.from_addr.email for mail in mails if mail.from_addr is not None]
            if senders:
                batch.previous = _earlier_tickets(session, senders)
            if senders and now is not None:
                answer_to = [
                    (mail.reply_to[0] if mail.reply_to else mail.from_addr).email
                    for mail in mails
                    if mail.from_addr is not None
                ]
                preload_flood_counts(session, answer_to, now - self.outbox.flood_cap_window)
        return batch

    def calendar(self, name: str) -> BusinessCalendar:
        """The business calendar called ``name`` (built once)."""
        if name not in self._calendars:
            self._calendars[name] = BusinessCalendar.from_config(self.routing.calendar(name))
        return self._calendars[name]


@dataclass
class TriageBatch:
    """Triage state for one intake batch; :meth:`finish` stores it."""

    triage: Triage
    load: dict[str, int]
    rr_state: dict[str, int]
    changed_teams: set[str] = field(default_factory=set)
    queued: int = 0
    previous: dict[str, list[PastTicket]] | None = None
    """Each sender's most recent tickets before the batch, newest first, read by
    :meth:`Triage.begin`; None: read from the database for each notice."""
    created: dict[str, list[Ticket]] = field(default_factory=dict)
    """The tickets this batch opened, by customer address."""

    def new_ticket(
        self,
        session: Session,
        ticket: Ticket,
        parsed: ParsedMessage,
        kind: MailKind,
        now: datetime,
    ) -> RoutingDecision:
        """Route ``ticket`` (already flushed: it has an id) and queue its mails."""
        config = self.triage.routing
        facts = facts_for(
            parsed,
            category=ticket.category,
            category_confidence=ticket.category_confidence,
            severity=ticket.severity,
            severity_confidence=ticket.severity_confidence,
            language=ticket.language,
            signals=ticket.signals or (),
            mailbox=ticket.mailbox,
        )
        decision = route(facts, config, self.load, self.rr_state)
        self._remember(decision)
        if self.previous is not None:
            self.created.setdefault(ticket.customer_email, []).append(ticket)
        calendar = self.triage.calendar(decision.calendar)
        deadlines = compute_deadlines(decision.sla, calendar, now)
        ticket.tier, ticket.team, ticket.assignee = decision.tier, decision.team, decision.assignee
        ticket.routing_rule = decision.rule
        ticket.sla_policy = decision.sla.name
        ticket.tags = sorted({*(ticket.tags or []), *decision.tags})
        SlaBook.store(ticket, TicketClocks.open(decision.sla, decision.calendar, calendar, now))
        ticket.unanswered_count = 1
        ticket.last_customer_at = now
        session.add(
            new_event(
                ticket,
                now,
                "routed",
                "system",
                {
                    "rule": decision.rule,
                    "reasons": list(decision.reasons),
                    "tier": decision.tier,
                    "team": decision.team,
                    "assignee": decision.assignee,
                    "sla_policy": decision.sla.name,
                    "first_response_due": _iso(_due(deadlines.first_response)),
                    "resolution_due": _iso(_due(deadlines.resolution)),
                },
            )
        )
        with session.no_autoflush:
            if decision.acknowledge and kind is MailKind.CUSTOMER:
                self._acknowledge(session, ticket, parsed, decision, deadlines, calendar, now)
            self._notify(session, ticket, parsed, decision, deadlines, calendar, now)
        return decision

    def forget(self, session: Session) -> None:
        """After a rolled-back savepoint: read what was kept for the batch afresh when needed."""
        forget_flood_counts(session)

    def finish(self, session: Session) -> None:
        """Store the round-robin positions that moved during the batch."""
        forget_flood_counts(session)
        for team in sorted(self.changed_teams):
            row = session.get(RoutingState, team)
            if row is None:
                session.add(RoutingState(team=team, next_index=self.rr_state[team]))
            else:
                row.next_index = self.rr_state[team]
        self.changed_teams.clear()

    # -- steps ----------------------------------------------------------------

    def _remember(self, decision: RoutingDecision) -> None:
        for team, index in decision.rr_state.items():
            if self.rr_state.get(team) != index:
                self.rr_state[team] = index
                self.changed_teams.add(team)
        if decision.assignee is not None:
            self.load[decision.assignee] = self.load.get(decision.assignee, 0) + 1

    def _acknowledge(
        self,
        session: Session,
        ticket: Ticket,
        parsed: ParsedMessage,
        decision: RoutingDecision,
        deadlines: Deadlines,
        calendar: BusinessCalendar,
        now: datetime,
    ) -> None:
        # Answers go where the customer asked for them (Reply-To), else to the sender.
        reply_to = parsed.reply_to[0] if parsed.reply_to else parsed.from_addr
        if reply_to is None:
            return
        rendered = render_or_record(
            session,
            ticket,
            decision.ack_template,
            ticket.language or "en",
            {
                "ref": ticket.ref,
                "subject": parsed.subject,
                "customer_name": ticket.customer_name,
                "customer_text": parsed.text,
                "deadline": _due(deadlines.first_response),
                "time_zone": calendar.time_zone.key,
                "response_time": decision.sla.first_response,
                "business_hours": decision.sla.business_hours,
                "signature": None,
            },
            folder=self.triage.template_folder,
            now=now,
        )
        if rendered is None:
            return
        mail = enqueue(
            session,
            ticket=ticket,
            kind="acknowledgement",
            to=[(reply_to.name, reply_to.email)],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            in_reply_to=parsed.message_id,
            references=[*parsed.references, parsed.message_id],
            audience="customer",
            automatic=True,
            config=self.triage.outbox,
            now=now,
        )
        self.queued += mail is not None

    def _notify(
        self,
        session: Session,
        ticket: Ticket,
        parsed: ParsedMessage,
        decision: RoutingDecision,
        deadlines: Deadlines,
        calendar: BusinessCalendar,
        now: datetime,
    ) -> None:
        if not decision.notify:
            return
        team = self.triage.routing.team(decision.team)
        assignee_name = next(
            (m.name for m in team.members if decision.assignee and m.email == decision.assignee),
            None,
        )
        known = self.previous.get(ticket.customer_email) if self.previous is not None else None
        if known is not None:
            # Tickets of this batch still exist unless a savepoint rolled them back.
            opened = [
                PastTicket(other.id, other.ref, other.subject, other.status, other.created_at)
                for other in self.created.get(ticket.customer_email, ())
                if inspect(other).persistent
            ]
            candidates = sorted([*known, *opened], key=lambda past: past.id, reverse=True)
            previous = [
                (past.ref, past.subject, past.status, past.created_at)
                for past in candidates
                if past.id < ticket.id
            ][:_PREVIOUS_TICKETS]
        else:
            previous = [
                (ref, subject, status, opened)
                for ref, subject, status, opened in session.execute(
                    select(Ticket.ref, Ticket.subject, Ticket.status, Ticket.created_at)
                    .where(Ticket.customer_email == ticket.customer_email, Ticket.id < ticket.id)
                    .order_by(Ticket.id.desc())
                    .limit(_PREVIOUS_TICKETS)
                ).all()
            ]
        rendered = render_or_record(
            session,
            ticket,
            "assignment_notice",
            team.language or "en",
            {
                "ref": ticket.ref,
                "subject": parsed.subject,
                "assignee_name": assignee_name,
                "team": decision.team,
                "tier": decision.tier,
                "customer_name": ticket.customer_name,
                "customer_email": ticket.customer_email,
                "customer_text": parsed.text,
                "category": ticket.category,
                "category_confidence": ticket.category_confidence,
                "severity": ticket.severity,
                "severity_confidence": ticket.severity_confidence,
                "signals": list(ticket.signals or []),
                "previous_tickets": [
                    {"ref": ref, "subject": subject, "status": status, "opened_at": opened}
                    for ref, subject, status, opened in previous
                ],
                "deadline": _due(deadlines.first_response),
                "time_zone": calendar.time_zone.key,
            },
            folder=self.triage.template_folder,
            now=now,
        )
        if rendered is None:
            return
        mail = enqueue(
            session,
            ticket=ticket,
            kind="assignment_notice",
            to=list(decision.notify),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            audience="agent",
            automatic=True,
            flood_capped=False,
            config=self.triage.outbox,
            now=now,
        )
        self.queued += mail is not None


@dataclass(frozen=True, slots=True)
class PastTicket:
    """One of a customer's earlier tickets, as the assignment notice lists it."""

    id: int
    ref: str | None
    subject: str
    status: str
    created_at: datetime


def _earlier_tickets(session: Session, senders: Sequence[str]) -> dict[str, list[PastTicket]]:
    """The newest tickets of each sender (one query per 500 senders), newest first."""
    found: dict[str, list[PastTicket]] = {sender: [] for sender in senders}
    wanted = sorted(found)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        ranked = (
            select(
                Ticket.id,
                Ticket.ref,
                Ticket.subject,
                Ticket.status,
                Ticket.created_at,
                Ticket.customer_email,
                func.row_number()
                .over(partition_by=Ticket.customer_email, order_by=Ticket.id.desc())
                .label("position"),
            )
            .where(Ticket.customer_email.in_(chunk))
            .subquery()
        )
        rows = session.execute(
            select(
                ranked.c.id,
                ranked.c.ref,
                ranked.c.subject,
                ranked.c.status,
                ranked.c.created_at,
                ranked.c.customer_email,
            )
            .where(ranked.c.position <= _PREVIOUS_TICKETS)
            .order_by(ranked.c.customer_email, ranked.c.id.desc())
        ).all()
        for pk, ref, subject, status, created_at, email in rows:
            found[email].append(PastTicket(pk, ref, subject, status, created_at))
    return found


def _due(deadline: Deadline | None) -> datetime | None:
    return deadline.due if deadline is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
