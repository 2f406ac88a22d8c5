"""The outbox sender: claims due rows, sends them over reused SMTP connections, records the result.

Claiming. Rows are claimed in one short transaction: on PostgreSQL with
``SELECT ... FOR UPDATE SKIP LOCKED``, on SQLite inside the ``BEGIN
IMMEDIATE`` transaction the engine opens (one writer at a time), and on both
with ``UPDATE ... WHERE status = 'pending'``, so two daemon instances never
claim the same row. A claimed row is ``sending`` with a lease in
``claimed_until``; a row whose lease ran out (its sender crashed) goes back to
``pending`` at the next claim.

Delivery is at least once. A row is marked ``sent`` only after the server
accepted its DATA; results are written every ~0.1 s. A crash between the
server's acceptance and that write sends the mail again after the lease, with
the same Message-ID, so the duplicate is recognisable as one (mail clients
and archives that de-duplicate by Message-ID show it once).

Failures:

- transient (4xx replies, refused or reset connections, timeouts, TLS or
  authentication failures, which are configuration problems and not the
  mail's fault): back to ``pending`` with exponential backoff (base 5 s,
  factor 2, capped at 10 min, "equal jitter": half the delay fixed, half
  random) and ``attempts + 1``. After ``max_age`` (default 3 days) the row
  fails for good, with a ``mail_failed`` event.
- a 4xx at MAIL FROM, a 421, or a connection that cannot be (re)opened means
  the server takes nothing right now: the rest of the batch is deferred the
  same way without trying each mail.
- permanent (a 5xx reply to MAIL, RCPT or DATA, or a row that cannot become a
  valid message): ``failed`` with the reply, and a ``mail_failed`` event on
  the ticket. Never retried. Except 530, 534 and 538 (authentication or
  encryption required): those say our configuration is wrong, so they are
  transient like a failed login, and the queue waits for the fix.
- per recipient: when the server accepts the mail for some recipients and
  refuses others, the mail is ``sent`` (resending would duplicate it for
  those who got it); the refused recipients and their replies go into
  ``last_error`` and a ``mail_recipients_refused`` event. When every
  recipient is refused the mail is transient if any refusal was 4xx, else
  permanent.

The envelope sender is the From address, not the null reverse-path RFC 3834
suggests for automatic responses: bounces of our mail must reach the support
mailbox, where intake records them on the ticket, and submission servers
refuse ``MAIL FROM:<>`` from authenticated clients. Loops are prevented by
our headers and the flood cap instead.

Logs carry row ids, ticket ids, reply codes and texts: never a password or a
message body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypeVar, cast

import aiosmtplib
from pydantic import SecretStr
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.mail_headers import build_message, envelope_recipients, envelope_sender
from daemon.outbox import OutboxSettings
from daemon.settings import SmtpSettings
from models import Event, OutboxMail, Ticket

__all__ = ["OutboxSender", "SendReport"]

logger = logging.getLogger(__name__)

_FLUSH_INTERVAL = 0.1  # seconds between result writes: bounds the duplicates after a crash
_IDLE_WAIT = 1.0  # longest sleep of run_forever between rounds when nobody wakes it
_IDLE_CLOSE = 30.0  # seconds an unused connection stays open in run_forever
_MAX_ERROR = 1000  # characters of an SMTP reply kept in last_error
# RFC 4954: 530 authentication required, 534 mechanism too weak, 538 encryption required.
_CONFIGURATION_CODES = frozenset({530, 534, 538})
_LOCKED_PATIENCE = 60.0  # seconds a write may keep finding SQLite locked before it fails
_LOCKED_PAUSE = 0.002
_T = TypeVar("_T")


@dataclass
class SendReport:
    """What one :meth:`OutboxSender.send_due` call did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    """Transient failures: back to pending with backoff."""
    failed: int = 0
    """Permanent failures, and mail that was still failing after ``max_age``."""
    released: int = 0
    """Rows whose lease had run out (a crashed sender) returned to pending."""


