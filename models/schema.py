"""The SQLAlchemy data model: tickets, messages, raw bytes, events, mailbox state, quarantine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Attachment",
    "Base",
    "Event",
    "LabelCorrection",
    "MailboxReceipt",
    "MailboxState",
    "Message",
    "ModelVersion",
    "OutboxMail",
    "Participant",
    "Quarantine",
    "RawMessage",
    "RoutingState",
    "Ticket",
    "UTCDateTime",
]

# Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zones: values are stored as naive UTC and come back
    aware, so no naive datetime ever leaves the data layer.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention."""

    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Ticket(Base):
    """A complaint: one conversation with one customer, with its classification and owner."""

    __tablename__ = "tickets"
    # Open tickets per agent (assignment by load, escalations) without a scan.
    __table_args__ = (Index("ix_tickets_assignee_status", "assignee", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str | None] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    """new, open (an agent answered), pending (waiting on the customer), resolved, closed."""
    customer_email: Mapped[str] = mapped_column(String(320), index=True)
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(8))
    category: Mapped[str | None] = mapped_column(String(64))
    category_confidence: Mapped[float | None] = mapped_column(Float)
    severity: Mapped[str | None] = mapped_column(String(16))
    severity_confidence: Mapped[float | None] = mapped_column(Float)
    signals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    model_version: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[int | None] = mapped_column(Integer)
    team: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(320))
    mailbox: Mapped[str | None] = mapped_column(String(64))
    routing_rule: Mapped[str | None] = mapped_column(String(128))
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    sla_policy: Mapped[str | None] = mapped_column(String(64))
    first_response_due_at: Mapped[datetime | None] = mapped_column(index=True)
    next_response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None] = mapped_column(index=True)
    sla: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    """The SLA clocks (:class:`routing.ticket_clocks.TicketClocks` as JSON)."""
    sla_check_at: Mapped[datetime | None] = mapped_column(index=True)
    """When the escalation sweep must next look at this ticket (a warning or a
    deadline); None when nothing is pending. The sweep's only search key."""
    unanswered_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Customer messages since the last agent reply."""
    first_responded_at: Mapped[datetime | None]
    last_customer_at: Mapped[datetime | None]
    last_agent_reply_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    breach_reported_at: Mapped[datetime | None]
    """When the admins were told of a breach at the last level (they are told once)."""
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", lazy="raise_on_sql"
    )
    participants: Mapped[list[Participant]] = relationship(
        back_populates="ticket", lazy="raise_on_sql", cascade="all, delete-orphan"
    )


class Participant(Base):
    """An address allowed to add to a ticket through its subject tag."""

    __tablename__ = "ticket_participants"
    __table_args__ = (UniqueConstraint("ticket_id", "email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[str] = mapped_column(String(16))  # customer | cc | reply_to

    REPLY_TO: ClassVar[str] = "reply_to"
    """The role of an address the customer's first mail named in Reply-To: our mail to
    the customer goes there, and its replies count as the customer's."""

    ticket: Mapped[Ticket] = relationship(back_populates="participants")


class RawMessage(Base):
    """The untouched bytes of an inbound mail, kept so it can be re-processed."""

    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]


class Message(Base):
    """One mail of a conversation, inbound or outbound.

    ``dedup_key`` is the Message-ID (or, when a different mail reuses a
    Message-ID, the ID plus a content fingerprint): the same mail delivered
    twice, to two addresses or after a crash, maps to one row.
    """

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(8))  # in | out
    kind: Mapped[str] = mapped_column(String(16))  # customer | bounce | auto_reply | list | ...
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    dedup_key: Mapped[str] = mapped_column(String(1100), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    in_reply_to: Mapped[list[Any]] = mapped_column(JSON, default=list)
    references: Mapped[list[Any]] = mapped_column(JSON, default=list)
    from_email: Mapped[str | None] = mapped_column(String(320), index=True)
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cc: Mapped[list[Any]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    full_text: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None]
    received_at: Mapped[datetime]
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"))
    mailbox: Mapped[str | None] = mapped_column(String(64))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)

    ticket: Mapped[Ticket | None] = relationship(back_populates="messages")
    raw: Mapped[RawMessage | None] = relationship(lazy="raise_on_sql")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", lazy="raise_on_sql", cascade="all, delete-orphan"
    )


