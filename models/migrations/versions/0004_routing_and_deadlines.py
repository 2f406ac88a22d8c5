"""routing and deadlines

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 12:40:57.322609
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_state",
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("next_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("team", name=op.f("pk_routing_state")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("routing_rule", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("sla_policy", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_tickets_first_response_due_at"), ["first_response_due_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tickets_resolution_due_at"), ["resolution_due_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_resolution_due_at"))
        batch_op.drop_index(batch_op.f("ix_tickets_first_response_due_at"))
        batch_op.drop_column("resolution_due_at")
        batch_op.drop_column("first_response_due_at")
        batch_op.drop_column("sla_policy")
        batch_op.drop_column("tags")
        batch_op.drop_column("routing_rule")

    op.drop_table("routing_state")
