"""Acting on escalations: the new owner, the new deadlines, the mails, the events.

:mod:`routing.escalation` decides *that* a ticket moves and where;
:class:`Escalator` carries it out inside the caller's transaction: it assigns
the next tier's team (same strategies as routing), restarts the clocks for the
new level on that team's calendar, queues the escalation notice (with the
history), the note to the previous owner and, if configured, the customer's
note, and records an ``escalated`` event. A deadline passed at the last level
is a breach: the admins are told once and the event says so. Warnings before
a deadline go to the current owner. Every entry point is safe to call from
the sweep, from intake (customer-triggered escalations) and from the CLI or
an agent's ``#escalate`` alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.outbox import OutboxConfig, enqueue
from daemon.records import mail_not_sent, new_event, render_or_record
from daemon.ticket_sla import SlaBook
from daemon.triage import OPEN_STATUSES
from models import Event, Message, Participant, RoutingState, Ticket
from routing import EscalationDecision, RoutingConfig, escalation_triggers
from routing.assignment import assign
from routing.config import TeamConfig
from routing.sla import DeadlineKind
from routing.ticket_clocks import TicketClocks

__all__ = ["Escalator", "customer_recipient"]

logger = logging.getLogger(__name__)

_HISTORY_LIMIT = 30
_LOAD_KEY = "complaintd.open_tickets_per_agent"
_KIND_TEXT = {
    "first_response": "first response",
    "next_response": "next response",
    "resolution": "resolution",
}


@dataclass
class Escalator:
    """Escalations, breach reports and deadline warnings for one configuration."""

    routing: RoutingConfig
    outbox: OutboxConfig
    book: SlaBook
    template_folder: Path | None = None

    # -- deadlines --------------------------------------------------------------

    def process_due(self, session: Session, ticket: Ticket, now: datetime) -> list[str]:
        """Act on everything that fell due on ``ticket`` by ``now``; what was done, in order.

        Each passed deadline moves the ticket up one level (or reports a breach
        at the last one) and restarts that clock, so the loop ends; a ticket
        that was overdue for days still moves one level, not four.
        """
        done: list[str] = []
        if self.book.clocks(ticket) is None:
            # Unreadable stored state is kept for a person to look at, never overwritten.
            ticket.sla_check_at = None
            if ticket.sla:
                session.add(new_event(ticket, now, "sla_error", "system",
                                      {"error": "stored SLA state is unreadable"}))  # fmt: skip
            return done
        for _ in range(8):  # three clocks; a bound against a config that defeats progress
            clocks = self.book.clocks(ticket)
            actions = clocks.due_actions(now) if clocks is not None else ()
            if clocks is None or not actions:
                break
            action = actions[0]
            if action.action == "warning":
                self.warn(session, ticket, clocks, action.kind, now)
                done.append(f"warning:{action.kind}")
            else:
                decision = escalation_triggers(
                    tier=ticket.tier or 1,
                    category=ticket.category,
                    config=self.routing,
                    deadline_passed=action.kind,
                )[0]
                self.escalate(session, ticket, decision, now, fired=action.kind)
                done.append(f"{'breach' if decision.breach else 'escalated'}:{action.kind}")
        stored = self.book.clocks(ticket)
        if stored is not None:
            SlaBook.store(ticket, stored)
        return done

    def warn(
        self,
        session: Session,
        ticket: Ticket,
        clocks: TicketClocks,
        kind: DeadlineKind,
        now: datetime,
    ) -> None:
        """Tell the current owner that the ``kind`` deadline is near (once per deadline)."""
        team = self.team_config(ticket.team)
        due = clocks.due(kind)
        recipients = self.owner_addresses(ticket)
        remaining = clocks.remaining(kind, self.book.calendar_of(clocks), now)
        self.mail(
            session,
            ticket,
            "sla_warning",
            team.language if team else "en",
            recipients,
            {
                **self.ticket_context(ticket),
                "assignee_name": self.member_name(ticket.assignee),
                "deadline_kind": kind,
                "deadline": due,
                "remaining": remaining,
                "time_zone": self.book.calendar_of(clocks).time_zone.key,
            },
            audience="agent",
            now=now,
        )
        SlaBook.store(ticket, clocks.mark(kind, warned=True))
        session.add(
            new_event(ticket, now, "sla_warning", "system", {"deadline": kind, "due": _iso(due)})
        )

    # -- escalation ---------------------------------------------------------------

    def escalate(
        self,
        session: Session,
        ticket: Ticket,
        decision: EscalationDecision,
        now: datetime,
        *,
        fired: DeadlineKind | None = None,
        actor: str = "system",
    ) -> None:
        """Carry out ``decision`` on ``ticket`` (the caller commits)."""
        # Nothing read here depends on this escalation's own rows; they are
        # written together at commit (one INSERT per table for a whole batch).
        with session.no_autoflush:
            self._escalate(session, ticket, decision, now, fired, actor)

    def _escalate(
        self,
        session: Session,
        ticket: Ticket,
        decision: EscalationDecision,
        now: datetime,
        fired: DeadlineKind | None,
        actor: str,
    ) -> None:
        if decision.breach:
            self._breach(session, ticket, decision, now, fired, actor)
            return
        assert decision.to_tier is not None and decision.team is not None
        old_tier, old_team, old_assignee = ticket.tier, ticket.team, ticket.assignee
        old_recipients = self.owner_addresses(ticket)
        team = self.routing.team(decision.team)
        load = self._load(session, team)
        state_row = session.get(RoutingState, team.name, with_for_update=True)
        rr_state = {team.name: state_row.next_index if state_row else 0}
        assignment = assign(team, self.routing.routing.escalation_assignment, load, rr_state)
        if assignment.rr_state.get(team.name) != rr_state[team.name]:
            if state_row is None:
                session.add(RoutingState(team=team.name, next_index=assignment.rr_state[team.name]))
            else:
                state_row.next_index = assignment.rr_state[team.name]

        ticket.tier, ticket.team, ticket.assignee = decision.to_tier, team.name, assignment.assignee
        if old_assignee in load:  # only counts already read; the rest are read when needed
            load[old_assignee] = max(load[old_assignee] - 1, 0)
        if assignment.assignee:
            load[assignment.assignee] = load.get(assignment.assignee, 0) + 1
        ticket.escalated_at = now
        ticket.updated_at = now
        clocks = self.book.clocks(ticket)
        calendar_name, calendar = self.book.team_calendar(team.name)
        if clocks is not None:
            moved = clocks.move_to(calendar_name, self.book.calendar_of(clocks), calendar, now)
            clocks = moved.escalated(fired, self.book.policy(ticket), calendar, now)
            SlaBook.store(ticket, clocks)
        session.add(
            new_event(
                ticket,
                now,
                "escalated",
                actor,
                {
                    "trigger": decision.trigger,
                    "reason": decision.reason,
                    "deadline": fired,
                    "from_tier": old_tier,
                    "to_tier": decision.to_tier,
                    "from_team": old_team,
                    "to_team": team.name,
                    "from_assignee": old_assignee,
                    "assignee": assignment.assignee,
                    "assignment": assignment.reason,
                },
            )
        )
        deadline = _next_due(clocks)
        context = {
            **self.ticket_context(ticket),
            "from_tier": old_tier,
            "to_tier": decision.to_tier,
            "from_team": old_team,
            "to_team": team.name,
            "trigger": decision.trigger,
            "reason": decision.reason,
            "deadline": deadline,
            "time_zone": calendar.time_zone.key,
            "history": self._history(session, ticket),
            "customer_text": self._latest_customer_text(session, ticket),
        }
        self.mail(
            session,
            ticket,
            "escalation_notice",
            team.language,
            list(assignment.notify),
            context,
            audience="agent",
            now=now,
        )
        previous = [a for a in old_recipients if a not in assignment.notify]
        if previous:
            old = self.team_config(old_team)
            self.mail(
                session,
                ticket,
                "previous_owner_notice",
                old.language if old else "en",
                previous,
                context,
                audience="agent",
                now=now,
            )
        if self.routing.routing.notify_customer_on_escalation:
            self._note_customer(session, ticket, context, now)

    def _breach(
        self,
        session: Session,
        ticket: Ticket,
        decision: EscalationDecision,
        now: datetime,
        fired: DeadlineKind | None,
        actor: str,
    ) -> None:
        clocks = self.book.clocks(ticket)
        if clocks is not None and fired is not None:
            SlaBook.store(ticket, clocks.mark(fired, breached=True))
        first = ticket.breach_reported_at is None
        admins = list(self.routing.tiers.admins)
        data: dict[str, Any] = {
            "trigger": decision.trigger,
            "reason": decision.reason,
            "deadline": fired,
            "tier": ticket.tier,
            "reported_to": admins if first else [],
        }
        if first:
            ticket.breach_reported_at = now
        else:
            data["note"] = "admins were told of an earlier breach on this ticket"
        ticket.updated_at = now
        session.add(new_event(ticket, now, "breach", actor, data))
        if not first:
            return
        if not admins:
            logger.warning("breach on %s: no [tiers] admins configured to tell", ticket.ref)
            return
        due = clocks.record(fired) if clocks is not None and fired is not None else None
        self.mail(
            session,
            ticket,
            "breach_report",
            "en",
            admins,
            {
                **self.ticket_context(ticket),
                "assignee": ticket.assignee,
                "deadline_kind": fired,
                "deadline": due.due if due else None,
                "overdue": now - due.due if due and due.due else None,
                "reason": decision.reason,
                "history": self._history(session, ticket),
            },
            audience="agent",
            now=now,
        )

    # -- mails ------------------------------------------------------------------

    def _note_customer(
        self, session: Session, ticket: Ticket, context: dict[str, Any], now: datetime
    ) -> None:
        latest = session.execute(
            select(Message.message_id, Message.references)
            .where(Message.ticket_id == ticket.id, Message.direction == "in")
            .where(Message.from_email == ticket.customer_email)
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        references = [*(latest.references or []), latest.message_id] if latest else []
        self.mail(
            session,
            ticket,
            "customer_escalation_note",
            ticket.language or "en",
            [customer_recipient(session, ticket)],
            context,
            audience="customer",
            now=now,
            in_reply_to=latest.message_id if latest else None,
            references=references,
        )

    def mail(
        self,
        session: Session,
        ticket: Ticket,
        template: str,
        language: str,
        to: Sequence[str | tuple[str, str]],
        context: dict[str, Any],
        *,
        audience: str,
        now: datetime,
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
    ) -> None:
        """Render ``template`` and queue it; a broken template is recorded, never raised."""
        if not to:
            session.add(mail_not_sent(ticket, template, "nobody to send it to", now))
            return
        # A broken custom template must not stop the escalation itself.
        rendered = render_or_record(
            session, ticket, template, language, context, folder=self.template_folder, now=now
        )
        if rendered is None:
            return
        enqueue(
            session,
            ticket=ticket,
            kind=template,
            to=list(to),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            in_reply_to=in_reply_to,
            references=references,
            audience="customer" if audience == "customer" else "agent",
            automatic=True,
            # Staff notices are never capped; the customer's note is.
            flood_capped=None if audience == "customer" else False,
            config=self.outbox,
            now=now,
        )

    # -- lookups ----------------------------------------------------------------

    def team_config(self, name: str | None) -> TeamConfig | None:
        """The configured team called ``name``, or None."""
        return next((team for team in self.routing.teams if team.name == name), None)

    def member_name(self, email: str | None) -> str | None:
        """The display name of the agent at ``email``, or None."""
        for team in self.routing.teams:
            for member in team.members:
                if email and member.email == email:
                    return member.name
        return None

    def owner_addresses(self, ticket: Ticket) -> list[str]:
        """Who hears about the ticket now: the assignee, else the team's address or members."""
        if ticket.assignee:
            return [ticket.assignee]
        team = self.team_config(ticket.team)
        if team is None:
            return []
        if team.email:
            return [team.email]
        present = [member.email for member in team.members if not member.away]
        return present or [member.email for member in team.members]

    @staticmethod
    def _load(session: Session, team: TeamConfig) -> dict[str, int]:
        """Open tickets per member of ``team``: counted once per transaction, then kept current.

        Only the team's members are counted (an index on assignee and status
        makes that cheap even with millions of tickets); escalate() updates
        the counts as it assigns, so a batch sees its own assignments.
        """
        cache: dict[str, int] = session.info.setdefault(_LOAD_KEY, {})
        members = [member.email for member in team.members if member.email not in cache]
        if members:
            rows = session.execute(
                select(Ticket.assignee, func.count(Ticket.id))
                .where(Ticket.assignee.in_(members), Ticket.status.in_(OPEN_STATUSES))
                .group_by(Ticket.assignee)
            ).all()
            counted = {str(assignee): int(count) for assignee, count in rows}
            cache.update({email: counted.get(email, 0) for email in members})
        return cache

    @staticmethod
    def ticket_context(ticket: Ticket) -> dict[str, Any]:
        """The template variables every notice about ``ticket`` shares."""
        return {
            "ref": ticket.ref,
            "subject": ticket.subject,
            "customer_name": ticket.customer_name,
            "customer_email": ticket.customer_email,
            "category": ticket.category,
            "category_confidence": ticket.category_confidence,
            "severity": ticket.severity,
            "severity_confidence": ticket.severity_confidence,
            "signals": list(ticket.signals or []),
            "team": ticket.team,
            "tier": ticket.tier,
        }

    @staticmethod
    def _latest_customer_text(session: Session, ticket: Ticket) -> str:
        text = session.scalars(
            select(Message.text)
            .where(Message.ticket_id == ticket.id, Message.direction == "in")
            .where(Message.kind == "customer")
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        return text or ""

    @staticmethod
    def _history(session: Session, ticket: Ticket) -> list[dict[str, Any]]:
        """The ticket's story for a person taking it over: mails and what happened."""
        stored = session.scalars(
            select(Event)
            .where(Event.ticket_id == ticket.id)
            .order_by(Event.id.desc())
            .limit(_HISTORY_LIMIT)
        ).all()
        # Events of this transaction are not flushed yet (escalations run without autoflush).
        pending = [
            item for item in session.new if isinstance(item, Event) and item.ticket is ticket
        ]
        events = [*reversed(stored), *sorted(pending, key=lambda event: event.at)]
        return [
            {"at": event.at, "text": _describe(event)}
            for event in events[-_HISTORY_LIMIT:]
            if _describe(event)
        ]


_DESCRIBE: dict[str, Any] = {
    "created": lambda e, d: f"opened by {e.actor}",
    "message_added": lambda e, d: f"message from {e.actor}",
    "routed": lambda e, d: (
        f"routed to tier {d.get('tier')} ({d.get('team')}), "
        f"owner {d.get('assignee') or 'the ' + str(d.get('team')) + ' team'}"
    ),
    "classified": lambda e, d: f"classified {d.get('category')} / {d.get('severity')}",
    "escalated": lambda e, d: (
        f"escalated from tier {d.get('from_tier')} to {d.get('to_tier')} "
        f"({d.get('to_team')}): {d.get('reason')}"
    ),
    "sla_warning": lambda e, d: (
        f"{_KIND_TEXT.get(str(d.get('deadline')), 'deadline')} deadline warning sent"
    ),
    "breach": lambda e, d: f"SLA breach: {d.get('reason')}",
    "answered": lambda e, d: f"answered by {e.actor}",
    "waiting": lambda e, d: "waiting on the customer",
    "resumed": lambda e, d: "the customer wrote back",
    "resolved": lambda e, d: f"resolved by {e.actor}",
    "reopened": lambda e, d: f"reopened by {e.actor}",
}


def _describe(event: Event) -> str:
    """One line of history for ``event``; empty for kinds a new owner need not read."""
    describe = _DESCRIBE.get(event.kind)
    return str(describe(event, event.data or {})) if describe else ""


def _next_due(clocks: TicketClocks | None) -> datetime | None:
    if clocks is None:
        return None
    dues = [record.due for record in clocks.clocks if record.running and record.due is not None]
    return min(dues, default=None)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def customer_recipient(session: Session, ticket: Ticket) -> tuple[str, str]:
    """Where mail for the customer goes: the Reply-To of their first mail, else its sender.

    The acknowledgement went there (a web form's robot sends From itself, with
    the customer in Reply-To), so every later mail to the customer does too.
    """
    reply_to = session.scalars(
        select(Participant.email)
        .where(Participant.ticket_id == ticket.id, Participant.role == Participant.REPLY_TO)
        .order_by(Participant.id)
        .limit(1)
    ).first()
    if reply_to is not None:
        return "", reply_to
    return ticket.customer_name or "", ticket.customer_email
