"""The routing decision: which rule, tier, team, agent and SLA policy a ticket gets.

:func:`route` is pure: it takes the ticket's facts, the configuration, the
open-ticket counts and the round-robin state, and returns a
:class:`RoutingDecision` that says what to do and, for ``complaintd explain``,
why (the reasons the winning rule matched, and for every earlier rule the
first condition that failed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from routing.assignment import assign
from routing.config import (
    SEVERITIES,
    RoutingConfig,
    RuleConfig,
    SlaPolicy,
    address_matches,
    severity_rank,
)

__all__ = ["UNCLASSIFIED", "RoutingDecision", "TicketFacts", "choose_sla_policy", "route"]

UNCLASSIFIED = "unclassified"
"""The category of a ticket the classifier was not confident about."""

_DEFAULT_SEVERITY = "medium"
# How much of a subject or text a reason quotes: enough to recognise, not a whole mail.
_REGEX_SNIPPET = 40


@dataclass(frozen=True)
class TicketFacts:
    """What routing may look at: the classifier's estimates and the mail's envelope."""

    sender: str
    category: str | None = None
    """None or ``"unclassified"`` when the classifier abstained."""
    category_confidence: float = 0.0
    severity: str | None = None
    """``low`` ... ``critical``; None is treated as ``medium``."""
    severity_confidence: float = 0.0
    language: str | None = None
    mailbox: str | None = None
    to_addresses: tuple[str, ...] = ()
    subject: str = ""
    text: str = ""
    signals: tuple[str, ...] = ()
    customer_is_vip: bool | None = None
    """Known VIP status (e.g. from a CRM); None: decided by ``[routing] vip_customers``."""

    @property
    def is_unclassified(self) -> bool:
        """True when there is no usable category."""
        return not self.category or self.category == UNCLASSIFIED

    @property
    def effective_severity(self) -> str:
        """The severity used for matching (``medium`` when unknown)."""
        severity = (self.severity or "").lower()
        return severity if severity in SEVERITIES else _DEFAULT_SEVERITY


@dataclass(frozen=True)
class RoutingDecision:
    """Where a ticket goes, with the reasons (see :meth:`explain`)."""

    rule: str
    """The winning rule's name, or ``rules[i]`` when it has none."""
    rule_index: int
    reasons: tuple[str, ...]
    """Why the rule matched and how team, assignee and policy were chosen."""
    why_not: tuple[tuple[str, str], ...]
    """(rule, first failed condition) for every rule tried before the winner."""
    tier: int
    team: str
    calendar: str
    """The owning team's calendar (deadlines count its business hours)."""
    assignee: str | None
    notify: tuple[str, ...]
    """Who is told: the assignee, else the team address (or members)."""
    sla: SlaPolicy
    acknowledge: bool
    ack_template: str
    tags: tuple[str, ...]
    rr_state: Mapping[str, int] = field(default_factory=dict)
    """Round-robin state to store for the next ticket."""

    def explain(self) -> str:
        """A human-readable account of the decision, for the CLI."""
        lines = [f"rule: {self.rule}"]
        lines += [f"  because {reason}" for reason in self.reasons]
        if self.why_not:
            lines.append("earlier rules that did not match:")
            lines += [f"  {rule}: {reason}" for rule, reason in self.why_not]
        sla = self.sla
        clock = "business hours" if sla.business_hours else "24x7"
        lines += [
            f"tier {self.tier}, team {self.team}, assignee {self.assignee or '(nobody)'}",
            f"notify: {', '.join(self.notify) or '(nobody)'}",
            f"SLA {sla.name} ({clock}): first response {sla.first_response}, "
            f"next response {sla.next_response}, resolution {sla.resolution}",
            f"acknowledge: {'yes, ' + self.ack_template if self.acknowledge else 'no'}",
        ]
        if self.tags:
            lines.append(f"tags: {', '.join(self.tags)}")
        return "\n".join(lines)


