"""``complaintd routing explain``: why a mail would be routed where it goes.

Runs parse → classify → route on one mail without storing or sending
anything, so an admin can check a rule change against real mail.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from daemon.parsing import parse_message
from daemon.settings import Settings
from daemon.triage import facts_for
from routing import route

__all__ = ["register_routing_commands"]


def _classify(settings: Settings, subject: str, text: str) -> dict[str, Any]:
    """The active model's prediction; empty until the classifier is wired in."""
    del settings, subject, text
    return {}


def _cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    parsed = parse_message(raw)
    prediction = _classify(settings, parsed.subject, parsed.text)
    facts = facts_for(
        parsed,
        category=prediction.get("category"),
        category_confidence=prediction.get("category_confidence"),
        severity=prediction.get("severity"),
        severity_confidence=prediction.get("severity_confidence"),
        language=prediction.get("language"),
        signals=prediction.get("signals", ()),
        mailbox=args.mailbox,
    )
    decision = route(facts, settings.routing, {}, {})
    sla = decision.sla
    result = {
        "rule": decision.rule,
        "reasons": list(decision.reasons),
        "tier": decision.tier,
        "team": decision.team,
        "assignee": decision.assignee,
        "sla": {
            "policy": sla.name,
            "business_hours": sla.business_hours,
            "first_response": str(sla.first_response),
            "next_response": str(sla.next_response),
            "resolution": str(sla.resolution),
            "calendar": decision.calendar,
        },
        "acknowledge": decision.acknowledge,
        "why_not": [{"rule": rule, "reason": reason} for rule, reason in decision.why_not],
        "classification": prediction or None,
    }
    if args.json:
        json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(decision.explain())
    return 0


def register_routing_commands(commands: Any, add: Any) -> None:
    """Add ``routing explain`` to the ``complaintd`` parser."""
    routing = commands.add_parser("routing", help="routing rules").add_subparsers(
        dest="routing_command", required=True, metavar="COMMAND"
    )
    explain = add("explain", _cmd_explain, "show how one mail would be routed, and why", routing)
    explain.add_argument("file", help="an .eml file, or - for standard input")
    explain.add_argument("--mailbox", help="pretend it arrived in this mailbox")
    explain.add_argument("--json", action="store_true", help="print JSON")
