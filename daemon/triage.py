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

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.mail_kind import MailKind
from daemon.outbox import OutboxConfig, enqueue
from daemon.parsing import ParsedMessage
from daemon.records import new_event
from models import RoutingState, Ticket
from routing import BusinessCalendar, RoutingConfig, RoutingDecision, TicketFacts, render, route
from routing.sla import Deadline, Deadlines, compute_deadlines

__all__ = ["OPEN_STATUSES", "Triage", "TriageBatch", "facts_for"]

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("new", "open", "pending")
"""Statuses that count towards an agent's load."""


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

    def begin(self, session: Session) -> TriageBatch:
        """Read the state routing needs once for a whole batch."""
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
        return TriageBatch(self, {str(k): int(v) for k, v in load.items()}, rr_state)

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
        calendar = self.triage.calendar(decision.calendar)
        deadlines = compute_deadlines(decision.sla, calendar, now)
        ticket.tier, ticket.team, ticket.assignee = decision.tier, decision.team, decision.assignee
        ticket.routing_rule = decision.rule
        ticket.sla_policy = decision.sla.name
        ticket.tags = sorted({*(ticket.tags or []), *decision.tags})
        ticket.first_response_due_at = _due(deadlines.first_response)
        ticket.resolution_due_at = _due(deadlines.resolution)
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

    def finish(self, session: Session) -> None:
        """Store the round-robin positions that moved during the batch."""
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
        rendered = render(
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
        )
        # Answers go where the customer asked for them (Reply-To), else to the sender.
        reply_to = parsed.reply_to[0] if parsed.reply_to else parsed.from_addr
        if reply_to is None:
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
        previous = session.execute(
            select(Ticket.ref, Ticket.subject, Ticket.status, Ticket.created_at)
            .where(Ticket.customer_email == ticket.customer_email, Ticket.id != ticket.id)
            .order_by(Ticket.id.desc())
            .limit(5)
        ).all()
        rendered = render(
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
        )
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


def _due(deadline: Deadline | None) -> datetime | None:
    return deadline.due if deadline is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
