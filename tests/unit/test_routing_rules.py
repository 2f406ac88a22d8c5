"""Routing rules as pure functions: first match wins, every condition, why_not."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from routing.config import RoutingConfig, default_routing_config
from routing.rules import TicketFacts, choose_sla_policy, route

_TEAMS = {"frontline", "triage", "billing", "technical", "supervisors", "resolution-lead", "vip"}


def _config(rules: list[dict[str, Any]], **extra: Any) -> RoutingConfig:
    document: dict[str, Any] = {
        "routing": {"vip_customers": ["ceo@bigcorp.com", "vip.example"]},
        "calendars": [{"name": "office", "time_zone": "Europe/Berlin"}],
        "teams": [
            {
                "name": name,
                "calendar": "office",
                "email": f"{name}@support.test",
                "members": [
                    {"name": f"{name} one", "email": f"{name}1@support.test"},
                    {"name": f"{name} two", "email": f"{name}2@support.test"},
                ],
            }
            for name in sorted(_TEAMS)
        ],
        "tiers": {
            "frontline": "frontline",
            "specialists": {"billing": "billing", "technical": "technical", "default": "technical"},
            "supervisors": "supervisors",
            "resolution_lead": "resolution-lead",
            "triage": "triage",
            "admins": ["admin@support.test"],
        },
        "sla_policies": [
            {
                "name": f"std-{s}",
                "severity": [s],
                "first_response": "4h",
                "next_response": "8h",
                "resolution": "5d",
            }
            for s in ("low", "medium", "high", "critical")
        ]
        + [
            {
                "name": "bigcorp",
                "severity": ["high", "critical"],
                "customers": ["bigcorp.com"],
                "first_response": "1h",
                "next_response": "2h",
                "resolution": "1d",
            },
            {
                "name": "billing-fast",
                "severity": ["high"],
                "categories": ["billing"],
                "first_response": "2h",
                "next_response": "4h",
                "resolution": "2d",
            },
        ],
        "rules": [*rules, {"name": "default"}],
        **extra,
    }
    return RoutingConfig.model_validate(document)


def _ticket(**changes: Any) -> TicketFacts:
    base = TicketFacts(
        sender="alice@customer.example",
        category="billing",
        category_confidence=0.9,
        severity="medium",
        severity_confidence=0.8,
        language="en",
        mailbox="support",
        to_addresses=("support@support.test",),
        subject="Charged twice",
        text="You charged me twice for March.",
    )
    return replace(base, **changes)


def _route(config: RoutingConfig, ticket: TicketFacts) -> Any:
    return route(ticket, config, load={}, rr_state={})


def test_first_match_wins_and_why_not_lists_earlier_rules() -> None:
    config = _config(
        [
            {"name": "technical", "category": ["technical"], "tier": 2},
            {"name": "billing", "category": ["billing"], "tier": 2, "tags": ["money"]},
            {"name": "also billing", "category": ["billing"], "tier": 3},
        ]
    )
    decision = _route(config, _ticket())
    assert decision.rule == "billing"
    assert decision.rule_index == 1
    assert decision.tier == 2
    assert decision.team == "billing"
    assert decision.tags == ("money",)
    assert decision.reasons[0] == "category billing in [billing]"
    assert decision.why_not == (("technical", "category billing not in [technical]"),)
    assert "tier 2 (specialists for billing): team billing" in decision.reasons


def test_default_rule_routes_to_frontline() -> None:
    decision = _route(_config([]), _ticket())
    assert decision.rule == "default"
    assert decision.reasons[0] == "default rule (no conditions)"
    assert (decision.tier, decision.team, decision.calendar) == (1, "frontline", "office")
    assert decision.acknowledge and decision.ack_template == "acknowledgement"


@pytest.mark.parametrize(
    ("rule", "ticket", "matched", "reason"),
    [
        ({"min_severity": "high"}, {"severity": "critical"}, True, "severity critical >= high"),
        ({"min_severity": "high"}, {"severity": "medium"}, False, "severity medium < high"),
        ({"min_severity": "medium"}, {"severity": None}, True, "severity medium >= medium"),
        ({"language": ["de", "hu"]}, {"language": "hu"}, True, "language hu in [de, hu]"),
        ({"language": ["de"]}, {"language": "de-AT"}, True, "language de in [de]"),
        ({"language": ["de"]}, {"language": None}, False, "language unknown not in [de]"),
        (
            {"sender": ["*@bigcorp.com"]},
            {"sender": "Bob@BigCorp.com"},
            True,
            "sender Bob@BigCorp.com matches *@bigcorp.com",
        ),
        (
            {"sender": ["bigcorp.com"]},
            {},
            False,
            "sender alice@customer.example matches none of [*@bigcorp.com]",
        ),
        (
            {"vip": True},
            {"sender": "x@vip.example"},
            True,
            "sender x@vip.example is a VIP customer",
        ),
        ({"vip": True}, {}, False, "sender alice@customer.example is not a VIP customer"),
        (
            {"vip": True},
            {"customer_is_vip": True},
            True,
            "sender alice@customer.example is a VIP customer",
        ),
        (
            {"vip": False},
            {"sender": "ceo@bigcorp.com"},
            False,
            "sender ceo@bigcorp.com is a VIP customer",
        ),
        ({"mailbox": ["vip-box"]}, {"mailbox": "vip-box"}, True, "mailbox vip-box in [vip-box]"),
        ({"mailbox": ["vip-box"]}, {}, False, "mailbox support not in [vip-box]"),
        (
            {"to_address": ["vip@*"]},
            {"to_addresses": ("help@x.test", "VIP@x.test")},
            True,
            "to address vip@x.test matches vip@*",
        ),
        (
            {"to_address": ["vip@*"]},
            {},
            False,
            "to addresses support@support.test match none of [vip@*]",
        ),
        (
            {"signal": ["legal_threat"]},
            {"signals": ("outage", "legal_threat")},
            True,
            "signal legal_threat in [legal_threat]",
        ),
        ({"signal": ["legal_threat"]}, {}, False, "no signal in [legal_threat]"),
        (
            {"subject_regex": "charged\\s+twice"},
            {"subject": "CHARGED  TWICE!"},
            True,
            "subject matches /charged\\s+twice/ at 'CHARGED TWICE'",
        ),
        ({"subject_regex": "refund"}, {}, False, "subject does not match /refund/"),
        ({"text_regex": "march|april"}, {}, True, "text matches /march|april/ at 'March'"),
        ({"text_regex": "lawyer"}, {}, False, "text does not match /lawyer/"),
        ({"unclassified": True}, {"category": "unclassified"}, True, "ticket is unclassified"),
        ({"unclassified": True}, {}, False, "ticket is classified (billing)"),
        ({"unclassified": False}, {"category": None}, False, "ticket is unclassified"),
        (
            {"category": ["billing"]},
            {"category": None},
            False,
            "category unclassified not in [billing]",
        ),
    ],
)
def test_each_condition(
    rule: dict[str, Any], ticket: dict[str, Any], matched: bool, reason: str
) -> None:
    config = _config([{"name": "probe", **rule}])
    decision = _route(config, _ticket(**ticket))
    if matched:
        assert decision.rule == "probe"
        assert decision.reasons[0] == reason
    else:
        assert decision.rule == "default"
        assert decision.why_not == (("probe", reason),)


def test_all_conditions_must_hold_and_the_first_failure_is_reported() -> None:
    config = _config(
        [
            {
                "name": "hu billing",
                "category": ["billing"],
                "language": ["hu"],
                "min_severity": "high",
                "tier": 2,
            }
        ]
    )
    decision = _route(config, _ticket(language="hu", severity="low"))
    assert decision.why_not == (("hu billing", "severity low < high"),)
    decision = _route(config, _ticket(language="hu", severity="high"))
    assert decision.rule == "hu billing"
    assert decision.reasons[:3] == (
        "category billing in [billing]",
        "severity high >= high",
        "language hu in [hu]",
    )


def test_unnamed_rules_are_labelled_by_index() -> None:
    config = _config([{"category": ["technical"]}])
    assert _route(config, _ticket()).why_not == (
        ("rules[0]", "category billing not in [technical]"),
    )


def test_unclassified_tickets_go_to_triage() -> None:
    config = _config([{"name": "tier two", "min_severity": "high", "tier": 2}])
    decision = _route(config, _ticket(category="unclassified"))
    assert (decision.rule, decision.team) == ("default", "triage")
    assert "unclassified: triage team triage" in decision.reasons
    decision = _route(config, _ticket(category=None, severity="high"))
    assert (decision.tier, decision.team) == (2, "triage")


def test_unclassified_at_tier_three_stays_with_supervisors() -> None:
    config = _config([{"name": "urgent", "min_severity": "critical", "tier": 3}])
    decision = _route(config, _ticket(category=None, severity="critical"))
    assert (decision.tier, decision.team) == (3, "supervisors")


def test_rule_team_overrides_the_tier() -> None:
    config = _config([{"name": "vip", "vip": True, "tier": 2, "team": "vip"}])
    decision = _route(config, _ticket(sender="ceo@bigcorp.com", category=None))
    assert (decision.tier, decision.team) == (2, "vip")
    assert "team vip set by the rule" in decision.reasons


def test_actions_are_carried_into_the_decision() -> None:
    config = _config(
        [
            {
                "name": "press",
                "subject_regex": "interview",
                "acknowledge": False,
                "ack_template": "press_ack",
                "assignment": "none",
                "tags": ["press", "pr"],
                "sla_policy": "std-low",
            }
        ]
    )
    decision = _route(config, _ticket(subject="Interview request", severity="critical"))
    assert not decision.acknowledge
    assert decision.ack_template == "press_ack"
    assert decision.tags == ("press", "pr")
    assert decision.assignee is None
    assert decision.notify == ("frontline@support.test",)
    assert decision.sla.name == "std-low"
    assert "SLA policy std-low set by the rule" in decision.reasons


def test_assignment_uses_round_robin_state_and_returns_it() -> None:
    config = _config([])
    first = route(_ticket(), config, load={}, rr_state={})
    assert first.assignee == "frontline1@support.test"
    second = route(_ticket(), config, load={}, rr_state=first.rr_state)
    assert second.assignee == "frontline2@support.test"
    third = route(_ticket(), config, load={}, rr_state=second.rr_state)
    assert third.assignee == "frontline1@support.test"


def test_least_loaded_assignment_in_a_rule() -> None:
    config = _config([{"name": "ll", "category": ["billing"], "assignment": "least_loaded"}])
    decision = route(
        _ticket(),
        config,
        load={"frontline1@support.test": 5, "frontline2@support.test": 1},
        rr_state={},
    )
    assert decision.assignee == "frontline2@support.test"


@pytest.mark.parametrize(
    ("changes", "policy", "why"),
    [
        ({"severity": "low"}, "std-low", "SLA policy std-low by severity (low)"),
        ({"severity": "high"}, "billing-fast", "SLA policy billing-fast by category (high)"),
        ({"severity": "high", "category": "technical"}, "std-high", "by severity"),
        ({"severity": "high", "sender": "x@bigcorp.com"}, "bigcorp", "by customer (high)"),
        ({"severity": "medium", "sender": "x@bigcorp.com"}, "std-medium", "by severity"),
        ({"severity": None}, "std-medium", "by severity (medium)"),
        ({"severity": "high", "category": "unclassified"}, "std-high", "by severity"),
    ],
)
def test_sla_policy_choice_prefers_the_most_specific(
    changes: dict[str, Any], policy: str, why: str
) -> None:
    config = _config([])
    chosen, reason = choose_sla_policy(_ticket(**changes), config)
    assert chosen.name == policy
    assert why in reason


def test_route_is_pure() -> None:
    config = _config([{"name": "b", "category": ["billing"]}])
    ticket = _ticket()
    rr_state = {"frontline": 1}
    load = {"frontline2@support.test": 3}
    first = route(ticket, config, load, rr_state)
    second = route(ticket, config, load, rr_state)
    assert first == second
    assert rr_state == {"frontline": 1}  # the caller's state is not modified
    assert load == {"frontline2@support.test": 3}


def test_explain_mentions_everything() -> None:
    config = default_routing_config()
    decision = route(
        TicketFacts(sender="x@y.test", category="delivery", severity="critical", language="de"),
        config,
        load={},
        rr_state={},
    )
    assert decision.rule == "critical to specialists"
    assert decision.team == "logistics"
    assert decision.sla.name == "critical"
    assert decision.sla.first_response == timedelta(hours=1)
    text = decision.explain()
    assert "rule: critical to specialists" in text
    assert "unclassified to triage: ticket is classified (delivery)" in text
    assert "SLA critical (24x7)" in text
    assert "tier 2, team logistics, assignee jonas@example.com" in text
