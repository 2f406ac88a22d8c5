"""``complaintd sla``, ``escalations`` and the ticket actions: deadlines for admins.

``sla explain REF`` and ``escalations due`` only read; ``tickets resolve``,
``wait``, ``reopen`` and ``escalate`` act on a ticket exactly as an agent's
mail command will (same functions, same events, same mails).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from daemon.settings import Settings

__all__ = ["register_sla_commands"]


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _cmd_sla_explain(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.app import Application
    from daemon.sla_views import explain_sla

    app = Application.build(settings, load_model=False)
    try:
        assert app.lifecycle is not None
        with app.sessions() as session:
            result = explain_sla(session, args.ref, app.lifecycle.book, app.clock())
    finally:
        app.close()
    if result is None:
        print(f"no ticket {args.ref}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(result)
        return 0
    print(f"{result['ref']}: {result['status']}, tier {result['tier']} ({result['team']})")
    if result["policy"]:
        calendar = result["calendar"]
        print(
            f"policy {result['policy']['name']}, counting {calendar['counting']} on "
            f"{calendar['name']} ({calendar['time_zone']})"
            + (", paused" if result["paused"] else "")
        )
    for deadline in result["deadlines"]:
        print(
            f"  {deadline['kind']:<15} {deadline['state']:<8} due {deadline['due'] or '-'}; "
            f"then: {deadline['at_deadline']}"
        )
    if result.get("note"):
        print(result["note"])
    return 0


def _cmd_escalations_due(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.app import Application
    from daemon.sla_views import escalations_due
    from routing import parse_duration

    try:
        within = parse_duration(args.within)
    except ValueError as exc:
        print(f"--within: {exc}", file=sys.stderr)
        return 2
    app = Application.build(settings, load_model=False)
    try:
        assert app.lifecycle is not None
        with app.sessions() as session:
            due = escalations_due(session, app.lifecycle.book, app.clock(), within)
    finally:
        app.close()
    if args.json:
        _print_json(due)
        return 0
    from daemon.table import render_table

    print(render_table(due, ["ref", "at", "deadline", "action", "then", "team", "assignee"]))
    return 0


def _cmd_ticket_action(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from daemon.app import Application
    from models import Ticket

    app = Application.build(settings, load_model=False)
    try:
        lifecycle = app.lifecycle
        assert lifecycle is not None
        now = app.clock()
        with app.sessions.begin() as session:
            ticket = session.scalars(
                select(Ticket).where(Ticket.ref == args.ref.upper()).with_for_update()
            ).first()
            if ticket is None:
                print(f"no ticket {args.ref}", file=sys.stderr)
                return 1
            actor = args.actor
            action = args.ticket_action
            if action == "resolve":
                lifecycle.resolve(session, ticket, now, actor)
            elif action == "wait":
                lifecycle.wait_on_customer(session, ticket, now, actor)
            elif action == "reopen":
                lifecycle.reopen(session, ticket, now, actor)
            else:
                lifecycle.escalate(session, ticket, now, actor, args.reason or "")
            summary = f"{ticket.ref}: {ticket.status}, tier {ticket.tier} ({ticket.team})"
        app.outbox_wake.set()
    finally:
        app.close()
    print(summary)
    return 0


def register_sla_commands(commands: Any, tickets: Any, add: Any) -> None:
    """Add ``sla explain``, ``escalations due`` and the ticket actions to the parser."""
    sla = commands.add_parser("sla", help="SLA deadlines").add_subparsers(
        dest="sla_command", required=True, metavar="COMMAND"
    )
    explain = add("explain", _cmd_sla_explain, "a ticket's deadlines and what happens at each", sla)
    explain.add_argument("ref", help="the ticket reference, e.g. CMP-000123")
    explain.add_argument("--json", action="store_true", help="print JSON")

    escalations = commands.add_parser("escalations", help="escalations").add_subparsers(
        dest="escalations_command", required=True, metavar="COMMAND"
    )
    due = add("due", _cmd_escalations_due, "warnings and escalations coming up", escalations)
    due.add_argument("--within", default="1h", help='how far ahead to look (default "1h")')
    due.add_argument("--json", action="store_true", help="print JSON")

    helps = {
        "resolve": "mark a ticket resolved (its clocks stop)",
        "wait": "the ticket waits on the customer (its clocks pause)",
        "reopen": "reopen a resolved ticket",
        "escalate": "move a ticket up one level of the escalation matrix",
    }
    for name, help_text in helps.items():
        sub = add(name, _cmd_ticket_action, help_text, tickets)
        sub.set_defaults(ticket_action=name)
        sub.add_argument("ref", help="the ticket reference, e.g. CMP-000123")
        sub.add_argument("--as", dest="actor", default="admin", help="who did it, for the history")
        if name == "escalate":
            sub.add_argument("--reason", help="why (goes into the notice and the history)")
