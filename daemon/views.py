"""Read-only views of tickets and the quarantine, as the JSON shapes the CLI prints.

External tooling relies on these shapes: add keys, never rename or remove them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models import Attachment, Event, Message, Quarantine, Ticket

__all__ = ["list_quarantine", "list_tickets", "show_ticket"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_tickets(
    session: Session,
    *,
    status: str | None = None,
    limit: int | None = None,
    tier: int | None = None,
    team: str | None = None,
    overdue_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Tickets, newest first, each with its message count.

    Filters: ``status``, ``tier``, ``team``, and ``overdue_at`` (only tickets
    with a running deadline that has passed at that instant).
    """
    counts = (
        select(Message.ticket_id, func.count(Message.id).label("n"))
        .group_by(Message.ticket_id)
        .subquery()
    )
    query = (
        select(Ticket, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.ticket_id == Ticket.id)
        .order_by(Ticket.id.desc())
    )
    if status is not None:
        query = query.where(Ticket.status == status)
    if tier is not None:
        query = query.where(Ticket.tier == tier)
    if team is not None:
        query = query.where(Ticket.team == team)
    if overdue_at is not None:
        query = query.where(
            or_(
                Ticket.first_response_due_at <= overdue_at,
                Ticket.next_response_due_at <= overdue_at,
                Ticket.resolution_due_at <= overdue_at,
            )
        )
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "ref": ticket.ref,
            "status": ticket.status,
            "customer_email": ticket.customer_email,
            "subject": ticket.subject,
            "category": ticket.category,
            "severity": ticket.severity,
            "tier": ticket.tier,
            "team": ticket.team,
            "assignee": ticket.assignee,
            "created_at": _iso(ticket.created_at),
            "message_count": int(count),
            "next_deadline": _iso(_earliest(ticket)),
        }
        for ticket, count in session.execute(query)
    ]


def _earliest(ticket: Ticket) -> datetime | None:
    dues = (ticket.first_response_due_at, ticket.next_response_due_at, ticket.resolution_due_at)
    return min((due for due in dues if due is not None), default=None)


def show_ticket(session: Session, ref: str) -> dict[str, Any] | None:
    """One ticket with its messages (and their attachments) and events, or None."""
    ticket = session.scalars(select(Ticket).where(Ticket.ref == ref.upper())).first()
    if ticket is None:
        return None
    messages = session.scalars(
        select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
    ).all()
    attachments: dict[int, list[dict[str, Any]]] = {}
    for item in session.scalars(
        select(Attachment).where(Attachment.message_pk.in_([m.id for m in messages]))
    ):
        attachments.setdefault(item.message_pk, []).append(
            {
                "filename": item.filename,
                "content_type": item.content_type,
                "size": item.size,
                "sha256": item.sha256,
            }
        )
    events = session.scalars(
        select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id)
    ).all()
    return {
        "ref": ticket.ref,
        "status": ticket.status,
        "customer_email": ticket.customer_email,
        "customer_name": ticket.customer_name,
        "subject": ticket.subject,
        "language": ticket.language,
        "category": ticket.category,
        "category_confidence": ticket.category_confidence,
        "severity": ticket.severity,
        "severity_confidence": ticket.severity_confidence,
        "signals": ticket.signals,
        "model_version": ticket.model_version,
        "tier": ticket.tier,
        "team": ticket.team,
        "assignee": ticket.assignee,
        "mailbox": ticket.mailbox,
        "sla_policy": ticket.sla_policy,
        "first_response_due_at": _iso(ticket.first_response_due_at),
        "next_response_due_at": _iso(ticket.next_response_due_at),
        "resolution_due_at": _iso(ticket.resolution_due_at),
        "escalated_at": _iso(ticket.escalated_at),
        "resolved_at": _iso(ticket.resolved_at),
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
        "message_count": len(messages),
        "messages": [
            {
                "id": message.id,
                "direction": message.direction,
                "kind": message.kind,
                "message_id": message.message_id,
                "in_reply_to": message.in_reply_to,
                "references": message.references,
                "from_email": message.from_email,
                "from_name": message.from_name,
                "to": message.to,
                "cc": message.cc,
                "subject": message.subject,
                "date": _iso(message.date),
                "received_at": _iso(message.received_at),
                "text": message.text,
                "full_text": message.full_text,
                "attachments": attachments.get(message.id, []),
                "mailbox": message.mailbox,
                "uid": message.uid,
            }
            for message in messages
        ],
        "events": [
            {"at": _iso(event.at), "kind": event.kind, "actor": event.actor, "data": event.data}
            for event in events
        ],
    }


def list_quarantine(session: Session, *, include_resolved: bool = False) -> list[dict[str, Any]]:
    """Quarantined and rejected mail, oldest first."""
    query = select(Quarantine).order_by(Quarantine.id)
    if not include_resolved:
        query = query.where(Quarantine.resolved_at.is_(None))
    return [
        {
            "id": entry.id,
            "kind": entry.kind,
            "reason": entry.reason,
            "mailbox": entry.mailbox,
            "uidvalidity": entry.uidvalidity,
            "uid": entry.uid,
            "message_id": entry.message_id,
            "from_email": entry.from_email,
            "subject": entry.subject,
            "created_at": _iso(entry.created_at),
            "attempts": entry.attempts,
            "resolved_at": _iso(entry.resolved_at),
            "raw_kept": entry.raw_id is not None,
        }
        for entry in session.scalars(query)
    ]
