"""What happens to a ticket's status and SLA clocks when people act on it.

One entry point per thing that can happen: the customer writes again, an
agent answers, the ticket waits on the customer, is resolved, reopened or
escalated by hand. Each records an event, moves the clocks
(:class:`routing.ticket_clocks.TicketClocks`) and, for a customer's mail,
checks the escalation triggers (asked for a manager, severity became critical,
too many unanswered messages). Intake calls :meth:`TicketLifecycle.customer_wrote`;
the CLI (and the agent-command handler) call the others. All of them work in
the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from daemon.errors import PermanentError
from daemon.escalation import Escalator
from daemon.records import new_event
from daemon.ticket_sla import SlaBook
from models import Event, Ticket
from routing import escalation_triggers
from routing.ticket_clocks import TicketClocks

__all__ = ["TicketLifecycle", "TicketStateError"]

logger = logging.getLogger(__name__)

_CLOSED = ("resolved", "closed")


class TicketStateError(PermanentError):
    """The ticket is not in a state where that action makes sense (e.g. resolving it twice)."""


@dataclass
class TicketLifecycle:
    """Status changes, clock moves and escalation triggers of tickets."""

    escalator: Escalator

    @property
    def book(self) -> SlaBook:
        """The SLA book of the escalator's configuration."""
        return self.escalator.book

    # -- the customer -------------------------------------------------------------

    def is_stale(self, ticket: Ticket, now: datetime) -> bool:
        """True when ``ticket`` was resolved too long ago for a reply to reopen it."""
        if ticket.status not in _CLOSED:
            return False
        resolved = ticket.resolved_at or ticket.updated_at
        return now - resolved > self.escalator.routing.routing.reopen_within

    def customer_wrote(
        self,
        session: Session,
        ticket: Ticket,
        now: datetime,
        *,
        signals: Sequence[str] = (),
        previous_severity: str | None = None,
        text: str = "",
    ) -> bool:
        """A customer's mail was added to ``ticket``: reopen or resume, start the reply clock.

        ``signals`` are the classifier's signals of this mail, ``previous_severity``
        the ticket's severity before it. Escalates when a trigger fires; otherwise
        tells the owner about the new mail. Returns True when it escalated.
        """
        ticket.last_customer_at = now
        ticket.unanswered_count = (ticket.unanswered_count or 0) + 1
        policy = self.book.policy(ticket)
        if severity_rose(previous_severity, ticket.severity):
            policy = self._follow_severity(session, ticket, previous_severity, now) or policy
        clocks = self.book.clocks(ticket)
        if clocks is not None:
            calendar = self.book.calendar_of(clocks)
            if ticket.status in _CLOSED:
                clocks = clocks.reopened(policy, calendar, now)
            else:
                clocks = clocks.customer_wrote(policy, calendar, now)
            SlaBook.store(ticket, clocks)
        if ticket.status in _CLOSED:
            session.add(new_event(ticket, now, "reopened", ticket.customer_email,
                                  {"was": ticket.status}))  # fmt: skip
            ticket.status = "open"
            ticket.resolved_at = None
        elif ticket.status == "pending":
            session.add(new_event(ticket, now, "resumed", ticket.customer_email, {}))
            ticket.status = "open"
        decisions = escalation_triggers(
            tier=ticket.tier or 1,
            category=ticket.category,
            config=self.escalator.routing,
            signals=signals,
            severity=ticket.severity,
            previous_severity=previous_severity,
            unanswered_customer_messages=ticket.unanswered_count,
        )
        if decisions and ticket.tier is not None:
            self.escalator.escalate(session, ticket, decisions[0], now, actor=ticket.customer_email)
            return True
        self._tell_owner(session, ticket, text, now)
        return False

    def _follow_severity(
        self, session: Session, ticket: Ticket, previous: str | None, now: datetime
    ) -> Any:
        """The severity rose: move to the policy the configuration picks for it."""
        policy = self.book.policy_for(ticket, ticket.severity)
        if policy.name == ticket.sla_policy:
            return policy
        clocks = self.book.clocks(ticket)
        if clocks is not None:
            SlaBook.store(ticket, clocks.with_policy(policy, self.book.calendar_of(clocks), now))
        session.add(
            new_event(ticket, now, "sla_policy_changed", "system",
                      {"from": ticket.sla_policy, "to": policy.name,
                       "why": f"severity rose from {previous} to {ticket.severity}"})
        )  # fmt: skip
        ticket.sla_policy = policy.name
        return policy

    def _tell_owner(self, session: Session, ticket: Ticket, text: str, now: datetime) -> None:
        escalator = self.escalator
        recipients = escalator.owner_addresses(ticket)
        if not recipients or ticket.ref is None:
            return
        team = escalator.team_config(ticket.team)
        clocks = self.book.clocks(ticket)
        escalator.mail(
            session,
            ticket,
            "follow_up_notice",
            team.language if team else "en",
            recipients,
            {
                **escalator.ticket_context(ticket),
                "assignee_name": escalator.member_name(ticket.assignee),
                "customer_text": text,
                "unanswered": ticket.unanswered_count,
                "deadline": ticket.next_response_due_at or ticket.first_response_due_at,
                "time_zone": self.book.calendar_of(clocks).time_zone.key if clocks else None,
            },
            audience="agent",
            now=now,
        )

    # -- agents and admins ---------------------------------------------------------

    def agent_replied(self, session: Session, ticket: Ticket, now: datetime, agent: str) -> None:
        """An agent answered the customer: the response deadlines are met."""
        ticket.first_responded_at = ticket.first_responded_at or now
        ticket.last_agent_reply_at = now
        ticket.unanswered_count = 0
        if ticket.status == "new":
            ticket.status = "open"
        ticket.updated_at = now
        self._move(ticket, lambda clocks: clocks.answered())
        session.add(new_event(ticket, now, "answered", agent, {}))

    def wait_on_customer(self, session: Session, ticket: Ticket, now: datetime, actor: str) -> None:
        """The ticket waits on the customer: every clock pauses until they write."""
        if ticket.status in _CLOSED:
            raise TicketStateError(f"{ticket.ref} is {ticket.status}; reopen it first")
        ticket.status = "pending"
        ticket.updated_at = now
        self._move(ticket, lambda clocks: clocks.pause(self.book.calendar_of(clocks), now))
        session.add(new_event(ticket, now, "waiting", actor, {}))

    def resolve(self, session: Session, ticket: Ticket, now: datetime, actor: str) -> None:
        """Resolved: the clocks stop; a customer reply within ``reopen_within`` reopens it."""
        if ticket.status in _CLOSED:
            raise TicketStateError(f"{ticket.ref} is already {ticket.status}")
        ticket.status = "resolved"
        ticket.resolved_at = now
        # A "thank you" after resolution must not count towards "unanswered".
        ticket.unanswered_count = 0
        ticket.updated_at = now
        self._move(ticket, lambda clocks: clocks.resolved(self.book.calendar_of(clocks), now))
        session.add(new_event(ticket, now, "resolved", actor, {}))

    def reopen(self, session: Session, ticket: Ticket, now: datetime, actor: str) -> None:
        """Reopen a resolved or closed ticket by hand."""
        if ticket.status not in _CLOSED:
            raise TicketStateError(f"{ticket.ref} is {ticket.status}, not resolved")
        policy = self.book.policy(ticket)
        self._move(
            ticket,
            lambda clocks: clocks.reopened(
                policy, self.book.calendar_of(clocks), now, reply_owed=False
            ),
        )
        session.add(new_event(ticket, now, "reopened", actor, {"was": ticket.status}))
        ticket.status = "open"
        ticket.resolved_at = None
        ticket.updated_at = now

    def escalate(
        self, session: Session, ticket: Ticket, now: datetime, actor: str, reason: str = ""
    ) -> None:
        """An explicit escalation (an agent's ``#escalate``, or an admin): one level up."""
        if ticket.status in _CLOSED:
            raise TicketStateError(f"{ticket.ref} is {ticket.status}; reopen it first")
        decisions = escalation_triggers(
            tier=ticket.tier or 1,
            category=ticket.category,
            config=self.escalator.routing,
            agent_request=reason,
        )
        if not decisions:
            raise TicketStateError(
                f"{ticket.ref} is at tier {ticket.tier}, the last level: nobody is above it"
            )
        self.escalator.escalate(session, ticket, decisions[0], now, actor=actor)

    def close_resolved(self, session: Session, now: datetime) -> int:
        """Housekeeping: resolved tickets past the reopen window become closed."""
        cutoff = now - self.escalator.routing.routing.reopen_within
        ids = session.scalars(
            select(Ticket.id).where(Ticket.status == "resolved", Ticket.resolved_at <= cutoff)
        ).all()
        if not ids:
            return 0
        session.execute(
            update(Ticket).where(Ticket.id.in_(ids)).values(status="closed", updated_at=now)
        )
        session.add_all(
            Event(ticket_id=ticket_id, at=now, kind="closed", actor="system", data={})
            for ticket_id in ids
        )
        return len(ids)

    def _move(self, ticket: Ticket, change: Any) -> None:
        clocks: TicketClocks | None = self.book.clocks(ticket)
        if clocks is not None:
            SlaBook.store(ticket, change(clocks))


def severity_rose(before: str | None, after: str | None) -> bool:
    """True when ``after`` is a higher severity than ``before``.

    An unknown severity (no prediction yet) counts as ``medium``, the severity
    the SLA policy was chosen for, so a ticket that becomes critical moves to
    the critical policy, and one that turns out ``low`` keeps its deadlines.
    """
    order = {"low": 0, "medium": 1, "high": 2, "critical": 3}
    assumed = "medium"
    return order.get((after or "").lower(), -1) > order.get((before or assumed).lower(), -1)
