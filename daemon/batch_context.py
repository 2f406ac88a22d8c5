"""What one intake batch knows: stored Message-IDs and the predictions made before the lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.parsing import ParsedMessage
from models import Message

if TYPE_CHECKING:
    from classifier import Prediction
    from daemon.triage import TriageBatch

__all__ = ["BatchContext", "KnownMessage", "KnownMessages"]


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What one batch knows: stored Message-IDs and the predictions made before the lock."""

    known: KnownMessages
    predictions: dict[int, Prediction]
    triage: TriageBatch | None = None

    def prediction(self, parsed: ParsedMessage) -> Prediction | None:
        """The prediction made for this parsed mail, if it was classified."""
        return self.predictions.get(id(parsed))


@dataclass(frozen=True, slots=True)
class KnownMessage:
    """A stored message, as much of it as deduplication needs."""

    id: int
    ticket_id: int | None
    fingerprint: str


class KnownMessages:
    """Messages already stored, by Message-ID, for the mails of one batch.

    Loaded with one query per batch instead of one per mail, and kept up to
    date as the batch inserts, so the same mail twice in one batch is caught.
    """

    def __init__(self, by_id: dict[str, list[KnownMessage]]) -> None:
        self._by_id = by_id

    @classmethod
    def load(cls, session: Session, parsed: Sequence[ParsedMessage]) -> KnownMessages:
        """Everything stored under the Message-IDs of ``parsed``."""
        known = cls({})
        known.reload(session, *(mail.message_id for mail in parsed))
        return known

    def _query(self, session: Session, message_ids: Sequence[str]) -> None:
        rows = session.execute(
            select(Message.id, Message.ticket_id, Message.fingerprint, Message.message_id).where(
                Message.message_id.in_(message_ids)
            )
        )
        for pk, ticket_id, fingerprint, message_id in rows:
            entries = self._by_id.setdefault(message_id, [])
            if all(entry.id != pk for entry in entries):
                entries.append(KnownMessage(pk, ticket_id, fingerprint))

    def reload(self, session: Session, *message_ids: str) -> None:
        """Forget and re-read these Message-IDs (after a concurrent insert or a rollback)."""
        wanted = list(dict.fromkeys(message_ids))
        for message_id in wanted:
            self._by_id.pop(message_id, None)
        for start in range(0, len(wanted), 500):
            self._query(session, wanted[start : start + 500])

    def get(self, message_id: str) -> list[KnownMessage]:
        """The stored messages with this Message-ID."""
        return self._by_id.get(message_id, [])

    def add(self, message: Message) -> None:
        """Remember a message this batch just stored."""
        entry = KnownMessage(message.id, message.ticket_id, message.fingerprint)
        self._by_id.setdefault(message.message_id, []).append(entry)
