"""The escalation sweep in real daemon processes: SIGKILL and restart, and two instances.

Deadlines live in the database, so a daemon killed in the middle of a sweep
over 1,000 overdue tickets and started again escalates every ticket exactly
once; two daemons on one PostgreSQL database share the sweep without
escalating anything twice, one of them reads the mailbox, and when that one
dies the other takes the mailbox over. Everything here is real: the
``complaintd run`` command in subprocesses, SQLite or a private PostgreSQL
cluster, an IMAP server on loopback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from models import Event, Ticket
from tests.support.daemon_process import DaemonProcess, daemon_pool, wait_until
from tests.support.due_tickets import EscalationTally, create_due_tickets, escalation_tally
from tests.support.imap_tools import ImapAccount, append
from tests.support.mail_factory import complaint

TICKETS = 1000
BATCH = 50


def _engine(url: str) -> Engine:
    # A plain engine: the tests only read, and must never queue behind the daemon's writes.
    return create_engine(url)


def _tally(engine: Engine) -> EscalationTally:
    return escalation_tally(engine)


def _escalated(engine: Engine, at_least: int) -> Callable[[], bool]:
    return lambda: _tally(engine).escalated_events >= at_least


def _assert_no_tracebacks(*daemons: DaemonProcess) -> None:
    for daemon in daemons:
        assert "Traceback" not in daemon.log(), daemon.tail()


def _assert_every_ticket_escalated_once(engine: Engine, refs: list[str]) -> None:
    tally = _tally(engine)
    assert tally.escalated_events == len(refs), tally
    assert tally.escalated_tickets == len(refs), tally
    assert tally.notices == len(refs), tally
    assert tally.noticed_tickets == len(refs), tally
    assert tally.at_tier_2 == len(refs), tally
    assert tally.errors == 0, tally
    assert tally.warnings == 0, tally  # the deadline had passed: its warning is moot
    with engine.connect() as connection:
        moves = connection.execute(
            select(
                Event.data["from_tier"].as_integer(),
                Event.data["to_tier"].as_integer(),
                Event.data["trigger"].as_string(),
                Event.data["deadline"].as_string(),
            )
            .where(Event.kind == "escalated")
            .distinct()
        ).all()
        assert [tuple(move) for move in moves] == [(1, 2, "deadline", "first_response")]
        tiers = dict(
            connection.execute(select(Ticket.ref, Ticket.tier).where(Ticket.ref.in_(refs))).all()
        )
    assert tiers == dict.fromkeys(refs, 2)


@pytest.mark.slow
def test_sigkill_mid_sweep_then_restart_escalates_each_ticket_exactly_once(
    mailbox: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url = f"sqlite:///{tmp_path / 'sweep.db'}"
    started = time.monotonic()
    # Critical tickets (24x7, first response within 1 h) opened 2 h ago: each is
    # overdue for its first response and nothing else about it is due.
    refs = create_due_tickets(
        db_url, monkeypatch, tmp_path, TICKETS, opened_at=datetime.now(UTC) - timedelta(hours=2)
    )
    print(f"created {len(refs)} tickets in {time.monotonic() - started:.1f} s")
    engine = _engine(db_url)
    assert _tally(engine).escalated_events == 0
    with daemon_pool(
        tmp_path, mailbox, db_url, sweep_interval_seconds=1.0, sweep_batch_size=BATCH
    ) as pool:
        daemon = pool.new("complaintd")
        # Kill twice: as soon as the first batch is committed, and half-way through.
        # Each kill lands right after a commit was seen, so the next batch is in flight.
        for threshold in (1, TICKETS // 2):
            daemon.start()
            wait_until(_escalated(engine, threshold), 60, f"{threshold} escalation(s)", every=0.01)
            daemon.kill()
            at_kill = _tally(engine)
            print(f"killed with {at_kill}")
            assert at_kill.escalated_events < TICKETS, "not killed mid-sweep: proves nothing"
            # What a batch does is committed together or not at all.
            assert at_kill.consistent, at_kill

        daemon.start()
        t0 = time.monotonic()
        wait_until(
            lambda: _tally(engine).escalated_tickets >= TICKETS, 120, "every ticket escalated"
        )
        print(f"finished after {time.monotonic() - t0:.1f} s")
        time.sleep(2.5)  # two more sweeps: nothing is escalated again
        assert daemon.stop() == 0, daemon.tail()
        _assert_no_tracebacks(daemon)
    _assert_every_ticket_escalated_once(engine, refs)
    engine.dispose()


# The first key of complaintd's advisory locks ("Cmpd", see daemon/mailbox_lease.py).
_LOCK_NAMESPACE = 0x436D7064
_READS = "mailbox support: this instance reads it"
_STANDS_BY = "mailbox support is read by another instance; standing by"
_SWEEP_LINE = re.compile(r"escalation sweep: \d+ ticket\(s\), \d+ warning\(s\), (\d+) escalation")


def _escalations_logged(daemon: DaemonProcess) -> int:
    return sum(int(found) for found in _SWEEP_LINE.findall(daemon.log()))


def _ticket_with_subject(engine: Engine, subject: str) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.subject == subject)
            )
        )


def _advisory_locks(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND granted AND classid = :space"
                ),
                {"space": _LOCK_NAMESPACE},
            )
            or 0
        )


@pytest.mark.slow
def test_two_instances_on_postgresql_escalate_once_and_hand_over_the_mailbox(
    pg_url: str, mailbox: ImapAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(pg_url)
    account = (mailbox.host, mailbox.port, mailbox.username, mailbox.password)
    append(*account, complaint(sender="before@customers.example", subject="Mail before the kill"))
    with daemon_pool(
        tmp_path, mailbox, pg_url, sweep_interval_seconds=1.0, sweep_batch_size=BATCH
    ) as pool:
        first, second = pool.new("first"), pool.new("second")
        # One after the other: the first one creates the schema (see the report on
        # simultaneous starts on an empty database).
        first.start()
        first.wait_for_log("complaintd running", 60)
        second.start()
        second.wait_for_log("complaintd running", 60)

        # One instance reads the mailbox, the other stands by.
        def lease_settled() -> bool:
            logs = [first.log(), second.log()]
            return sum(_READS in log for log in logs) + sum(_STANDS_BY in log for log in logs) >= 2

        wait_until(lease_settled, 30, "both instances to settle the mailbox lease")
        readers = [daemon for daemon in (first, second) if _READS in daemon.log()]
        assert len(readers) == 1, pool.logs()
        [reader] = readers
        survivor = second if reader is first else first
        assert _STANDS_BY in survivor.log(), pool.logs()
        assert _advisory_locks(engine) == 1
        wait_until(
            lambda: _ticket_with_subject(engine, "Mail before the kill"), 30, "the first mail"
        )

        # 1,000 tickets fall overdue at once (one commit) while both instances run:
        # both sweep them side by side. Kill the reader in the middle of it.
        refs = create_due_tickets(
            pg_url, monkeypatch, tmp_path, TICKETS, opened_at=datetime.now(UTC) - timedelta(hours=2)
        )
        wait_until(_escalated(engine, 6 * BATCH), 60, "the sweep to get going")
        reader.kill()
        killed_at = time.monotonic()
        at_kill = _tally(engine)
        print(f"killed the reader with {at_kill}")
        assert at_kill.escalated_events < TICKETS, "the sweep ended before the kill: proves nothing"
        assert at_kill.consistent, at_kill

        # The other instance takes the mailbox over within seconds and reads new mail.
        wait_until(lambda: _READS in survivor.log(), 5, "the survivor to take the mailbox")
        print(f"mailbox taken over {time.monotonic() - killed_at:.1f} s after the kill")
        # Append once the survivor sits in IDLE: a mail arriving in the instant between
        # its last search and its IDLE command waits for the next resync (60 s), see
        # MailboxWorker._wait_idle; that intake race is not what this test is about.
        wait_until(lambda: "watching INBOX" in survivor.log().split(_READS, 1)[1], 10, "IDLE again")
        time.sleep(0.5)
        append(*account, complaint(sender="after@customers.example", subject="Mail after the kill"))
        wait_until(
            lambda: _ticket_with_subject(engine, "Mail after the kill"), 30, "the mail after"
        )
        wait_until(
            lambda: _tally(engine).escalated_tickets >= TICKETS, 120, "every ticket escalated"
        )
        time.sleep(2.5)  # two more sweeps: nothing is escalated again
        assert survivor.stop() == 0, survivor.tail()
        _assert_no_tracebacks(first, second)
        assert _advisory_locks(engine) == 0
    _assert_every_ticket_escalated_once(engine, refs)
    assert _tally(engine).tickets == TICKETS + 2  # the two mails are tickets, not escalated
    # Both instances did part of the sweep: the survivor's own reports add up to
    # less than everything, and to at least what was left when the other died.
    by_survivor = _escalations_logged(survivor)
    print(
        f"escalated by the survivor: {by_survivor}, by the killed reader: {TICKETS - by_survivor}"
    )
    assert TICKETS - at_kill.escalated_events <= by_survivor < TICKETS
    engine.dispose()
