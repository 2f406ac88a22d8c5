"""Read-only views of deadlines: ``sla explain`` and ``escalations due``.

Like :mod:`daemon.views`, these are the JSON shapes the CLI prints; add keys,
never rename or remove them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.ticket_sla import SlaBook
from models import Ticket
from routing import next_level
from routing.ticket_clocks import ClockRecord, TicketClocks

__all__ = ["escalations_due", "explain_sla"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _consequence(ticket: Ticket, book: SlaBook) -> str:
    """What happens when a deadline of ``ticket`` passes, in words."""
    level = next_level(ticket.tier or 1, ticket.category, book.routing)
    if level is None:
        admins = ", ".join(book.routing.tiers.admins) or "nobody (no [tiers] admins configured)"
        if ticket.breach_reported_at is not None:
            return "recorded as a breach (the admins were told of an earlier one)"
        return f"breach reported to the admins: {admins}"
    return f"escalates to tier {level[0]} ({level[1]})"


def _clock_view(
    record: ClockRecord, clocks: TicketClocks, book: SlaBook, ticket: Ticket, now: datetime
) -> dict[str, Any]:
    clock = record.clock(
        book.calendar_of(clocks)
        if clocks.business_hours
        else book.calendar_of(clocks).twenty_four_seven(),
        clocks.warn_fraction,
    )
    running = (now - record.running_since) if record.running_since is not None else timedelta(0)
    paused = max(
        now - record.started_at - record.elapsed - max(running, timedelta(0)), timedelta(0)
    )
    if record.breached:
        state = "breached"
    elif not record.running:
        state = "paused"
    elif record.due is not None and now >= record.due:
        state = "overdue"
    elif record.warn_at is not None and now >= record.warn_at:
        state = "warning"
    else:
        state = "ok"
    return {
        "kind": record.kind,
        "state": state,
        "started_at": _iso(record.started_at),
        "budget_seconds": _seconds(record.budget),
        "used_seconds": _seconds(clock.used_at(now)),
        "remaining_seconds": _seconds(clock.remaining(now)),
        "paused_seconds": _seconds(paused),
        "due": _iso(record.due),
        "warn_at": _iso(record.warn_at),
        "warned": record.warned,
        "ceiling_seconds": _seconds(record.ceiling),
        "at_warning": "the owner is warned" if not record.warned else "the owner was warned",
        "at_deadline": "nothing more (breach already reported)"
        if record.breached
        else _consequence(ticket, book),
    }


def explain_sla(session: Session, ref: str, book: SlaBook, now: datetime) -> dict[str, Any] | None:
    """The deadlines of ticket ``ref``, the calendar they count on, and what happens at each."""
    ticket = session.scalars(select(Ticket).where(Ticket.ref == ref.upper())).first()
    if ticket is None:
        return None
    clocks = book.clocks(ticket)
    result: dict[str, Any] = {
        "ref": ticket.ref,
        "status": ticket.status,
        "tier": ticket.tier,
        "team": ticket.team,
        "assignee": ticket.assignee,
        "severity": ticket.severity,
        "now": _iso(now),
        "policy": None,
        "calendar": None,
        "paused": False,
        "paused_seconds": 0.0,
        "deadlines": [],
        "next_check": _iso(ticket.sla_check_at),
        "escalated_at": _iso(ticket.escalated_at),
        "breach_reported_at": _iso(ticket.breach_reported_at),
        "unanswered_count": ticket.unanswered_count,
    }
    if clocks is None:
        result["note"] = "no SLA clocks (the ticket was never routed)"
        return result
    policy = book.policy(ticket)
    calendar = book.calendar_of(clocks)
    result["policy"] = {
        "name": policy.name,
        "business_hours": policy.business_hours,
        "first_response_seconds": _seconds(policy.first_response),
        "next_response_seconds": _seconds(policy.next_response),
        "resolution_seconds": _seconds(policy.resolution),
        "resolution_ceiling_seconds": _seconds(policy.resolution_ceiling),
        "warn_at": policy.warn_at,
    }
    result["calendar"] = {
        "name": clocks.calendar,
        "time_zone": calendar.time_zone.key,
        "counting": "business hours" if clocks.business_hours else "24x7",
        "open_now": calendar.is_open(now),
    }
    views = [_clock_view(record, clocks, book, ticket, now) for record in clocks.clocks]
    result["deadlines"] = views
    result["paused"] = clocks.paused
    result["paused_seconds"] = max((view["paused_seconds"] or 0.0 for view in views), default=0.0)
    return result


def escalations_due(
    session: Session, book: SlaBook, now: datetime, within: timedelta, *, limit: int = 1000
) -> list[dict[str, Any]]:
    """Tickets with a warning or deadline falling due by ``now + within``, soonest first."""
    horizon = now + within
    tickets = session.scalars(
        select(Ticket)
        .where(Ticket.sla_check_at <= horizon)
        .order_by(Ticket.sla_check_at)
        .limit(limit)
    ).all()
    due: list[dict[str, Any]] = []
    for ticket in tickets:
        clocks = book.clocks(ticket)
        if clocks is None:
            continue
        for action in clocks.due_actions(horizon):
            due.append(
                {
                    "ref": ticket.ref,
                    "at": _iso(action.at),
                    "overdue": action.at <= now,
                    "deadline": action.kind,
                    "action": action.action,
                    "then": "the owner is warned"
                    if action.action == "warning"
                    else _consequence(ticket, book),
                    "tier": ticket.tier,
                    "team": ticket.team,
                    "assignee": ticket.assignee,
                    "severity": ticket.severity,
                    "subject": ticket.subject,
                }
            )
    return sorted(due, key=lambda item: str(item["at"]))
