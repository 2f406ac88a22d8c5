"""Many real tickets whose first-response deadline has passed, built quickly.

A handful of complaints go through the real intake pipeline at the instant the
tickets were "opened"; the rest are copies of those rows (ticket, inbound
message, participant, routing event) inserted in bulk, because running a
thousand mails through intake costs seconds the tests do not need to spend.
Every ticket is then made critical and its SLA clocks opened at that instant
under the critical policy, with :meth:`TicketClocks.open` and
:meth:`SlaBook.store` as routing does, so the sweep sees ordinary tickets that
nobody answered in time. (Their ``routed`` events still name the policy intake
chose; nothing reads them back.)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from daemon.references import format_ticket_ref
from daemon.service import IngestOutcome
from daemon.ticket_sla import SlaBook
from models import Event, Message, OutboxMail, Participant, Ticket
from routing.ticket_clocks import TicketClocks
from tests.support.app_factory import build_app
from tests.support.mail_factory import complaint

__all__ = ["EscalationTally", "create_due_tickets", "escalation_tally"]

_SEEDS = 4
_BODY = (
    "Hello,\n\nthe kettle I bought last week caught fire on its first use.\n"
    "If I hear nothing today I will talk to my lawyer.\n\nRegards\n"
)


def create_due_tickets(
    db_url: str,
    monkeypatch: Any,
    base_dir: Path,
    count: int,
    *,
    opened_at: datetime,
) -> list[str]:
    """``count`` open, critical tier-1 tickets whose clocks started at ``opened_at``; their refs.

    The default configuration's ``critical`` policy counts 24x7 and owes a
    first response within 1 h (resolution within a day): a ticket opened more
    than an hour ago is overdue for its first response whatever the day of the
    week, and nothing else about it is due yet.
    """
    app = build_app(db_url, monkeypatch, clock=lambda: opened_at, base_dir=base_dir)
    try:
        results = app.service.ingest_batch(
            [
                (complaint(sender=f"seed{i}@customers.example", name=f"Seed {i}", body=_BODY), None)
                for i in range(min(_SEEDS, count))
            ]
        )
        assert all(r.outcome is IngestOutcome.CREATED for r in results), results
        book = SlaBook(app.settings.routing)
        policy = app.settings.routing.sla_policy("critical")
        with app.sessions.begin() as session:
            seeds = list(
                session.scalars(
                    select(Ticket)
                    .where(Ticket.ref.in_([result.ticket_ref for result in results]))
                    .order_by(Ticket.id)
                )
            )
            copies = _copies(session, seeds, count - len(seeds), opened_at)
            tickets = seeds + copies
            prefix = app.settings.security.ticket_prefix
            for ticket in copies:
                ticket.ref = format_ticket_ref(ticket.id, prefix)
            for ticket in tickets:
                calendar_name, calendar = book.team_calendar(ticket.team)
                ticket.severity, ticket.sla_policy = "critical", policy.name
                SlaBook.store(ticket, TicketClocks.open(policy, calendar_name, calendar, opened_at))
            refs = [str(ticket.ref) for ticket in tickets]
        return refs
    finally:
        app.close()


def _copies(session: Session, seeds: list[Ticket], count: int, now: datetime) -> list[Ticket]:
    """``count`` tickets cloned from ``seeds`` (round robin), each with its own customer."""
    messages = {
        message.ticket_id: message
        for message in session.scalars(
            select(Message).where(Message.ticket_id.in_([seed.id for seed in seeds]))
        )
    }
    routed = {
        event.ticket_id: event
        for event in session.scalars(
            select(Event).where(
                Event.kind == "routed", Event.ticket_id.in_([seed.id for seed in seeds])
            )
        )
    }
    copies: list[Ticket] = []
    for number, seed in zip(range(count), itertools.cycle(seeds), strict=False):
        email = f"customer{number:05d}@customers.example"
        ticket = Ticket(**_columns(seed, Ticket, skip={"id", "ref"}))
        ticket.customer_email = email
        ticket.customer_name = f"Customer {number}"
        ticket.participants = [Participant(email=email, role="customer")]
        original = messages[seed.id]
        message = Message(**_columns(original, Message, skip={"id", "ticket_id", "raw_id"}))
        message.message_id = f"<copy-{number}@customers.example>"
        message.dedup_key = message.message_id
        message.from_email, message.from_name = email, ticket.customer_name
        message.ticket = ticket
        event = routed[seed.id]
        session.add_all(
            [
                ticket,
                message,
                Event(ticket=ticket, at=now, kind="routed", actor="system", data=event.data),
            ]
        )
        copies.append(ticket)
    session.flush()  # ids, for the refs
    return copies


def _columns(row: Any, model: Any, *, skip: set[str]) -> dict[str, Any]:
    return {
        column.key: getattr(row, column.key)
        for column in model.__table__.columns
        if column.key not in skip
    }


@dataclass(frozen=True)
class EscalationTally:
    """What the sweep left in the database, counted per ticket."""

    tickets: int
    escalated_events: int
    escalated_tickets: int
    notices: int
    noticed_tickets: int
    at_tier_2: int
    warnings: int
    warned_tickets: int
    errors: int

    @property
    def consistent(self) -> bool:
        """Events, owners and mails moved together (no half-done escalation is visible)."""
        return (
            self.escalated_events == self.escalated_tickets == self.notices
            and self.notices == self.noticed_tickets == self.at_tier_2
        )


def escalation_tally(engine: Engine) -> EscalationTally:
    """Count escalation events, notices, tier-2 tickets and warnings, in one statement.

    One statement reads one snapshot on both backends, so a batch committing
    meanwhile cannot make the counts disagree with each other.
    """

    def count(model: Any, *where: Any, distinct: Any = None) -> Any:
        what = func.count(func.distinct(distinct)) if distinct is not None else func.count()
        return select(what).select_from(model).where(*where).scalar_subquery()

    escalated = Event.kind == "escalated"
    notice = OutboxMail.kind == "escalation_notice"
    warning = Event.kind == "sla_warning"
    query = select(
        count(Ticket),
        count(Event, escalated),
        count(Event, escalated, distinct=Event.ticket_id),
        count(OutboxMail, notice),
        count(OutboxMail, notice, distinct=OutboxMail.ticket_id),
        count(Ticket, Ticket.tier == 2),
        count(Event, warning),
        count(Event, warning, distinct=Event.ticket_id),
        count(Event, Event.kind == "sla_error"),
    )
    with engine.connect() as connection:
        row = connection.execute(query).one()
    return EscalationTally(*(int(value) for value in row))
