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

from daemon.classification import ModelHolder
from daemon.parsing import parse_message
from daemon.settings import Settings
from daemon.triage import facts_for
from models import create_database_engine, session_factory, upgrade_schema
from routing import route

__all__ = ["register_routing_commands"]


def _classify(settings: Settings, subject: str, text: str) -> dict[str, Any]:
    """The active model's prediction (read-only use of the database); empty without a model."""
    engine = create_database_engine(settings.database_url())
    try:
        upgrade_schema(engine)
        holder = ModelHolder(
            session_factory(engine),
            abstain_below=settings.classifier.abstain_below,
            reload_interval=settings.classifier.reload_interval,
        )
        holder.refresh(force=True)
        predictions = holder.classify([(subject, text)])
    finally:
        engine.dispose()
    if not predictions:
        return {}
    prediction = predictions[0]
    return {
        "category": prediction.category,
        "category_confidence": prediction.category_confidence,
        "severity": prediction.severity,
        "severity_confidence": prediction.severity_confidence,
        "language": prediction.language,
        "signals": list(prediction.signals),
        "model_version": prediction.model_version,
    }


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
