"""The ``complaintd`` command line: thin handlers over the application and views."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from daemon.errors import ComplaintdError, ConfigError
from daemon.settings import CONFIG_ENV, Settings, load_settings

__all__ = ["main"]

Handler = Callable[[argparse.Namespace, Settings], int]


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        return Path(args.config)
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else None


# -- handlers ---------------------------------------------------------------


def _cmd_init(args: argparse.Namespace, _settings: Settings) -> int:
    target = Path(args.path)
    if target.exists() and not args.force:
        print(f"{target} exists; use --force to overwrite", file=sys.stderr)
        return 1
    from routing import example_routing_toml

    example = resources.files("daemon").joinpath("example_config.toml").read_text("utf-8")
    target.write_text(example + "\n" + example_routing_toml(), encoding="utf-8")
    print(f"wrote {target}; edit it, then run: complaintd --config {target} check-config")
    return 0


def _cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.config_check import secret_problems

    problems = secret_problems(settings)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"configuration OK: {len(settings.mailboxes)} mailbox(es)")
    return 0


def _cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    from models import create_database_engine, upgrade_schema

    engine = create_database_engine(settings.database_url())
    upgrade_schema(engine)
    engine.dispose()
    print("database schema is up to date")
    return 0


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.app import Application

    if not settings.mailboxes:
        raise ConfigError(["mailboxes: no mailbox configured; nothing to read"])
    app = Application.build(settings)
    try:
        app.check_mailbox_secrets()
        if args.once:
            reports = app.run_once()
            for name, report in reports.items():
                print(f"{name}: stored {report.stored}, moved/flagged {report.acknowledged}")
            return 0
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        app.run(stop)
        return 0
    finally:
        app.close()


def _cmd_demo(args: argparse.Namespace, _settings: Settings) -> int:
    from daemon.demo import run_demo

    return run_demo(keep_running=args.keep_running)


def _cmd_parse(args: argparse.Namespace, _settings: Settings) -> int:
    from daemon.parsing import parse_message

    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    parsed = parse_message(raw)
    result = {
        "message_id": parsed.message_id,
        "from_email": parsed.from_addr.email if parsed.from_addr else None,
        "from_name": parsed.from_addr.name if parsed.from_addr else None,
        "to": [address.email for address in parsed.to],
        "cc": [address.email for address in parsed.cc],
        "subject": parsed.subject,
        "date": parsed.date.isoformat() if parsed.date else None,
        "text": parsed.text,
        "full_text": parsed.full_text,
        "language": None,
        "attachments": [
            {
                "filename": item.filename,
                "content_type": item.content_type,
                "size": item.size,
                "sha256": item.sha256,
            }
            for item in parsed.attachments
        ],
        "auto_submitted": parsed.auto_submitted,
        "is_bounce": parsed.is_bounce,
    }
    if args.json:
        _print_json(result)
    else:
        print(f"From:    {result['from_name']} <{result['from_email']}>")
        print(f"Subject: {result['subject']}")
        print(f"Date:    {result['date']}")
        print()
        print(parsed.text)
    return 0


def _open_sessions(settings: Settings) -> Any:
    from models import create_database_engine, session_factory, upgrade_schema

    engine = create_database_engine(settings.database_url())
    upgrade_schema(engine)
    return session_factory(engine)


def _cmd_tickets_list(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.views import list_tickets

    with _open_sessions(settings)() as session:
        overdue_at = None
        if args.overdue:
            from daemon.app import utc_now

            overdue_at = utc_now()
        tickets = list_tickets(
            session,
            status=args.status,
            limit=args.limit,
            tier=args.tier,
            team=args.team,
            overdue_at=overdue_at,
        )
    if args.json:
        _print_json(tickets)
        return 0
    from daemon.table import render_table

    print(
        render_table(
            tickets,
            [
                "ref",
                "status",
                "tier",
                "team",
                "customer_email",
                "subject",
                "severity",
                "next_deadline",
            ],
        )
    )
    return 0


def _cmd_tickets_show(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.views import show_ticket

    with _open_sessions(settings)() as session:
        ticket = show_ticket(session, args.ref)
    if ticket is None:
        print(f"no ticket {args.ref}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(ticket)
        return 0
    from daemon.table import render_ticket

    print(render_ticket(ticket))
    return 0


def _cmd_quarantine_list(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.views import list_quarantine

    with _open_sessions(settings)() as session:
        entries = list_quarantine(session, include_resolved=args.all)
    if args.json:
        _print_json(entries)
        return 0
    from daemon.table import render_table

    print(render_table(entries, ["id", "kind", "from_email", "subject", "reason", "created_at"]))
    return 0


def _cmd_quarantine_retry(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.app import Application

    app = Application.build(settings)
    try:
        result = app.service.retry_quarantined(args.id)
    except LookupError as exc:
        print(str(exc).strip("'\""), file=sys.stderr)
        return 1
    finally:
        app.close()
    print(f"{result.outcome.value}: {result.ticket_ref or result.detail}")
    return 0 if result.ticket_ref else 1


# -- parser -----------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="complaintd", description="Email-driven complaint intake and triage daemon."
    )
    parser.add_argument(
        "--config", metavar="PATH", help=f"the TOML configuration (default: ${CONFIG_ENV})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str, parent: Any = commands) -> Any:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    init = add("init", _cmd_init, "write a commented example configuration")
    init.add_argument("--path", default="complaintd.toml", help="where to write it")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    add("check-config", _cmd_check_config, "report every problem in the configuration")

    db = commands.add_parser("db", help="database maintenance").add_subparsers(
        dest="db_command", required=True, metavar="COMMAND"
    )
    add("upgrade", _cmd_db_upgrade, "migrate the database schema to the latest version", db)

    run = add("run", _cmd_run, "run the daemon until SIGTERM/SIGINT")
    run.add_argument("--once", action="store_true", help="process what is waiting, then exit")

    demo = add("demo", _cmd_demo, "run a self-contained demo on loopback servers")
    demo.add_argument("--keep-running", action="store_true", help="keep serving after the demo")

    parse = add("parse", _cmd_parse, "parse one mail file and show what intake sees")
    parse.add_argument("file", help="an .eml file, or - for standard input")
    parse.add_argument("--json", action="store_true", help="print JSON")

    tickets = commands.add_parser("tickets", help="list and show tickets").add_subparsers(
        dest="tickets_command", required=True, metavar="COMMAND"
    )
    tickets_list = add("list", _cmd_tickets_list, "list tickets, newest first", tickets)
    tickets_list.add_argument("--status", help="only tickets with this status")
    tickets_list.add_argument("--limit", type=int, help="at most this many")
    tickets_list.add_argument("--tier", type=int, choices=(1, 2, 3, 4), help="only this tier")
    tickets_list.add_argument("--team", help="only tickets owned by this team")
    tickets_list.add_argument(
        "--overdue", action="store_true", help="only tickets with a deadline already passed"
    )
    tickets_list.add_argument("--json", action="store_true", help="print JSON")
    tickets_show = add("show", _cmd_tickets_show, "show one ticket with its history", tickets)
    tickets_show.add_argument("ref", help="the ticket reference, e.g. CMP-000123")
    tickets_show.add_argument("--json", action="store_true", help="print JSON")

    quarantine = commands.add_parser(
        "quarantine", help="mail that did not become part of a ticket"
    ).add_subparsers(dest="quarantine_command", required=True, metavar="COMMAND")
    q_list = add("list", _cmd_quarantine_list, "list quarantined and rejected mail", quarantine)
    q_list.add_argument("--all", action="store_true", help="include resolved entries")
    q_list.add_argument("--json", action="store_true", help="print JSON")
    q_retry = add("retry", _cmd_quarantine_retry, "run a quarantined mail again", quarantine)
    q_retry.add_argument("id", type=int, help="the quarantine entry id")

    from daemon.classifier_cli import register_classifier_commands

    register_classifier_commands(commands, tickets, add)

    from daemon.routing_cli import register_routing_commands

    register_routing_commands(commands, add)

    from daemon.sla_cli import register_sla_commands

    register_sla_commands(commands, tickets, add)
    return parser


_NEEDS_NO_CONFIG = {"init", "demo", "parse"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``complaintd`` console script."""
    args = _build_parser().parse_args(argv)
    from daemon.logging_setup import configure_logging

    try:
        if args.command in _NEEDS_NO_CONFIG:
            settings = Settings()
        else:
            settings = load_settings(_config_path(args))
        configure_logging(settings.logging.level)
        handler: Handler = args.handler
        return handler(args, settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except ComplaintdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `complaintd ... --json | head`: the reader left; say nothing more. Python
        # would flush stdout again at exit and complain, so point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
