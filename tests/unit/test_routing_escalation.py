"""Escalation decisions: the four-level matrix and what triggers a move."""

from __future__ import annotations

from typing import Any

import pytest

from routing.config import RoutingConfig, default_routing_config
from routing.escalation import escalation_triggers, next_level

CONFIG = default_routing_config()


def _triggers(tier: int, **events: Any) -> tuple[Any, ...]:
    return escalation_triggers(
        tier=tier, category=events.pop("category", "billing"), config=CONFIG, **events
    )


def test_next_level_walks_the_matrix() -> None:
    assert next_level(1, "billing", CONFIG) == (2, "billing")
    assert next_level(1, "delivery", CONFIG) == (2, "logistics")
    assert next_level(1, "something new", CONFIG) == (2, "customer-relations")
    assert next_level(1, None, CONFIG) == (2, "customer-relations")
    assert next_level(2, "billing", CONFIG) == (3, "supervisors")
    assert next_level(3, "billing", CONFIG) == (4, "resolution-lead")
    assert next_level(4, "billing", CONFIG) is None
    with pytest.raises(ValueError, match="tier must be 1 to 4"):
        next_level(5, "billing", CONFIG)


def test_nothing_happened_nothing_to_do() -> None:
    assert _triggers(1) == ()
    assert _triggers(1, severity="critical", previous_severity="critical") == ()
    assert _triggers(1, signals=("legal_threat",)) == ()


def test_customer_asking_for_a_manager_goes_to_supervisors() -> None:
    (decision,) = _triggers(1, signals=("escalation_request",))
    assert (decision.trigger, decision.from_tier, decision.to_tier) == ("customer_request", 1, 3)
    assert decision.team == "supervisors"
    assert decision.reason == "the customer asked for a manager; to supervisors (supervisors)"
    assert not decision.breach
    assert _triggers(3, signals=("escalation_request",)) == ()  # already there


def test_severity_becoming_critical_goes_to_supervisors() -> None:
    (decision,) = _triggers(2, severity="critical", previous_severity="high")
    assert (decision.trigger, decision.to_tier, decision.team) == (
        "severity_critical",
        3,
        "supervisors",
    )
    assert "severity rose from high to critical" in decision.reason
    assert _triggers(4, severity="critical", previous_severity="low") == ()


def test_unanswered_customer_messages_move_one_level_each_n() -> None:
    assert _triggers(1, unanswered_customer_messages=2) == ()
    (decision,) = _triggers(1, unanswered_customer_messages=3)
    assert (decision.trigger, decision.to_tier, decision.team) == ("unanswered", 2, "billing")
    assert _triggers(2, unanswered_customer_messages=4) == ()  # not again on the 4th
    assert _triggers(2, unanswered_customer_messages=6)[0].to_tier == 3


def test_unanswered_limit_zero_switches_it_off() -> None:
    document = CONFIG.model_dump()
    document["routing"]["escalate_unanswered_after"] = 0
    config = RoutingConfig.model_validate(document)
    assert (
        escalation_triggers(tier=1, category=None, config=config, unanswered_customer_messages=3)
        == ()
    )


def test_agent_escalation_goes_up_one_level() -> None:
    (decision,) = _triggers(1, agent_request="needs a refund above my limit", category="delivery")
    assert (decision.trigger, decision.to_tier, decision.team) == ("agent_request", 2, "logistics")
    assert decision.reason.startswith("an agent escalated: needs a refund above my limit")
    (bare,) = _triggers(2, agent_request="")
    assert bare.reason == "an agent escalated; up to tier 3"


def test_deadline_at_each_tier_and_breach_at_the_top() -> None:
    for tier, target in ((1, 2), (2, 3), (3, 4)):
        (decision,) = _triggers(tier, deadline_passed="first_response")
        assert (decision.trigger, decision.to_tier) == ("deadline", target)
    (breach,) = _triggers(4, deadline_passed="resolution")
    assert breach.breach and breach.to_tier is None and breach.team is None
    assert breach.reason == (
        "the resolution deadline passed at tier 4; no level above tier 4: breach reported to admins"
    )


def test_the_highest_target_comes_first() -> None:
    decisions = _triggers(
        1,
        signals=("escalation_request",),
        deadline_passed="first_response",
        unanswered_customer_messages=3,
        severity="critical",
        previous_severity="medium",
    )
    assert [d.trigger for d in decisions] == [
        "customer_request",
        "severity_critical",
        "deadline",
        "unanswered",
    ]
    assert [d.to_tier for d in decisions] == [3, 3, 2, 2]
    at_the_top = _triggers(4, deadline_passed="resolution", agent_request="help")
    assert [d.trigger for d in at_the_top] == ["deadline"]
    assert all(d.breach for d in at_the_top)


def test_at_the_top_only_a_passed_deadline_is_a_breach() -> None:
    # Nobody is above tier 4: an agent's request, unanswered mail, a customer
    # asking for a manager call for nothing; the owner keeps the ticket.
    assert _triggers(4, agent_request="please help") == ()
    assert _triggers(4, unanswered_customer_messages=3) == ()
    assert _triggers(4, signals=("escalation_request",)) == ()
    assert _triggers(3, agent_request="") != ()
