"""What the database knows about each mailbox: its UIDVALIDITY, stored UIDs, last error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import MailboxReceipt, MailboxState

__all__ = ["MailboxStore"]


class MailboxStore:
    """Small repository over ``mailbox_receipts`` and ``mailbox_state``."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    def stored_uids(self, mailbox: str, uidvalidity: int, uids: Sequence[int]) -> dict[int, bool]:
        """Which of ``uids`` were stored already, mapped to their leave-on-server flag."""
        if not uids:
            return {}
        wanted = set(uids)
        with self._sessions() as session:
            rows = session.execute(
                select(MailboxReceipt.uid, MailboxReceipt.leave_on_server).where(
                    MailboxReceipt.mailbox == mailbox,
                    MailboxReceipt.uidvalidity == uidvalidity,
                    MailboxReceipt.uid >= min(wanted),
                    MailboxReceipt.uid <= max(wanted),
                )
            ).all()
        return {uid: leave for uid, leave in rows if uid in wanted}

    def record_connect(self, mailbox: str, uidvalidity: int) -> int | None:
        """Note a successful SELECT; return the previous UIDVALIDITY when it changed."""
        with self._sessions() as session, session.begin():
            state = session.get(MailboxState, mailbox)
            if state is None:
                state = MailboxState(name=mailbox, highest_uid=0)
                session.add(state)
            previous = state.uidvalidity
            if previous != uidvalidity:
                state.highest_uid = 0
            state.uidvalidity = uidvalidity
            state.last_connected_at = self._clock()
            state.last_error = None
        return previous if previous is not None and previous != uidvalidity else None

    def record_highest_uid(self, mailbox: str, uid: int) -> None:
        """Remember the highest UID seen, so the next sync asks only for newer mail."""
        with self._sessions() as session, session.begin():
            state = session.get(MailboxState, mailbox)
            if state is not None and uid > state.highest_uid:
                state.highest_uid = uid

    def record_error(self, mailbox: str, error: str) -> None:
        """Keep the last connection error for ``complaintd status``-style reports."""
        with self._sessions() as session, session.begin():
            state = session.get(MailboxState, mailbox)
            if state is None:
                state = MailboxState(name=mailbox, highest_uid=0)
                session.add(state)
            state.last_error = error[:2000]
