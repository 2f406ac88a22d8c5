"""Routing rules, tiers, SLA arithmetic and templates (pure; no I/O).

Values in, values out: nothing here reads the clock (time is passed in),
touches the network or the database, or runs at import time. The one
exception is :mod:`routing.templates`, which reads template files on first use.

Modules: :mod:`routing.config` (TOML sections), :mod:`routing.rules`
(the routing decision), :mod:`routing.assignment`, :mod:`routing.calendar`
and :mod:`routing.sla` (business time and deadlines), :mod:`routing.escalation`,
:mod:`routing.templates` and :mod:`routing.text` (messages).
"""

from routing.calendar import BusinessCalendar
from routing.config import (
    RoutingConfig,
    default_routing_config,
    example_routing_toml,
    parse_duration,
    routing_config_from_document,
)
from routing.errors import CalendarError, RoutingError, TemplateError
from routing.escalation import EscalationDecision, escalation_triggers, next_level
from routing.rules import RoutingDecision, TicketFacts, route
from routing.sla import Deadline, Deadlines, SlaClock, compute_deadlines
from routing.templates import RenderedMail, render

__all__ = [
    "BusinessCalendar",
    "CalendarError",
    "Deadline",
    "Deadlines",
    "EscalationDecision",
    "RenderedMail",
    "RoutingConfig",
    "RoutingDecision",
    "RoutingError",
    "SlaClock",
    "TemplateError",
    "TicketFacts",
    "compute_deadlines",
    "default_routing_config",
    "escalation_triggers",
    "example_routing_toml",
    "next_level",
    "parse_duration",
    "render",
    "route",
    "routing_config_from_document",
]
