"""Reading and writing a ticket's SLA clocks, with the calendars and policies they name.

The clocks live in the ticket's ``sla`` column as JSON; the instants the
scheduler and the CLI search by (``sla_check_at`` and the three ``*_due_at``
columns) are derived from them here and nowhere else, so they never disagree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from models import Ticket
from routing import BusinessCalendar, RoutingConfig
from routing.config import SlaPolicy
from routing.errors import CalendarError
from routing.rules import TicketFacts, choose_sla_policy
from routing.ticket_clocks import TicketClocks

__all__ = ["SlaBook"]

logger = logging.getLogger(__name__)


@dataclass
class SlaBook:
    """Policies and calendars of the configuration, and the clocks stored on tickets."""

    routing: RoutingConfig
    _calendars: dict[str, BusinessCalendar] = field(default_factory=dict)

    def calendar(self, name: str) -> BusinessCalendar:
        """The business calendar called ``name`` (built once)."""
        if name not in self._calendars:
            self._calendars[name] = BusinessCalendar.from_config(self.routing.calendar(name))
        return self._calendars[name]

    def team_calendar(self, team: str | None) -> tuple[str, BusinessCalendar]:
        """The name and calendar of ``team``; the frontline's when the team is unknown."""
        known = {t.name: t for t in self.routing.teams}
        config = known.get(team or "") or known[self.routing.tiers.frontline]
        return config.calendar, self.calendar(config.calendar)

    def calendar_of(self, clocks: TicketClocks) -> BusinessCalendar:
        """The calendar the clocks count on (the frontline's if it was removed from the config)."""
        try:
            return self.calendar(clocks.calendar)
        except LookupError:
            return self.team_calendar(None)[1]

    def policy(self, ticket: Ticket) -> SlaPolicy:
        """The ticket's SLA policy; chosen again by severity if the stored one is gone."""
        if ticket.sla_policy:
            try:
                return self.routing.sla_policy(ticket.sla_policy)
            except LookupError:
                logger.warning(
                    "SLA policy %s of %s is no longer configured", ticket.sla_policy, ticket.ref
                )
        return self.policy_for(ticket, ticket.severity)

    def policy_for(self, ticket: Ticket, severity: str | None) -> SlaPolicy:
        """The policy the configuration picks for ``ticket`` at ``severity``."""
        facts = TicketFacts(
            sender=ticket.customer_email,
            category=ticket.category,
            severity=severity,
            category_confidence=ticket.category_confidence or 0.0,
        )
        return choose_sla_policy(facts, self.routing)[0]

    def clocks(self, ticket: Ticket) -> TicketClocks | None:
        """The ticket's clocks, or None when it has none (never routed, or unreadable)."""
        if not ticket.sla:
            return None
        try:
            return TicketClocks.from_json(ticket.sla)
        except CalendarError as exc:
            logger.error("SLA state of %s is unreadable: %s", ticket.ref, exc)
            return None

    @staticmethod
    def store(ticket: Ticket, clocks: TicketClocks | None) -> None:
        """Save ``clocks`` on ``ticket`` with the derived search columns."""
        if clocks is None:
            ticket.sla = {}
            ticket.sla_check_at = None
            ticket.first_response_due_at = None
            ticket.next_response_due_at = None
            ticket.resolution_due_at = None
            return
        ticket.sla = clocks.to_json()
        ticket.sla_check_at = clocks.next_check()
        ticket.first_response_due_at = clocks.due("first_response")
        ticket.next_response_due_at = clocks.due("next_response")
        ticket.resolution_due_at = clocks.due("resolution")