class Attachment(Base):
    """Metadata of one attachment; its bytes stay inside the raw message."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """One entry of a ticket's audit log: everything that happens to it."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(320), default="system")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    ticket: Mapped[Ticket] = relationship(lazy="raise_on_sql")


class MailboxReceipt(Base):
    """Proof that (mailbox, UIDVALIDITY, UID) was stored: the key of exactly-once intake."""

    __tablename__ = "mailbox_receipts"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    quarantine_id: Mapped[int | None] = mapped_column(
        ForeignKey("quarantine.id", ondelete="SET NULL")
    )
    message: Mapped[Message | None] = relationship(lazy="raise_on_sql")
    leave_on_server: Mapped[bool] = mapped_column(default=False)
    """True when the mail must stay where it is (e.g. too large to store)."""
    stored_at: Mapped[datetime]


class MailboxState(Base):
    """What the daemon knows about one configured mailbox."""

    __tablename__ = "mailbox_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    highest_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_connected_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class Quarantine(Base):
    """A mail that did not become part of a ticket, with the reason; it can be re-run.

    ``kind`` is ``error`` (processing failed: a bug or bad input) or
    ``rejected`` (a policy decision, e.g. a bounce for no known ticket).
    """

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_open", "resolved_at", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id"))
    mailbox: Mapped[str | None] = mapped_column(String(64))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998))
    from_email: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    resolved_at: Mapped[datetime | None]
    resolved_message_pk: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )


class ModelVersion(Base):
    """A trained classifier version; exactly one is active at a time.

    The files live in ``path`` (a skops model, its model card, confusion
    matrices); ``sha256`` of the model file is checked before loading, so a
    corrupt or tampered file is refused instead of used.
    """

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(default=False, index=True)


class LabelCorrection(Base):
    """A person's correction of a ticket's category or severity; training can learn from it."""

    __tablename__ = "label_corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(16))  # category | severity
    old_value: Mapped[str | None] = mapped_column(String(64))
    new_value: Mapped[str] = mapped_column(String(64))
    corrected_by: Mapped[str] = mapped_column(String(320))
    corrected_at: Mapped[datetime]
    model_version: Mapped[str | None] = mapped_column(String(64))


class OutboxMail(Base):
    """One outgoing mail, written in the transaction of the change that caused it.

    The sender claims due rows (``status`` pending, ``next_attempt_at`` passed),
    marks them ``sending`` with a lease in ``claimed_until``, and ends them as
    ``sent`` or ``failed``; ``suppressed`` rows were never sent on purpose (the
    flood cap), with the reason in ``last_error``. ``message_id`` is our signed
    Message-ID: a retry or a duplicate after a crash carries the same one.
    Addresses are stored as formatted, already sanitised ``Name <addr>`` strings.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # The flood cap counts recent automatic mail per recipient.
        Index("ix_outbox_recipient_recent", "recipient_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    from_address: Mapped[str] = mapped_column(String(400))
    to_addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cc: Mapped[list[Any]] = mapped_column(JSON, default=list)
    recipient_key: Mapped[str] = mapped_column(String(320))
    """The first To address, lower-cased: what the flood cap counts by."""
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[Any]] = mapped_column(JSON, default=list)
    extra_headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    automatic: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    ticket: Mapped[Ticket | None] = relationship(lazy="raise_on_sql")


class RoutingState(Base):
    """Round-robin position per team, shared by every daemon instance."""

    __tablename__ = "routing_state"

    team: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_index: Mapped[int] = mapped_column(Integer, default=0)
