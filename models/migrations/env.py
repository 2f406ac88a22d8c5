"""Alembic environment: runs against the engine handed over by ``upgrade_schema``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, text

from models.schema import Base

# complaintd's advisory lock key for schema migrations ("Cmpd" + 1).
_MIGRATION_LOCK = 0x436D706401

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - misuse, not a runtime path
    raise RuntimeError("run migrations through models.database.upgrade_schema()")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Instances starting together must not both create alembic_version
            # or run one migration twice: the second waits, then finds it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        context.run_migrations()
    connection.commit()
