"""SLA clocks and escalation state on tickets

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INSTANTS = (
    "next_response_due_at",
    "sla_check_at",
    "first_responded_at",
    "last_customer_at",
    "last_agent_reply_at",
    "escalated_at",
    "breach_reported_at",
    "resolved_at",
)


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        for name in _INSTANTS:
            batch_op.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sla", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("unanswered_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(batch_op.f("ix_tickets_sla_check_at"), ["sla_check_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_sla_check_at"))
        batch_op.drop_column("unanswered_count")
        batch_op.drop_column("sla")
        for name in reversed(_INSTANTS):
            batch_op.drop_column(name)
