"""Alembic environment: runs against the engine handed over by ``upgrade_schema``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from models.schema import Base

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
        context.run_migrations()
    connection.commit()
