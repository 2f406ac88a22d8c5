"""One daemon instance at a time reads a given mailbox.

On PostgreSQL several instances may share one database; each mailbox is then
guarded by a session-level advisory lock held on a connection of its own.
The instance holding it reads the mailbox; the others stand by and try again
every few seconds, so when the holder dies (its connection closes and the
server drops the lock) another one takes over. If the holder loses its
database connection it stops reading until it holds the lock again. Reading
twice for a moment would still be safe (receipts and Message-IDs make intake
idempotent); the lock keeps it from being the normal case.

On SQLite there is one daemon per database file, so the lease is always held.
"""

from __future__ import annotations

import logging
import threading
import zlib
from typing import Protocol

from sqlalchemy import Connection, Engine, text

__all__ = ["MailboxLease", "run_with_lease"]

logger = logging.getLogger(__name__)

# First key of every complaintd advisory lock ("Cmpd"), so ours never collide
# with another application's locks on the same database.
_LOCK_NAMESPACE = 0x436D7064


class _Worker(Protocol):
    def run_forever(self, stop: threading.Event) -> None: ...


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


class MailboxLease:
    """The right to read mailbox ``name``; a PostgreSQL advisory lock, or always granted."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name
        self._key = _signed32(zlib.crc32(name.encode("utf-8")))
        self._connection: Connection | None = None
        self._shared = engine.dialect.name == "postgresql"

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this instance holds it now."""
        if not self._shared:
            return True
        if self._connection is not None:
            return self.still_held()
        try:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = connection.scalar(
                text("SELECT pg_try_advisory_lock(:space, :key)"),
                {"space": _LOCK_NAMESPACE, "key": self._key},
            )
        except Exception:
            logger.exception("mailbox %s: could not ask the database for the lock", self.name)
            return False
        if got:
            self._connection = connection
            return True
        connection.close()
        return False

    def still_held(self) -> bool:
        """True while the lock's connection is alive and holds it."""
        if not self._shared:
            return True
        if self._connection is None:
            return False
        try:
            held = self._connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND classid = :space AND objid = :key"
                ),
                # pg_locks shows the two int4 keys as oid (unsigned).
                {"space": _LOCK_NAMESPACE, "key": self._key & 0xFFFFFFFF},
            )
        except Exception:
            logger.warning("mailbox %s: lost the database connection holding the lock", self.name)
            self._drop()
            return False
        return bool(held)

    def release(self) -> None:
        """Give the lease up (closing the connection releases the lock)."""
        if self._connection is None:
            return
        try:
            self._connection.execute(
                text("SELECT pg_advisory_unlock(:space, :key)"),
                {"space": _LOCK_NAMESPACE, "key": self._key},
            )
        except Exception:
            logger.debug("mailbox %s: unlock failed; closing the connection", self.name)
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                logger.debug("mailbox %s: closing the lock connection failed", self.name)


def run_with_lease(
    worker: _Worker, lease: MailboxLease, stop: threading.Event, retry_seconds: float
) -> None:
    """Run ``worker`` while holding ``lease``; stand by while another instance holds it."""
    standing_by = False
    while not stop.is_set():
        if not lease.try_acquire():
            if not standing_by:
                logger.info("mailbox %s is read by another instance; standing by", lease.name)
                standing_by = True
            stop.wait(retry_seconds)
            continue
        standing_by = False
        logger.info("mailbox %s: this instance reads it", lease.name)
        run_stop = threading.Event()
        watchdog = threading.Thread(
            target=_watch,
            args=(lease, stop, run_stop, retry_seconds),
            name=f"lease-{lease.name}",
            daemon=True,
        )
        watchdog.start()
        try:
            worker.run_forever(run_stop)
        finally:
            run_stop.set()
            watchdog.join()
            lease.release()


def _watch(
    lease: MailboxLease, stop: threading.Event, run_stop: threading.Event, every: float
) -> None:
    """Stop the worker when the daemon stops or the lease is lost."""
    while not run_stop.is_set():
        if stop.wait(min(every, 1.0)):
            break
        if not lease.still_held():
            logger.warning("mailbox %s: lock lost; stopping until it is held again", lease.name)
            break
    run_stop.set()
