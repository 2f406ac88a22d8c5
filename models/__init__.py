"""The SQLAlchemy data model and its Alembic migrations."""

from models.database import create_database_engine, is_outage, session_factory, upgrade_schema
from models.schema import (
    Attachment,
    Base,
    Event,
    LabelCorrection,
    MailboxReceipt,
    MailboxState,
    Message,
    ModelVersion,
    OutboxMail,
    Participant,
    Quarantine,
    RawMessage,
    RoutingState,
    Ticket,
)

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
    "create_database_engine",
    "is_outage",
    "session_factory",
    "upgrade_schema",
]