class _Result(Enum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class _Job:
    """A claimed row; its message is built by the worker that sends it."""

    id: int
    ticket_id: int | None
    attempts: int
    created_at: datetime
    row: OutboxMail


@dataclass(frozen=True, slots=True)
class _Outcome:
    job_id: int
    ticket_id: int | None
    attempts: int
    created_at: datetime
    result: _Result
    error: str | None = None
    refused: dict[str, str] = field(default_factory=dict)
    server_down: bool = False
    """The server takes nothing now: defer the rest of the batch instead of trying it."""


_Claim = tuple[list[_Job], int]
"""Claimed jobs, and the number of expired leases released."""


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    last_used: float
    used: bool = False


class OutboxSender:
    """Sends due outbox rows through one SMTP relay with a few reused connections.

    ``clock`` gives aware datetimes (``sent_at`` and the start of each
    :meth:`run_forever` round); tests pass a fake clock and call
    :meth:`send_due` with any ``now`` to simulate time passing.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        smtp_settings: SmtpSettings,
        password: SecretStr | None,
        clock: Callable[[], datetime],
        *,
        connections: int = 4,
        batch_size: int = 200,
        max_age: timedelta = timedelta(hours=72),
        retry_base: float = 5.0,
        retry_max: float = 600.0,
        lease: timedelta = timedelta(minutes=10),
        timeout: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if connections < 1 or batch_size < 1:
            raise ValueError("connections and batch_size must be at least 1")
        if smtp_settings.username and password is None:
            raise ValueError("smtp.username is set but no password was given")
        self._sessions = sessions
        self._smtp = smtp_settings
        self._password = password
        self._clock = clock
        self._connections = connections
        self._batch_size = batch_size
        self._max_age = max_age
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._lease = lease
        self._timeout = timeout
        self._rng = rng or random.Random()
        self._pool: dict[int, _Connection] = {}
        self._keep_open = False
        self._tls_context: ssl.SSLContext | None = None
        self._local_hostname: str | None = None

    @classmethod
    def from_settings(
        cls,
        sessions: sessionmaker[Session],
        smtp_settings: SmtpSettings,
        password: SecretStr | None,
        clock: Callable[[], datetime],
        settings: OutboxSettings,
    ) -> OutboxSender:
        """A sender configured from ``[smtp]`` and ``[outbox]``."""
        return cls(
            sessions,
            smtp_settings,
            password,
            clock,
            connections=settings.connections,
            batch_size=settings.batch_size,
            max_age=timedelta(hours=settings.max_age_hours),
            retry_base=settings.retry_base_seconds,
            retry_max=settings.retry_max_seconds,
        )

    # ------------------------------------------------------------------ public

    async def send_due(self, now: datetime) -> SendReport:
        """Send every row due at ``now``, batch after batch, and report what happened.

        Connections stay open across the batches of this call and are closed
        at its end (when called from :meth:`run_forever`, they stay open while
        in use and close after being idle for a while).
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        report = SendReport()
        claiming: asyncio.Task[_Claim] | None = asyncio.create_task(
            asyncio.to_thread(self._while_locked, self._claim, now)
        )
        try:
            while claiming is not None:
                jobs, released = await claiming
                claiming = None
                report.released += released
                report.claimed += len(jobs)
                if len(jobs) == self._batch_size:
                    # Claim the next batch while this one is on the wire.
                    claiming = asyncio.create_task(
                        asyncio.to_thread(self._while_locked, self._claim, now)
                    )
                if jobs and await self._send_batch(jobs, now, report):
                    break  # a server that takes nothing now is not asked again in this call
        finally:
            if claiming is not None:
                await self._unclaim(claiming, report)
            if not self._keep_open:
                await self.aclose()
        return report

    def run_forever(self, stop: threading.Event, wake: threading.Event) -> None:
        """Send due mail until ``stop`` is set; meant as a thread's target.

        Sleeps between rounds until ``wake`` is set (intake sets it after
        committing a change that queued mail) or about a second passed, which
        also picks up retries whose backoff ended. Errors are logged and the
        loop goes on with a growing pause, so a database outage does not end it.
        """
        asyncio.run(self._run_forever(stop, wake))

    async def aclose(self) -> None:
        """Close every open SMTP connection (QUIT, or drop it if that fails)."""
        pool, self._pool = self._pool, {}
        for connection in pool.values():
            await _quit(connection.smtp)

    # ------------------------------------------------------------ the run loop

    async def _run_forever(self, stop: threading.Event, wake: threading.Event) -> None:
        self._keep_open = True
        failures = 0
        try:
            while not stop.is_set():
                wake.clear()
                pause = _IDLE_WAIT
                try:
                    report = await self.send_due(self._clock())
                except Exception:
                    failures += 1
                    pause = min(60.0, 2.0**failures)
                    logger.exception("outbox round failed; next try in %.0f s", pause)
                else:
                    failures = 0
                    if report.claimed or report.released:
                        logger.info(
                            "outbox: %d sent, %d to retry, %d failed, %d released",
                            report.sent, report.retried, report.failed, report.released,
                        )  # fmt: skip
                await self._close_idle()
                deadline = time.monotonic() + pause
                while not stop.is_set() and not wake.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    await asyncio.to_thread(wake.wait, min(left, 0.25))
        finally:
            self._keep_open = False
            await self.aclose()

    async def _close_idle(self) -> None:
        now = time.monotonic()
        for slot, connection in list(self._pool.items()):
            if now - connection.last_used > _IDLE_CLOSE:
                del self._pool[slot]
                await _quit(connection.smtp)

    # ---------------------------------------------------------------- claiming

    def _claim(self, now: datetime) -> _Claim:
        """Release expired leases and claim up to ``batch_size`` rows due at ``now``."""
        # Leases run on the clock, not on ``now``: a long round must not claim rows
        # with a lease that has already run out for every other instance.
        current = max(now, self._clock())
        with self._sessions.begin() as session:
            released = len(
                session.scalars(
                    update(OutboxMail)
                    .where(OutboxMail.status == "sending", OutboxMail.claimed_until < current)
                    .values(
                        status="pending",
                        claimed_until=None,
                        last_error="lease expired: the sender stopped while sending",
                    )
                    .returning(OutboxMail.id)
                    .execution_options(synchronize_session=False)
                ).all()
            )
            if released:
                logger.warning("outbox: %d row(s) with an expired lease back to pending", released)
            candidates = session.scalars(
                select(OutboxMail.id)
                .where(OutboxMail.status == "pending", OutboxMail.next_attempt_at <= now)
                .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not candidates:
                return [], released
            claimed_ids = session.scalars(
                update(OutboxMail)
                .where(OutboxMail.id.in_(candidates), OutboxMail.status == "pending")
                .values(status="sending", claimed_until=current + self._lease)
                .returning(OutboxMail.id)
                .execution_options(synchronize_session=False)
            ).all()
            rows = session.scalars(
                select(OutboxMail).where(OutboxMail.id.in_(claimed_ids)).order_by(OutboxMail.id)
            ).all()
            # Detached before the commit, so the commit does not expire what we read.
            session.expunge_all()
        return [_Job(row.id, row.ticket_id, row.attempts, row.created_at, row) for row in rows], (
            released
        )

    async def _unclaim(self, claiming: asyncio.Task[_Claim], report: SendReport) -> None:
        """Give a prefetched batch that will not be sent now back, without counting an attempt."""
        try:
            jobs, released = await claiming
        except Exception:
            logger.exception("outbox: claiming the next batch failed")
            return
        report.released += released
        ids = [job.id for job in jobs]
        if ids:
            await asyncio.to_thread(self._while_locked, self._release, ids)

    def _release(self, ids: list[int]) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(OutboxMail)
                .where(OutboxMail.id.in_(ids), OutboxMail.status == "sending")
                .values(status="pending", claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    # ----------------------------------------------------------------- sending

    async def _send_batch(self, jobs: list[_Job], now: datetime, report: SendReport) -> bool:
        """Send ``jobs`` over up to ``connections`` connections; True when the server was down."""
        pending = deque(jobs)
        outcomes: list[_Outcome] = []
        down: list[str] = []  # why the server takes nothing now, once known
        done = asyncio.Event()

        async def worker(slot: int) -> None:
            while pending:
                job = pending.popleft()
                if down:
                    outcomes.append(_outcome(job, _Result.TRANSIENT, f"not tried: {down[0]}"))
                    continue
                try:
                    # Built here, in the loop, right before sending: building in a
                    # thread would hold the GIL while the connections wait for it.
                    envelope = _envelope(job.row)
                except Exception as exc:
                    # One unbuildable row must not hold up the others; it fails for good.
                    logger.warning("outbox row %d cannot become a message: %s", job.id, exc)
                    error = f"cannot build the message: {_clip(str(exc))}"
                    outcomes.append(_outcome(job, _Result.PERMANENT, error))
                    continue
                try:
                    outcome = await self._deliver(slot, job, envelope)
                except Exception as exc:
                    # The loop never dies: an unexpected error costs this mail one attempt.
                    logger.exception("outbox row %d: unexpected error while sending", job.id)
                    await self._drop(slot)
                    outcome = _outcome(job, _Result.TRANSIENT, _describe(exc))
                outcomes.append(outcome)
                if outcome.server_down and not down:
                    down.append(outcome.error or "server unavailable")
                    logger.warning("outbox: SMTP server unavailable: %s", down[0])

        async def flusher() -> None:
            # Results are written while sending goes on.
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), _FLUSH_INTERVAL)
                await self._flush(outcomes, now, report)

        flushing = asyncio.create_task(flusher())
        workers = min(self._connections, len(jobs))
        try:
            await asyncio.gather(*(worker(slot) for slot in range(workers)))
        finally:
            done.set()
            await flushing
            # Outcomes that arrived while the flusher's last write was under way.
            await self._flush(outcomes, now, report)
        return bool(down)

    async def _flush(self, outcomes: list[_Outcome], now: datetime, report: SendReport) -> None:
        if not outcomes:
            return
        batch = outcomes[:]
        del outcomes[:]  # in the loop thread: workers append only between awaits
        counts = await asyncio.to_thread(self._while_locked, self._record, batch, now)
        report.sent += counts[_Result.SENT]
        report.retried += counts[_Result.TRANSIENT]
        report.failed += counts[_Result.PERMANENT]

    async def _deliver(self, slot: int, job: _Job, envelope: _Envelope) -> _Outcome:
        sender, recipients, data = envelope
        for try_number in (1, 2):
            try:
                connection = await self._connection(slot)
            except (aiosmtplib.SMTPException, OSError) as exc:
                return _outcome(job, _Result.TRANSIENT, _describe(exc), server_down=True)
            reused = connection.used
            try:
                refused, _reply = await connection.smtp.sendmail(sender, recipients, data)
            except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException) as exc:
                connection.used = True
                connection.last_used = time.monotonic()
                outcome = _refusal(job, exc)
                if outcome.server_down:
                    await self._drop(slot)
                return outcome
            except (aiosmtplib.SMTPException, OSError) as exc:
                await self._drop(slot)
                if reused and try_number == 1:
                    # A pooled connection may have been closed by the server while
                    # idle; that is not this mail's failure: try once on a new one.
                    continue
                return _outcome(job, _Result.TRANSIENT, _describe(exc), server_down=True)
            connection.used = True
            connection.last_used = time.monotonic()
            return _Outcome(
                job.id, job.ticket_id, job.attempts, job.created_at, _Result.SENT,
                refused={rcpt: f"{reply.code} {_clip(reply.message)}"
                         for rcpt, reply in refused.items()},
            )  # fmt: skip
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self, slot: int) -> _Connection:
        connection = self._pool.get(slot)
        if connection is not None and connection.smtp.is_connected:
            return connection
        if connection is not None:
            await self._drop(slot)
        if self._local_hostname is None:
            # getfqdn may wait on DNS: once per sender, off the event loop.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        smtp = aiosmtplib.SMTP(
            hostname=self._smtp.host,
            port=self._smtp.port,
            use_tls=self._smtp.tls == "ssl",
            start_tls=self._smtp.tls == "starttls",
            tls_context=self._context() if self._smtp.tls != "none" else None,
            local_hostname=self._local_hostname,
            timeout=self._timeout,
        )
        try:
            await smtp.connect()
            if self._smtp.username and self._password is not None:
                await smtp.login(self._smtp.username, self._password.get_secret_value())
        except BaseException:
            # A connection that got as far as TLS or AUTH must not be left open.
            await _quit(smtp)
            raise
        connection = _Connection(smtp, time.monotonic())
        self._pool[slot] = connection
        return connection

    async def _drop(self, slot: int) -> None:
        connection = self._pool.pop(slot, None)
        if connection is not None:
            connection.smtp.close()

    def _while_locked(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run one write transaction; run it again while SQLite answers "database is locked".

        The transaction is all or nothing, so running it again is safe. With
        the usual long busy timeout SQLite waits itself and this never
        repeats; a sender in a process of its own gets a short busy timeout
        (see :mod:`daemon.sender_process`) and asks again here every few
        milliseconds, instead of SQLite's sleeps of up to 100 ms that keep
        missing the short gaps between intake's transactions.
        """
        deadline = time.monotonic() + _LOCKED_PATIENCE
        while True:
            try:
                return work(*args)
            except OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(_LOCKED_PAUSE)

    def _context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            cafile = str(self._smtp.ca_file) if self._smtp.ca_file else None
            self._tls_context = ssl.create_default_context(cafile=cafile)
        return self._tls_context

    # --------------------------------------------------------------- recording

    def _record(self, outcomes: list[_Outcome], now: datetime) -> dict[_Result, int]:
        """Write the outcomes of sent or failed rows in one transaction."""
        counts = dict.fromkeys(_Result, 0)
        sent_at = self._clock()
        current = max(now, sent_at)  # backoff counts from now, even late in a long round
        sent: list[dict[str, Any]] = []
        retry: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        events: list[tuple[int | None, str, dict[str, Any]]] = []
        for outcome in outcomes:
            attempts = outcome.attempts + 1
            if outcome.result is _Result.SENT:
                counts[_Result.SENT] += 1
                note = None
                if outcome.refused:
                    note = "refused: " + "; ".join(f"{r}: {e}" for r, e in outcome.refused.items())
                    events.append(
                        (outcome.ticket_id, "mail_recipients_refused",
                         {"outbox_id": outcome.job_id, "refused": outcome.refused}),
                    )  # fmt: skip
                sent.append({"b_id": outcome.job_id, "b_attempts": attempts, "b_error": note})
                continue
            gave_up = current - outcome.created_at >= self._max_age
            if outcome.result is _Result.TRANSIENT and not gave_up:
                counts[_Result.TRANSIENT] += 1
                retry.append(
                    {
                        "b_id": outcome.job_id,
                        "b_attempts": attempts,
                        "b_error": outcome.error,
                        "b_next": current + timedelta(seconds=self._backoff(attempts)),
                    }
                )
                logger.info(
                    "outbox row %d (ticket %s): attempt %d failed, will retry: %s",
                    outcome.job_id, outcome.ticket_id, attempts, outcome.error,
                )  # fmt: skip
                continue
            counts[_Result.PERMANENT] += 1
            error = outcome.error or "unknown error"
            if outcome.result is _Result.TRANSIENT:
                error = f"gave up after {attempts} attempts: {error}"
            failed.append({"b_id": outcome.job_id, "b_attempts": attempts, "b_error": error})
            events.append(
                (outcome.ticket_id, "mail_failed", {"outbox_id": outcome.job_id, "error": error})
            )
            logger.warning(
                "outbox row %d (ticket %s) failed: %s", outcome.job_id, outcome.ticket_id, error
            )
        table = cast(Table, OutboxMail.__table__)
        claimed = (table.c.id == bindparam("b_id")) & (table.c.status == "sending")
        with self._sessions.begin() as session:
            if sent:
                session.execute(
                    update(table).where(claimed).values(
                        status="sent", sent_at=sent_at, claimed_until=None,
                        attempts=bindparam("b_attempts"), last_error=bindparam("b_error"),
                    ),
                    sent,
                )  # fmt: skip
            if retry:
                session.execute(
                    update(table).where(claimed).values(
                        status="pending", claimed_until=None, next_attempt_at=bindparam("b_next"),
                        attempts=bindparam("b_attempts"), last_error=bindparam("b_error"),
                    ),
                    retry,
                )  # fmt: skip
            if failed:
                session.execute(
                    update(table).where(claimed).values(
                        status="failed", claimed_until=None,
                        attempts=bindparam("b_attempts"), last_error=bindparam("b_error"),
                    ),
                    failed,
                )  # fmt: skip
            self._add_events(session, events, current)
        return counts

    def _add_events(
        self,
        session: Session,
        events: list[tuple[int | None, str, dict[str, Any]]],
        now: datetime,
    ) -> None:
        wanted = {ticket_id for ticket_id, _, _ in events if ticket_id is not None}
        if not wanted:
            return
        # A ticket may have been deleted since the mail was queued (ticket_id is
        # SET NULL then); an event for it would break the whole write.
        existing = set(session.scalars(select(Ticket.id).where(Ticket.id.in_(wanted))).all())
        for ticket_id, kind, data in events:
            if ticket_id in existing:
                session.add(
                    Event(ticket_id=ticket_id, at=now, kind=kind, actor="system", data=data)
                )

    def _backoff(self, attempts: int) -> float:
        delay = min(self._retry_max, self._retry_base * 2.0 ** min(attempts - 1, 30))
        return delay / 2 + self._rng.uniform(0, delay / 2)


_Envelope = tuple[str, list[str], bytes]


def _is_locked(exc: OperationalError) -> bool:
    return isinstance(exc.orig, sqlite3.OperationalError) and "locked" in str(exc.orig)


def _envelope(row: OutboxMail) -> _Envelope:
    """MAIL FROM, RCPT TO and the bytes of one row's message."""
    message = build_message(row)
    recipients = envelope_recipients(message)
    if not recipients:
        raise ValueError("no recipient")
    return envelope_sender(message), recipients, message.as_bytes()


def _outcome(job: _Job, result: _Result, error: str, *, server_down: bool = False) -> _Outcome:
    return _Outcome(
        job.id, job.ticket_id, job.attempts, job.created_at, result, error, server_down=server_down
    )


def _refusal(
    job: _Job, exc: aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPResponseException
) -> _Outcome:
    """Classify a reply the server refused with: 4xx transient, 5xx permanent."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        detail = "; ".join(f"{r.recipient}: {r.code} {_clip(r.message)}" for r in exc.recipients)
        # One 4xx among the refusals means a later attempt may reach that recipient.
        transient = any(400 <= refusal.code < 500 for refusal in exc.recipients)
        result = _Result.TRANSIENT if transient else _Result.PERMANENT
        return _outcome(job, result, f"all recipients refused: {detail}")
    stage = _stage(exc)
    error = f"{stage}: {exc.code} {_clip(exc.message)}"
    if exc.code == 421:
        # "Service not available, closing channel": nothing more goes through now.
        return _outcome(job, _Result.TRANSIENT, error, server_down=True)
    if exc.code in _CONFIGURATION_CODES:
        # Authentication or encryption required: our configuration is wrong, not
        # this mail; failing every mail for good would lose the whole queue.
        return _outcome(job, _Result.TRANSIENT, error, server_down=True)
    if 500 <= exc.code < 600:
        return _outcome(job, _Result.PERMANENT, error)
    # A 4xx at MAIL FROM is about us, not this mail (throttling, a server in
    # trouble): the rest of the batch waits too instead of being refused one by one.
    return _outcome(job, _Result.TRANSIENT, error, server_down=stage == "MAIL FROM")


def _stage(exc: aiosmtplib.SMTPResponseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "MAIL FROM"
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return "RCPT TO"
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return "DATA"
    return "SMTP"


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = f"{type(exc).__name__}: {_clip(str(message))}"
    return f"{text} ({code})" if code else text


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text[:_MAX_ERROR]


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()
