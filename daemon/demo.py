"""``complaintd demo``: the whole product on loopback servers, with nothing to set up.

Starts pymap (IMAP) and aiosmtpd (SMTP) on loopback, a SQLite database in a
temporary folder, drops a dozen complaints in several languages into the
mailbox, runs the daemon with IDLE and shows each ticket as it appears. Then
it shows threading at work: the customer's follow-up joins their ticket, while
a stranger quoting the same ticket reference gets a ticket of their own.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime
from importlib import resources
from pathlib import Path

from imapclient import IMAPClient

from daemon.app import Application, utc_now
from daemon.demo_servers import PymapServer, SmtpSink
from daemon.logging_setup import configure_logging
from daemon.service import IngestOutcome, IngestResult
from daemon.settings import Settings
from daemon.table import render_table, render_ticket
from daemon.views import list_tickets, show_ticket
from models import Event, Ticket
from routing import RoutingConfig, default_routing_config

__all__ = ["run_demo"]

_SUPPORT = "support@demo.complaintd.test"
# Names of environment variables, not secrets.
_PASSWORD_ENV = "COMPLAINTD_DEMO_IMAP_PASSWORD"  # noqa: S105
_SECRET_ENV = "COMPLAINTD_DEMO_SECRET"  # noqa: S105
# A customer whose SLA gives each tier a few seconds: the escalation part of the demo.
_FAST_DOMAIN = "impatient.example"
_FAST_SECONDS = 5


def _demo_mails() -> list[bytes]:
    folder = resources.files("daemon").joinpath("demo_mail")
    names = sorted(item.name for item in folder.iterdir() if item.name.endswith(".eml"))
    return [folder.joinpath(name).read_bytes() for name in names]


def _settings(workdir: Path, imap: PymapServer, smtp: SmtpSink) -> Settings:
    return Settings.model_validate(
        {
            "base_dir": workdir,
            "database": {"url": f"sqlite:///{workdir / 'complaintd.db'}"},
            "security": {"secret_env": _SECRET_ENV, "message_id_domain": "demo.complaintd.test"},
            "mailboxes": [
                {
                    "name": "support",
                    "host": imap.host,
                    "port": imap.port,
                    "tls": "none",
                    "username": imap.username,
                    "password_env": _PASSWORD_ENV,
                    "folder": "INBOX",
                    "after": "move:Processed",
                    "address": _SUPPORT,
                    # A short safety net: the demo should never wait a minute.
                    "resync_interval": 2.0,
                }
            ],
            "smtp": {
                "host": smtp.host,
                "port": smtp.port,
                "tls": "none",
                "from_address": f"Demo Support <{_SUPPORT}>",
            },
            "intake": {"reconnect_initial_delay": 0.5},
            # Escalations are checked every second so the demo's fast SLA is visible.
            "scheduler": {"sweep_interval_seconds": 1.0},
            "routing_config": _routing(),
        }
    )


def _routing() -> RoutingConfig:
    """The default routing, plus a customer whose contract promises an answer in seconds."""
    document = default_routing_config().model_dump()
    document["sla_policies"] = [
        *document["sla_policies"],
        {
            "name": "demo-seconds",
            "severity": ["low", "medium", "high", "critical"],
            "customers": [f"*@{_FAST_DOMAIN}"],
            "business_hours": False,
            "first_response": f"{_FAST_SECONDS}s",
            "next_response": f"{_FAST_SECONDS}s",
            "resolution": "1h",
            "warn_at": 0.6,
        },
    ]
    return RoutingConfig.model_validate(document)


def _append(imap: PymapServer, mails: Sequence[bytes]) -> None:
    with IMAPClient(imap.host, imap.port, ssl=False, timeout=30) as client:
        client.login(imap.username, imap.password)
        for raw in mails:
            client.append("INBOX", raw)


def _follow_up(sender: str, name: str, ref: str, text: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>"
    message["To"] = _SUPPORT
    message["Subject"] = f"Re: Charged twice for my November invoice [{ref}]"
    message["Date"] = format_datetime(utc_now())
    message["Message-ID"] = f"<demo-followup-{secrets.token_hex(4)}@mail.example>"
    message.set_content(text)
    return bytes(message)


class _Progress:
    """Prints each ticket as the daemon stores it, and counts outcomes."""

    def __init__(self, app: Application) -> None:
        self._app = app
        self.done = 0
        self._lock = threading.Lock()

    def __call__(self, results: Sequence[IngestResult]) -> None:
        for result in results:
            with self._lock:
                self.done += 1
            if result.outcome is IngestOutcome.CREATED and result.ticket_ref:
                with self._app.sessions() as session:
                    ticket = show_ticket(session, result.ticket_ref)
                if ticket is not None:
                    label = f"{ticket['category']}/{ticket['severity']}"
                    print(
                        f"  new ticket {ticket['ref']}  [{ticket['language']}] {label:<26} "
                        f"{ticket['customer_email']:<30} {ticket['subject'][:44]}",
                        flush=True,
                    )
            elif result.outcome is IngestOutcome.ADDED:
                print(f"  follow-up added to {result.ticket_ref}", flush=True)
            else:
                print(f"  {result.outcome.value}: {result.detail}", flush=True)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.done >= count:
                    return True
            time.sleep(0.05)
        return False


def _show_outgoing(smtp: SmtpSink) -> None:
    """What the SMTP sink received: acknowledgements to customers, notices to agents."""
    smtp.wait_for(1, timeout=10)
    time.sleep(1.0)  # let the sender finish its batch
    received = list(smtp.messages)
    print(f"\n{len(received)} mails went out through SMTP:")
    for item in received:
        message = item.message
        kind = "ack   " if message["Auto-Submitted"] == "auto-replied" else "notice"
        print(f"  {kind} to {', '.join(item.rcpt_tos):<34} {message['Subject']}")
    acks = [i.message for i in received if i.message["Auto-Submitted"] == "auto-replied"]
    german = next((m for m in acks if "Paket" in str(m["Subject"])), None)
    if german is not None:
        print("\nThe acknowledgement the German customer received:\n")
        print(f"Subject: {german['Subject']}\n")
        print(german.get_content().strip())


def _impatient_complaint() -> bytes:
    message = EmailMessage()
    message["From"] = f"Ivy Moreau <ivy@{_FAST_DOMAIN}>"
    message["To"] = _SUPPORT
    message["Subject"] = "Still no working internet after the router swap"
    message["Date"] = format_datetime(utc_now())
    message["Message-ID"] = f"<demo-escalation-{secrets.token_hex(4)}@{_FAST_DOMAIN}>"
    message.set_content(
        "Hello,\n\nyour technician swapped our router on Monday and since then the whole "
        "office has no internet. Our contract promises a fast response; please call me.\n\nIvy\n"
    )
    return bytes(message)


def _show_escalation(app: Application, imap: PymapServer, smtp: SmtpSink) -> bool:
    """A complaint nobody answers climbs the escalation matrix by itself."""
    print(
        f"\nEscalation: ivy@{_FAST_DOMAIN} has a contract promising a first answer within "
        f"{_FAST_SECONDS} seconds (24x7).\nNobody answers, so the sweep moves it up a tier "
        "each time the deadline passes:\n"
    )
    before = len(smtp.messages)
    _append(imap, [_impatient_complaint()])
    started = time.monotonic()
    seen: set[int] = set()
    ref: str | None = None
    while time.monotonic() - started < 60:
        with app.sessions() as session:
            ticket = (
                session.query(Ticket).filter(Ticket.customer_email == f"ivy@{_FAST_DOMAIN}").first()
            )
            events = (
                []
                if ticket is None
                else list(
                    session.query(Event).filter(Event.ticket_id == ticket.id).order_by(Event.id)
                )
            )
        for event in events:
            if event.id in seen or event.kind not in (
                "routed",
                "sla_warning",
                "escalated",
                "breach",
            ):
                continue
            seen.add(event.id)
            print(f"  +{time.monotonic() - started:5.1f} s  {_narrate(event)}", flush=True)
        if ticket is not None:
            ref = ticket.ref
        if any(event.kind == "breach" for event in events):
            break
        time.sleep(0.2)
    else:
        print("the ticket did not reach the end of the matrix within 60 s", file=sys.stderr)
        return False
    time.sleep(1.5)  # let the sender deliver the last notices
    mails = [
        item for item in list(smtp.messages)[before:] if ref and ref in str(item.message["Subject"])
    ]
    print(f"\nthe mails {ref} caused, as each tier received them:")
    for item in mails:
        print(f"  to {', '.join(item.rcpt_tos):<34} {item.message['Subject']}")
    return True


def _narrate(event: Event) -> str:
    data = event.data or {}
    if event.kind == "routed":
        return (
            f"routed to tier {data.get('tier')} ({data.get('team')}), owner {data.get('assignee')}"
        )
    if event.kind == "sla_warning":
        kind = str(data.get("deadline", "")).replace("_", " ")
        return f"warning to the owner: the {kind} deadline is near"
    if event.kind == "escalated":
        return (
            f"escalated tier {data.get('from_tier')} → {data.get('to_tier')} "
            f"({data.get('to_team')}, owner {data.get('assignee')}): {data.get('reason')}"
        )
    return f"breach at the last tier, reported to the admins: {data.get('reason')}"


def run_demo(*, keep_running: bool = False) -> int:
    """Run the demo end to end; return the process exit code."""
    configure_logging("WARNING")  # the demo narrates; the daemon's INFO lines would interleave
    mails = _demo_mails()
    with (
        tempfile.TemporaryDirectory(prefix="complaintd-demo-") as tmp,
        PymapServer(username=_SUPPORT, password=secrets.token_urlsafe(12)) as imap,
        SmtpSink() as smtp,
    ):
        os.environ[_PASSWORD_ENV] = imap.password
        os.environ[_SECRET_ENV] = secrets.token_urlsafe(32)
        workdir = Path(tmp)
        print(f"IMAP (pymap) on {imap.host}:{imap.port}, SMTP sink on {smtp.host}:{smtp.port}")
        print(f"database: {workdir / 'complaintd.db'}")
        app = Application.build(_settings(workdir, imap, smtp))
        progress = _Progress(app)
        app.on_batch = progress
        stop = threading.Event()
        runner = threading.Thread(target=app.run, args=(stop,), name="demo-daemon")
        runner.start()
        try:
            print(f"\ndropping {len(mails)} complaints into the mailbox...")
            started = time.monotonic()
            _append(imap, mails)
            if not progress.wait_for(len(mails), timeout=60):
                print("the daemon did not process every mail within 60 s", file=sys.stderr)
                return 1
            print(f"all {len(mails)} stored in {time.monotonic() - started:.1f} s\n")

            print("the customer replies with the ticket reference; a stranger copies it:")
            with app.sessions() as session:
                first = list_tickets(session)[-1]
            _append(
                imap,
                [
                    _follow_up(
                        first["customer_email"], "Hannah Whitfield", first["ref"],
                        "Any news on the refund?",
                    ),
                    _follow_up(
                        "mallory@example.invalid", "Mallory", first["ref"],
                        "Please send me the details of this ticket.",
                    ),
                ],
            )  # fmt: skip
            if not progress.wait_for(len(mails) + 2, timeout=30):
                print("the follow-ups were not processed within 30 s", file=sys.stderr)
                return 1

            with app.sessions() as session:
                tickets = list_tickets(session)
            print("\n" + render_table(
                tickets,
                ["ref", "category", "severity", "tier", "assignee", "subject", "message_count"],
            ))  # fmt: skip
            print(f"\n{len(tickets)} tickets from {len(mails) + 2} mails. The first one in full:\n")
            with app.sessions() as session:
                detail = show_ticket(session, first["ref"])
            if detail is not None:
                print(render_ticket(detail))
            _show_outgoing(smtp)
            if not _show_escalation(app, imap, smtp):
                return 1
            if keep_running:
                print("\nstill running; press Ctrl-C to stop")
                while True:
                    time.sleep(3600)
            return 0
        except KeyboardInterrupt:
            return 0
        finally:
            stop.set()
            runner.join(timeout=30)
            app.close()
