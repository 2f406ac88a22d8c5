"""Which ticket an inbound mail belongs to (pure: the caller looks the candidates up).

The rules, strongest first:

1. a reference we signed in In-Reply-To/References joins its ticket, whoever sends it
   (only someone who received our mail can hold one);
2. a reference to a mail already on a ticket joins it when the sender is a participant;
3. the subject tag ``[CMP-000123]`` joins it when the sender is a participant;
4. anything else starts a new ticket, so a stranger can never add to someone else's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["MatchCandidates", "TicketMatch", "match_ticket"]


@dataclass(frozen=True, slots=True)
class MatchCandidates:
    """What the caller found for one mail, in the mail's own reference order."""

    signed_ticket_ids: Sequence[int] = ()
    """Tickets named by verified signed references that exist, In-Reply-To first."""
    referenced_tickets: Mapping[int, frozenset[str]] = field(default_factory=dict)
    """Tickets owning a mail named in In-Reply-To/References, with their participants."""
    tagged_ticket: tuple[int, frozenset[str]] | None = None
    """The ticket named by the subject tag, with its participants."""
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class TicketMatch:
    """The decision: an existing ticket, or None for a new one, and why."""

    ticket_id: int | None
    reason: str


def match_ticket(sender: str | None, candidates: MatchCandidates) -> TicketMatch:
    """Decide which existing ticket (if any) the mail from ``sender`` joins."""
    if candidates.signed_ticket_ids:
        ticket_id = candidates.signed_ticket_ids[0]
        return TicketMatch(ticket_id, "signed reference in In-Reply-To/References")
    sender = (sender or "").lower()
    for ticket_id, participants in candidates.referenced_tickets.items():
        if sender and sender in participants:
            return TicketMatch(ticket_id, "references a mail of this ticket; sender participates")
    if candidates.tagged_ticket is not None:
        ticket_id, participants = candidates.tagged_ticket
        if sender and sender in participants:
            return TicketMatch(ticket_id, f"subject tag {candidates.tag}; sender participates")
        return TicketMatch(
            None, f"subject tag {candidates.tag} ignored: sender is not a participant"
        )
    if candidates.referenced_tickets:
        return TicketMatch(None, "references a ticket's mail, but sender is not a participant")
    return TicketMatch(None, "no reference to an existing ticket")
