"""Wiring: settings in, a ready database, service and mailbox workers out."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from daemon.classification import ModelHolder
from daemon.errors import ConfigError
from daemon.escalation import Escalator
from daemon.intake import MailboxWorker, SyncReport
from daemon.lifecycle import TicketLifecycle
from daemon.mailbox_lease import MailboxLease, run_with_lease
from daemon.mailbox_store import MailboxStore
from daemon.model_registry import ensure_active_model
from daemon.outbox import OutboxConfig
from daemon.scheduler import DaemonScheduler
from daemon.sender_process import SenderProcess
from daemon.service import IngestResult, IntakeService, ServiceConfig
from daemon.settings import MailboxSettings, Settings, resolve_secret
from daemon.smtp_sender import OutboxSender
from daemon.sweep import EscalationSweep
from daemon.ticket_sla import SlaBook
from daemon.triage import Triage
from models import create_database_engine, session_factory, upgrade_schema

__all__ = ["Application", "utc_now"]

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The wall clock, timezone-aware; the only clock the shell passes inward."""
    return datetime.now(UTC)


def _loop_value(settings: Settings) -> str:
    # Our X-Loop header value: recognisable when our own mail comes back.
    return f"complaintd@{settings.security.message_id_domain}".lower()


@dataclass
class Application:
    """Everything the daemon runs, built once from :class:`Settings`."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    service: IntakeService
    classifier: ModelHolder
    clock: Callable[[], datetime]
    lifecycle: TicketLifecycle | None = None
    sweep: EscalationSweep | None = None
    outbox_wake: threading.Event = field(default_factory=threading.Event)
    on_batch: Callable[[Sequence[IngestResult]], None] | None = None
    _secrets: dict[str, SecretStr] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        upgrade: bool = True,
        progress: bool = True,
        load_model: bool = True,
    ) -> Application:
        """Connect the database (migrating it unless told not to) and resolve secrets.

        ``load_model=False`` skips training and loading the classifier, for
        commands that only act on stored tickets.
        """
        secret = resolve_secret(
            "security.secret",
            env=settings.security.secret_env if settings.security.secret_file is None else None,
            file=settings.security.secret_file,
            base_dir=settings.base_dir,
        )
        engine = create_database_engine(settings.database_url(), echo=settings.database.echo)
        if upgrade:
            upgrade_schema(engine)
        sessions = session_factory(engine)
        holder = ModelHolder(
            sessions,
            abstain_below=settings.classifier.abstain_below,
            reload_interval=settings.classifier.reload_interval,
        )
        if load_model:
            if settings.classifier.train_on_first_run:
                ensure_active_model(sessions, settings, progress=progress)
            holder.refresh(force=True)
        secret_bytes = secret.get_secret_value().encode()
        domain = settings.security.message_id_domain
        outbox = OutboxConfig.from_settings(
            settings.outbox,
            secret=secret_bytes,
            domain=domain,
            loop_value=_loop_value(settings),
            from_address=settings.smtp.from_address if settings.smtp else f"support@{domain}",
            own_addresses=settings.own_addresses,
        )
        folder = settings.routing.templates.folder
        triage = Triage(
            settings.routing,
            outbox,
            template_folder=settings.resolve_path(Path(folder)) if folder else None,
        )
        wake = threading.Event()
        config = ServiceConfig(
            secret=secret_bytes,
            own_addresses=settings.own_addresses,
            loop_value=_loop_value(settings),
            ticket_prefix=settings.security.ticket_prefix,
            max_message_bytes=settings.intake.max_message_bytes,
        )
        escalator = Escalator(
            settings.routing,
            outbox,
            SlaBook(settings.routing),
            template_folder=triage.template_folder,
        )
        lifecycle = TicketLifecycle(escalator)
        sweep = EscalationSweep(
            sessions, escalator, clock, batch_size=settings.scheduler.sweep_batch_size
        )
        service = IntakeService(
            sessions,
            config,
            clock,
            classify=holder.classify,
            triage=triage,
            on_queued=wake.set,
            lifecycle=lifecycle,
        )
        return cls(
            settings,
            engine,
            sessions,
            service,
            holder,
            clock,
            lifecycle=lifecycle,
            sweep=sweep,
            outbox_wake=wake,
        )

    def mailbox_secret(self, mailbox: MailboxSettings) -> Callable[[], SecretStr]:
        """A callable giving the mailbox's password (cached) or a fresh OAuth2 token."""

        def secret() -> SecretStr:
            if mailbox.oauth2_token_command is not None:
                return resolve_secret(
                    f"mailboxes.{mailbox.name}.oauth2_token_command",
                    env=None,
                    file=None,
                    command=mailbox.oauth2_token_command,
                )
            if mailbox.name not in self._secrets:
                self._secrets[mailbox.name] = resolve_secret(
                    f"mailboxes.{mailbox.name}.password",
                    env=mailbox.password_env,
                    file=mailbox.password_file,
                    base_dir=self.settings.base_dir,
                )
            return self._secrets[mailbox.name]

        return secret

    def check_mailbox_secrets(self) -> None:
        """Resolve every static mailbox password now, so a missing one fails at start."""
        problems: list[str] = []
        for mailbox in self.settings.mailboxes:
            if mailbox.oauth2_token_command is None:
                try:
                    self.mailbox_secret(mailbox)()
                except ConfigError as exc:
                    problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)

    def workers(self) -> list[MailboxWorker]:
        """One worker per configured mailbox."""
        store = MailboxStore(self.sessions, self.clock)
        return [
            MailboxWorker(
                mailbox,
                self.settings.intake,
                self.service,
                store,
                self.mailbox_secret(mailbox),
                resolve_path=lambda path: str(self.settings.resolve_path(Path(path))),
                on_batch=self.on_batch,
            )
            for mailbox in self.settings.mailboxes
        ]

    def sender(self) -> OutboxSender | None:
        """The outbox sender, or None when no ``[smtp]`` is configured."""
        smtp = self.settings.smtp
        if smtp is None:
            return None
        password = None
        if smtp.password_env or smtp.password_file:
            password = resolve_secret(
                "smtp.password",
                env=smtp.password_env,
                file=smtp.password_file,
                base_dir=self.settings.base_dir,
            )
        return OutboxSender.from_settings(
            self.sessions, smtp, password, self.clock, self.settings.outbox
        )

    def run_once(self) -> dict[str, SyncReport]:
        """Process what is waiting in every mailbox once, send what is due, then return."""
        reports: dict[str, SyncReport] = {}
        for worker in self.workers():
            reports[worker.mailbox.name] = worker.run_once()
        if self.sweep is not None:
            self.sweep.run()
        sender = self.sender()
        if sender is not None:
            asyncio.run(_send_once(sender, self.clock()))
        return reports

    def run(self, stop: threading.Event) -> None:
        """Run every mailbox worker in its own thread, and the scheduler, until ``stop`` is set.

        Each worker reads its mailbox only while it holds the mailbox's lease
        (on PostgreSQL one instance at a time; see :mod:`daemon.mailbox_lease`).
        """
        retry = self.settings.scheduler.mailbox_lock_retry_seconds
        threads = [
            threading.Thread(
                target=run_with_lease,
                args=(worker, MailboxLease(self.engine, worker.mailbox.name), stop, retry),
                name=f"imap-{worker.mailbox.name}",
            )
            for worker in self.workers()
        ]
        scheduler = self.scheduler()
        sending = self._sender_process()
        sender = self.sender() if sending is None else None
        if sender is not None:
            threads.append(
                threading.Thread(
                    target=sender.run_forever, args=(stop, self.outbox_wake), name="smtp-outbox"
                )
            )
        if sending is not None:
            sending.start()
        for thread in threads:
            thread.start()
        if scheduler is not None:
            scheduler.start()
        logger.info("complaintd running with %d mailbox(es)", len(self.settings.mailboxes))
        try:
            stop.wait()
        finally:
            if scheduler is not None:
                scheduler.shutdown()
            self.outbox_wake.set()
            for thread in threads:
                thread.join(timeout=30)
            if sending is not None:
                sending.stop()
        logger.info("complaintd stopped")

    def _sender_process(self) -> SenderProcess | None:
        """The outbox sender as a child process, unless configured off or there is no SMTP.

        A clock other than the wall clock (tests) cannot cross into another
        process: then the sender runs as a thread.
        """
        if self.settings.smtp is None or not self.settings.outbox.sender_process:
            return None
        if self.clock is not utc_now:
            return None
        return SenderProcess(self.settings, self.outbox_wake)

    def scheduler(self) -> DaemonScheduler | None:
        """The timed jobs (escalation sweep, outbox retries, housekeeping)."""
        if self.sweep is None or self.lifecycle is None:
            return None
        return DaemonScheduler(
            self.sessions,
            self.sweep,
            self.lifecycle,
            self.settings.scheduler,
            self.clock,
            outbox_wake=self.outbox_wake if self.settings.smtp is not None else None,
        )

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()


async def _send_once(sender: OutboxSender, now: datetime) -> None:
    try:
        report = await sender.send_due(now)
        logger.info(
            "outbox: sent %d, retrying %d, failed %d", report.sent, report.retried, report.failed
        )
    finally:
        await sender.aclose()
