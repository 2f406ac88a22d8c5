"""APScheduler wiring: the escalation sweep, outbox retries and housekeeping.

APScheduler 3 with its default in-memory job store only: its persistent job
stores must not be shared between processes, and nothing here needs to
survive a restart anyway, because the truth (deadlines, outbox rows) is in the
database. Jobs:

- ``escalation_sweep`` every ``sweep_interval_seconds``, and ``escalation_wake``,
  a one-off job planned for the next known deadline (after every sweep, and by
  ``deadline_watch``, which looks up the earliest deadline every 2 s because
  intake and other instances add deadlines between sweeps), so a deadline
  between two periodic sweeps is acted on at once;
- ``outbox_retry``: wakes the outbox sender when the backoff of a failed mail
  has run out;
- ``housekeeping``: closes resolved tickets whose reopen window has passed.

Every job catches and logs its own errors: a failing job never stops the
scheduler, and the next run tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.lifecycle import TicketLifecycle
from daemon.settings import SchedulerSettings
from daemon.sweep import EscalationSweep
from models import OutboxMail

__all__ = ["DaemonScheduler"]

logger = logging.getLogger(__name__)

_OUTBOX_CHECK_SECONDS = 5.0
_CATCH_UP_ROUNDS = 10
_WATCH_SECONDS = 2.0


@dataclass
class DaemonScheduler:
    """The daemon's timed jobs; :meth:`start` and :meth:`shutdown` bracket a run."""

    sessions: sessionmaker[Session]
    sweep: EscalationSweep
    lifecycle: TicketLifecycle
    settings: SchedulerSettings
    clock: Callable[[], datetime]
    outbox_wake: threading.Event | None = None
    _scheduler: BackgroundScheduler | None = None
    _sweeping: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start the jobs in a background thread; the first sweep runs at once."""
        scheduler = BackgroundScheduler(
            timezone=UTC,
            # A sweep that overran its interval is not run twice back to back.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        now = datetime.now(UTC)
        scheduler.add_job(
            self.run_sweep,
            "interval",
            seconds=self.settings.sweep_interval_seconds,
            id="escalation_sweep",
            next_run_time=now,
        )
        scheduler.add_job(
            self.watch_deadlines,
            "interval",
            seconds=min(_WATCH_SECONDS, self.settings.sweep_interval_seconds),
            id="deadline_watch",
            next_run_time=now + timedelta(seconds=1),
        )
        scheduler.add_job(
            self.run_outbox_retry,
            "interval",
            seconds=_OUTBOX_CHECK_SECONDS,
            id="outbox_retry",
            next_run_time=now,
        )
        scheduler.add_job(
            self.run_housekeeping,
            "interval",
            minutes=self.settings.housekeeping_interval_minutes,
            id="housekeeping",
            next_run_time=now + timedelta(seconds=10),
        )
        scheduler.start()
        self._scheduler = scheduler
        logger.info(
            "scheduler started: escalation sweep every %.1f s", self.settings.sweep_interval_seconds
        )

    def shutdown(self) -> None:
        """Stop the jobs, waiting for a running one to finish (it commits or rolls back)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None

    # -- jobs -----------------------------------------------------------------------

    def run_sweep(self) -> None:
        """One escalation sweep, then plan a wake-up for the next known deadline."""
        # The periodic job and the wake-up job may fire together; one sweep at a time.
        with self._sweeping:
            try:
                for _ in range(_CATCH_UP_ROUNDS):
                    self.sweep.run()
                    next_check = self.sweep.next_check()
                    # Fell due while we swept: go again now. A wake-up planned in the
                    # past would be skipped by APScheduler while this job still runs.
                    if next_check is None or next_check > self.clock():
                        break
            except Exception:
                logger.exception("escalation sweep failed; the next one tries again")
                return
        self._plan_wake(next_check)

    def watch_deadlines(self) -> None:
        """Plan the wake-up for the earliest deadline in the database (one index lookup).

        New tickets, follow-ups and other instances change deadlines between
        sweeps; looking every few seconds keeps the wake-up current, so an
        early deadline is not left to the next periodic sweep.
        """
        try:
            next_check = self.sweep.next_check()
        except Exception:
            logger.exception("deadline watch failed; the periodic sweep still runs")
            return
        if next_check is not None and next_check <= self.clock():
            self.run_sweep()
        else:
            self._plan_wake(next_check)

    def run_outbox_retry(self) -> None:
        """Wake the sender when a mail waiting for its retry has become due."""
        if self.outbox_wake is None:
            return
        try:
            with self.sessions() as session:
                due = session.scalar(
                    select(func.min(OutboxMail.next_attempt_at)).where(
                        OutboxMail.status == "pending"
                    )
                )
        except Exception:
            logger.exception("outbox retry check failed")
            return
        if due is not None and due <= self.clock():
            self.outbox_wake.set()

    def run_housekeeping(self) -> None:
        """Close resolved tickets whose reopen window has passed."""
        try:
            with self.sessions.begin() as session:
                closed = self.lifecycle.close_resolved(session, self.clock())
        except Exception:
            logger.exception("housekeeping failed; the next run tries again")
            return
        if closed:
            logger.info("housekeeping: %d resolved ticket(s) closed", closed)

    def _plan_wake(self, next_check: datetime | None) -> None:
        scheduler = self._scheduler
        if scheduler is None or next_check is None:
            return
        periodic = scheduler.get_job("escalation_sweep")
        if periodic is None or periodic.next_run_time is None:
            return
        # The database's deadlines are on the daemon's clock; translate to wall time.
        at = datetime.now(UTC) + max(next_check - self.clock(), timedelta(0))
        if at >= periodic.next_run_time:
            return  # the periodic sweep comes first anyway
        # The wake-up may fall while a periodic sweep still runs; it then waits
        # for the lock instead of being skipped (the lock keeps sweeps one at a time).
        scheduler.add_job(
            self.run_sweep,
            "date",
            run_date=at,
            id="escalation_wake",
            replace_existing=True,
            max_instances=2,
        )
