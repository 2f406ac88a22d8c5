"""Escalation decisions: which level a ticket moves to, and why.

The matrix (see DESIGN.md): tier 1 frontline → tier 2 the specialist team of
the ticket's category (functional) → tier 3 supervisors (hierarchical) → tier 4
the resolution lead; past tier 4 there is no one left, so a breach is reported
to the admins. Pure: the caller says what happened, this says what to do.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from routing.config import RoutingConfig

__all__ = [
    "ESCALATION_REQUEST_SIGNAL",
    "EscalationDecision",
    "Trigger",
    "escalation_triggers",
    "next_level",
]

Trigger = Literal[
    "customer_request", "severity_critical", "agent_request", "deadline", "unanswered"
]
ESCALATION_REQUEST_SIGNAL = "escalation_request"
"""The classifier's signal for "I want to speak to a manager" (any language)."""

_TOP_TIER = 4
_SUPERVISORS = 3
# When several triggers fire at once, the highest target wins; among equal
# targets, the one a person would name first.
_TRIGGER_ORDER: tuple[Trigger, ...] = (
    "customer_request",
    "severity_critical",
    "agent_request",
    "deadline",
    "unanswered",
)


@dataclass(frozen=True)
class EscalationDecision:
    """Move a ticket from ``from_tier`` to ``to_tier`` (None: breach, tell the admins)."""

    trigger: Trigger
    from_tier: int
    to_tier: int | None
    team: str | None
    reason: str

    @property
    def breach(self) -> bool:
        """True when there is no level left: report to ``[tiers] admins``."""
        return self.to_tier is None


def next_level(
    ticket_tier: int, category: str | None, config: RoutingConfig
) -> tuple[int, str] | None:
    """The level above ``ticket_tier`` as (tier, team), or None above tier 4.

    Tier 1 → the specialists of ``category`` (or the ``default`` specialists),
    2 → supervisors, 3 → resolution lead, 4 → None (breach to admins).
    """
    if not 1 <= ticket_tier <= _TOP_TIER:
        raise ValueError(f"tier must be 1 to 4, not {ticket_tier}")
    if ticket_tier == _TOP_TIER:
        return None
    tier = ticket_tier + 1
    return tier, config.tiers.team_for_tier(tier, category)


def _up_one(
    trigger: Trigger, tier: int, category: str | None, config: RoutingConfig, why: str
) -> EscalationDecision | None:
    level = next_level(tier, category, config)
    if level is None:
        if trigger != "deadline":
            # Nobody is above the resolution lead, and nothing is late yet: the
            # owner keeps the ticket (and hears of the customer's mail as usual).
            return None
        return EscalationDecision(
            trigger, tier, None, None, f"{why}; no level above tier 4: breach reported to admins"
        )
    return EscalationDecision(trigger, tier, level[0], level[1], f"{why}; up to tier {level[0]}")


def _to_supervisors(
    trigger: Trigger, tier: int, config: RoutingConfig, why: str
) -> EscalationDecision | None:
    if tier >= _SUPERVISORS:
        return None  # already with supervisors or above: nothing to do
    team = config.tiers.supervisors
    return EscalationDecision(trigger, tier, _SUPERVISORS, team, f"{why}; to supervisors ({team})")


def escalation_triggers(
    *,
    tier: int,
    category: str | None,
    config: RoutingConfig,
    signals: Collection[str] = (),
    severity: str | None = None,
    previous_severity: str | None = None,
    unanswered_customer_messages: int = 0,
    agent_request: str | None = None,
    deadline_passed: str | None = None,
) -> tuple[EscalationDecision, ...]:
    """Every escalation the given events call for; the first is the one to act on.

    - ``signals`` of the newest customer message: ``escalation_request`` (asked
      for a manager) moves the ticket to tier 3 unless it is there already.
    - ``severity`` became ``critical`` (``previous_severity`` was not): tier 3.
    - ``unanswered_customer_messages`` since the last agent reply: one level up
      each time the count reaches a multiple of ``[routing]
      escalate_unanswered_after`` (so a fourth message does not escalate again).
    - ``agent_request``: an agent's ``#escalate`` with its reason ("" for none): one level up.
    - ``deadline_passed``: the kind of deadline that passed: one level up.

    A deadline passed at tier 4 is a breach (``to_tier`` None); the other
    triggers have nowhere to go from tier 4 and call for nothing (only a late
    ticket is a breach). Sorted highest target first (a breach highest of
    all), then by the trigger order above.
    """
    found: list[EscalationDecision] = []
    if ESCALATION_REQUEST_SIGNAL in signals:
        decision = _to_supervisors(
            "customer_request", tier, config, "the customer asked for a manager"
        )
        if decision is not None:
            found.append(decision)
    if (severity or "").lower() == "critical" and (previous_severity or "").lower() != "critical":
        was = previous_severity or "unknown"
        decision = _to_supervisors(
            "severity_critical", tier, config, f"severity rose from {was} to critical"
        )
        if decision is not None:
            found.append(decision)
    raised: list[EscalationDecision | None] = []
    if agent_request is not None:
        why = "an agent escalated" + (f": {agent_request.strip()}" if agent_request.strip() else "")
        raised.append(_up_one("agent_request", tier, category, config, why))
    if deadline_passed is not None:
        why = f"the {deadline_passed.replace('_', ' ')} deadline passed at tier {tier}"
        raised.append(_up_one("deadline", tier, category, config, why))
    limit = config.routing.escalate_unanswered_after
    count = unanswered_customer_messages
    if limit and count and count % limit == 0:
        why = f"{count} customer messages without an agent reply"
        raised.append(_up_one("unanswered", tier, category, config, why))
    found.extend(decision for decision in raised if decision is not None)

    def priority(decision: EscalationDecision) -> tuple[int, int]:
        target = _TOP_TIER + 1 if decision.to_tier is None else decision.to_tier
        return -target, _TRIGGER_ORDER.index(decision.trigger)

    return tuple(sorted(found, key=priority))
