"""The escalation sweep: find tickets whose warning or deadline fell due, and act once.

Deadlines live in the database (``tickets.sla_check_at``, indexed), never in
the scheduler's memory. A sweep claims due tickets in small batches, each in
its own transaction: on SQLite ``BEGIN IMMEDIATE`` makes the batch the only
writer, on PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several daemon
instances sweep side by side without touching the same ticket. Whatever a
batch does (new owner, new deadlines, the outbox rows of its mails, events)
commits together or not at all, so a crash mid-sweep loses no escalation and
a restart repeats none: the committed tickets no longer match the search, the
rest still do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.escalation import Escalator
from daemon.records import new_event
from models import RoutingState, Ticket

__all__ = ["EscalationSweep", "SweepReport"]

logger = logging.getLogger(__name__)

_RETRY_FAILED_AFTER = timedelta(minutes=5)
"""A ticket whose processing failed is looked at again after this long, not in a hot loop."""


@dataclass
class SweepReport:
    """What one sweep did."""

    tickets: int = 0
    warnings: int = 0
    escalations: int = 0
    breaches: int = 0
    errors: int = 0
    actions: dict[str, list[str]] = field(default_factory=dict)
    """Per ticket reference, what was done (``escalated:first_response``, ...)."""


@dataclass
class EscalationSweep:
    """Claims due tickets and hands each to the :class:`Escalator`."""

    sessions: sessionmaker[Session]
    escalator: Escalator
    clock: Callable[[], datetime]
    batch_size: int = 100

    def run(self, now: datetime | None = None, *, max_batches: int | None = None) -> SweepReport:
        """Process every ticket due at ``now`` (default: the clock), batch by batch."""
        now = now if now is not None else self.clock()
        report = SweepReport()
        batches = 0
        while max_batches is None or batches < max_batches:
            batches += 1
            if self._run_batch(now, report) < self.batch_size:
                break
        if report.tickets:
            logger.info(
                "escalation sweep: %d ticket(s), %d warning(s), %d escalation(s), "
                "%d breach(es), %d error(s)",
                report.tickets,
                report.warnings,
                report.escalations,
                report.breaches,
                report.errors,
            )
        return report

    def next_check(self) -> datetime | None:
        """The earliest instant any ticket falls due (the scheduler wakes then)."""
        with self.sessions() as session:
            return session.scalar(select(func.min(Ticket.sla_check_at)))

    def _run_batch(self, now: datetime, report: SweepReport) -> int:
        with self.sessions.begin() as session:
            query = (
                select(Ticket)
                .where(Ticket.sla_check_at <= now)
                .order_by(Ticket.sla_check_at)
                .limit(self.batch_size)
            )
            postgres = session.get_bind().dialect.name == "postgresql"
            if postgres:
                query = query.with_for_update(skip_locked=True)
            tickets = session.scalars(query).all()
            if tickets and postgres:
                # Escalations move round-robin positions of several teams; taking
                # those rows in one order keeps two instances from deadlocking.
                session.execute(
                    select(RoutingState.team).order_by(RoutingState.team).with_for_update()
                )
            for ticket in tickets:
                self._process(session, ticket, now, report)
            return len(tickets)

    def _process(
        self, session: Session, ticket: Ticket, now: datetime, report: SweepReport
    ) -> None:
        report.tickets += 1
        try:
            with session.begin_nested():
                done = self.escalator.process_due(session, ticket, now)
        except OperationalError:
            raise  # the database itself is in trouble: the batch rolls back, nothing is half done
        except Exception as exc:
            # One bad ticket (a broken template, odd stored state) must not stop
            # the others; it is retried later and the error is on its history.
            logger.exception("escalation sweep failed on %s", ticket.ref)
            report.errors += 1
            ticket.sla_check_at = now + _RETRY_FAILED_AFTER
            session.add(new_event(ticket, now, "sla_error", "system", {"error": str(exc)[:500]}))
            return
        if ticket.ref is not None:
            report.actions[ticket.ref] = done
        for action in done:
            kind = action.split(":", 1)[0]
            if kind == "warning":
                report.warnings += 1
            elif kind == "escalated":
                report.escalations += 1
            elif kind == "breach":
                report.breaches += 1
        if ticket.sla_check_at is not None and ticket.sla_check_at <= now:
            # Still due after processing (a stale search key, or a configuration that
            # defeats progress): look again later, not in this sweep's next batch.
            ticket.sla_check_at = now + _RETRY_FAILED_AFTER
