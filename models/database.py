"""Engines, sessions and schema upgrades for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["create_database_engine", "is_outage", "session_factory", "upgrade_schema"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"

logger = logging.getLogger(__name__)


def create_database_engine(url: str, *, echo: bool = False, busy_timeout: float = 60.0) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full sync, a busy timeout and real SAVEPOINTs.

    SQLite's Python driver starts transactions lazily and breaks SAVEPOINT;
    we take over BEGIN ourselves (the recipe from SQLAlchemy's pysqlite docs)
    and use ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout
    instead of failing with "database is locked" when a read upgrades.
    ``busy_timeout`` (seconds) is how long SQLite itself waits for another
    writer before answering "database is locked".
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)

    database = parsed.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, echo=echo, connect_args={"check_same_thread": False, "timeout": busy_timeout}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, which matters because the IMAP
        # server is told to move a mail only after its commit.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    turnstile = _WriteTurnstile()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        turnstile.enter(dbapi_connection)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turnstile.leave(dbapi_connection)
            raise

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(connection: Any) -> None:
        turnstile.leave(connection.connection.dbapi_connection)

    # A connection can also end its transaction by being reset or closed by the pool.
    @event.listens_for(engine, "reset")
    @event.listens_for(engine, "close")
    @event.listens_for(engine, "invalidate")
    def _on_pool_end(dbapi_connection: Any, *_args: Any) -> None:
        turnstile.leave(dbapi_connection)

    return engine


class _WriteTurnstile:
    """Threads of this process take SQLite's write lock in turn, first come first served.

    SQLite lets a writer that finds the database locked sleep and retry
    (after a few short tries, every 100 ms), and nothing queues the
    waiters: a thread that commits batch after batch with a few
    milliseconds between its transactions (intake during a burst) keeps
    the lock for seconds while another (the outbox sender claiming rows and
    recording results) sleeps through every gap. Here the waiters of this
    process line up and the next one is woken the moment a transaction
    ends. It only orders; SQLite's own locking still guarantees one writer,
    also against other processes, and a thread that waited ``patience``
    seconds goes ahead on SQLite's locking alone, so a hand-over that never
    happens (a leak we did not foresee) costs time, never a deadlock.
    """

    def __init__(self, patience: float = 5.0) -> None:
        self._patience = patience
        self._mutex = threading.Lock()
        self._holder: int | None = None  # id() of the DBAPI connection in its turn
        self._waiters: deque[tuple[int, threading.Event]] = deque()

    def enter(self, dbapi_connection: object) -> None:
        """Wait for this connection's turn to write (at most ``patience`` seconds)."""
        key = id(dbapi_connection)
        with self._mutex:
            if self._holder is None and not self._waiters:
                self._holder = key
                return
            turn = threading.Event()
            self._waiters.append((key, turn))
        if turn.wait(self._patience):
            return
        with self._mutex:
            if not turn.is_set():
                self._waiters.remove((key, turn))
                logger.warning("waited %.0f s for the write turn; going ahead", self._patience)

    def leave(self, dbapi_connection: object) -> None:
        """End this connection's turn, if it has it, and wake the next waiter."""
        key = id(dbapi_connection)
        with self._mutex:
            if self._holder != key:
                return
            if self._waiters:
                self._holder, turn = self._waiters.popleft()
                turn.set()
            else:
                self._holder = None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (idempotent)."""
    command.upgrade(_alembic_config(engine), revision)


# SQLSTATE classes (PostgreSQL) that say "try again later", not "this row is bad":
# connection exceptions, serialization failures and deadlocks, insufficient
# resources, an administrator's shutdown or cancel, a lock not available.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_TRANSIENT_SQLSTATES = frozenset({"55P03", "55006"})


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` means the database is unavailable, not that one statement is bad.

    SQLAlchemy reports both as ``OperationalError``: a dropped connection or a
    deadlock (retry the whole batch later) and, on PostgreSQL, a value one mail
    brought that no retry will fix (an index row over the size limit, SQLSTATE
    54000). SQLite's operational errors (locked, disk I/O, full) are all outages.
    Any other exception is not an outage.
    """
    if not isinstance(exc, OperationalError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if not isinstance(state, str) or len(state) != 5:
        return True  # no SQLSTATE: a driver-level failure such as a lost connection
    return state[:2] in _TRANSIENT_SQLSTATE_CLASSES or state in _TRANSIENT_SQLSTATES