def _listing(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(values) + "]"


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _REGEX_SNIPPET else text[: _REGEX_SNIPPET - 1] + "…"


def _is_vip(ticket: TicketFacts, config: RoutingConfig) -> bool:
    if ticket.customer_is_vip is not None:
        return ticket.customer_is_vip
    return address_matches(ticket.sender, config.routing.vip_customers) is not None


# Each check returns (holds, explanation); the explanation reads well either way.
Check = Callable[[RuleConfig, TicketFacts, RoutingConfig], tuple[bool, str]]


def _category(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    assert rule.category is not None
    category = ticket.category or UNCLASSIFIED
    if category in rule.category:
        return True, f"category {category} in {_listing(rule.category)}"
    return False, f"category {category} not in {_listing(rule.category)}"


def _min_severity(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    assert rule.min_severity is not None
    severity = ticket.effective_severity
    if severity_rank(severity) >= severity_rank(rule.min_severity):
        return True, f"severity {severity} >= {rule.min_severity}"
    return False, f"severity {severity} < {rule.min_severity}"


def _language(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    assert rule.language is not None
    language = (ticket.language or "").lower().replace("_", "-").split("-")[0] or "unknown"
    if language in rule.language:
        return True, f"language {language} in {_listing(rule.language)}"
    return False, f"language {language} not in {_listing(rule.language)}"


def _sender(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    assert rule.sender is not None
    pattern = address_matches(ticket.sender, rule.sender)
    if pattern is not None:
        return True, f"sender {ticket.sender} matches {pattern}"
    return False, f"sender {ticket.sender} matches none of {_listing(rule.sender)}"


def _vip(rule: RuleConfig, ticket: TicketFacts, config: RoutingConfig) -> tuple[bool, str]:
    vip = _is_vip(ticket, config)
    described = "is a VIP customer" if vip else "is not a VIP customer"
    return vip == rule.vip, f"sender {ticket.sender} {described}"


def _mailbox(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    assert rule.mailbox is not None
    mailbox = ticket.mailbox or "(none)"
    if ticket.mailbox in rule.mailbox:
        return True, f"mailbox {mailbox} in {_listing(rule.mailbox)}"
    return False, f"mailbox {mailbox} not in {_listing(rule.mailbox)}"


def _to_address(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    assert rule.to_address is not None
    for address in ticket.to_addresses:
        pattern = address_matches(address, rule.to_address)
        if pattern is not None:
            return True, f"to address {address.lower()} matches {pattern}"
    addresses = ", ".join(ticket.to_addresses) or "(none)"
    return False, f"to addresses {addresses} match none of {_listing(rule.to_address)}"


def _signal(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    assert rule.signal is not None
    found = [name for name in ticket.signals if name in rule.signal]
    if found:
        return True, f"signal {found[0]} in {_listing(rule.signal)}"
    return False, f"no signal in {_listing(rule.signal)}"


def _regex(what: str, pattern: re.Pattern[str] | None, value: str) -> tuple[bool, str]:
    assert pattern is not None
    match = pattern.search(value)
    if match:
        return True, f"{what} matches /{pattern.pattern}/ at {_snippet(match[0])!r}"
    return False, f"{what} does not match /{pattern.pattern}/"


def _subject_regex(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    return _regex("subject", rule.subject_regex, ticket.subject)


def _text_regex(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    return _regex("text", rule.text_regex, ticket.text)


def _unclassified(rule: RuleConfig, ticket: TicketFacts, _: RoutingConfig) -> tuple[bool, str]:
    described = (
        "ticket is unclassified"
        if ticket.is_unclassified
        else f"ticket is classified ({ticket.category})"
    )
    return ticket.is_unclassified == rule.unclassified, described


# Cheap checks first, regexes last: the first failure is all why_not reports.
_CHECKS: tuple[tuple[str, Check], ...] = (
    ("unclassified", _unclassified),
    ("category", _category),
    ("min_severity", _min_severity),
    ("language", _language),
    ("mailbox", _mailbox),
    ("vip", _vip),
    ("sender", _sender),
    ("to_address", _to_address),
    ("signal", _signal),
    ("subject_regex", _subject_regex),
    ("text_regex", _text_regex),
)


def _evaluate(
    rule: RuleConfig, ticket: TicketFacts, config: RoutingConfig
) -> tuple[bool, tuple[str, ...]]:
    """(matched, reasons) — on failure the only reason is the first failed condition."""
    reasons: list[str] = []
    for key, check in _CHECKS:
        if getattr(rule, key) is None:
            continue
        holds, explanation = check(rule, ticket, config)
        if not holds:
            return False, (explanation,)
        reasons.append(explanation)
    return True, tuple(reasons) or ("default rule (no conditions)",)


def choose_sla_policy(
    ticket: TicketFacts, config: RoutingConfig, forced: str | None = None
) -> tuple[SlaPolicy, str]:
    """The SLA policy for ``ticket`` and why it was chosen.

    ``forced`` (a rule's ``sla_policy``) wins. Otherwise the most specific
    policy for the ticket's severity wins: one matching the customer beats one
    matching the category, which beats one by severity alone; ties go to the
    policy listed first. Configuration validation guarantees a match.
    """
    if forced is not None:
        return config.sla_policy(forced), f"SLA policy {forced} set by the rule"
    severity = ticket.effective_severity
    category = None if ticket.is_unclassified else ticket.category
    best: tuple[int, int, SlaPolicy] | None = None
    for index, policy in enumerate(config.sla_policies):
        if severity not in policy.severity:
            continue
        score = policy.specificity(category=category, sender=ticket.sender)
        if score is not None and (best is None or (score, -index) > (best[0], -best[1])):
            best = (score, index, policy)
    if best is None:  # pragma: no cover - RoutingConfig validation rules this out
        raise LookupError(f"no SLA policy for severity {severity}")
    policy = best[2]
    detail = {0: "severity", 1: "category", 2: "customer", 3: "customer and category"}[best[0]]
    return policy, f"SLA policy {policy.name} by {detail} ({severity})"


def route(
    ticket: TicketFacts,
    config: RoutingConfig,
    load: Mapping[str, int],
    rr_state: Mapping[str, int],
) -> RoutingDecision:
    """Route ``ticket``: the first rule whose conditions all hold decides.

    ``load`` is the number of open tickets per agent address (least-loaded
    assignment and ``max_open``); ``rr_state`` the round-robin position per
    team, returned updated in the decision. Unclassified tickets at tiers 1-2
    go to the triage team unless the rule names a team.
    """
    why_not: list[tuple[str, str]] = []
    for index, rule in enumerate(config.rules):
        matched, reasons = _evaluate(rule, ticket, config)
        if matched:
            return _decide(ticket, config, index, rule, reasons, tuple(why_not), load, rr_state)
        why_not.append((config.rule_label(index), reasons[0]))
    raise AssertionError("unreachable: the last rule has no conditions")  # pragma: no cover


def _decide(
    ticket: TicketFacts,
    config: RoutingConfig,
    index: int,
    rule: RuleConfig,
    matched: tuple[str, ...],
    why_not: tuple[tuple[str, str], ...],
    load: Mapping[str, int],
    rr_state: Mapping[str, int],
) -> RoutingDecision:
    reasons = list(matched)
    if rule.team is not None:
        team_name = rule.team
        reasons.append(f"team {team_name} set by the rule")
    elif ticket.is_unclassified and rule.tier <= 2:
        # Tiers 1 and 2 depend on knowing what the complaint is about; triage finds out.
        team_name = config.tiers.triage
        reasons.append(f"unclassified: triage team {team_name}")
    else:
        team_name = config.tiers.team_for_tier(rule.tier, ticket.category)
        owner = {1: "frontline", 2: f"specialists for {ticket.category}", 3: "supervisors",
                 4: "resolution lead"}[rule.tier]  # fmt: skip
        reasons.append(f"tier {rule.tier} ({owner}): team {team_name}")
    team = config.team(team_name)
    assignment = assign(team, rule.assignment, load, rr_state)
    reasons.append(assignment.reason)
    policy, sla_reason = choose_sla_policy(ticket, config, rule.sla_policy)
    reasons.append(sla_reason)
    return RoutingDecision(
        rule=config.rule_label(index),
        rule_index=index,
        reasons=tuple(reasons),
        why_not=why_not,
        tier=rule.tier,
        team=team.name,
        calendar=team.calendar,
        assignee=assignment.assignee,
        notify=assignment.notify,
        sla=policy,
        acknowledge=rule.acknowledge,
        ack_template=rule.ack_template,
        tags=rule.tags,
        rr_state=assignment.rr_state,
    )
