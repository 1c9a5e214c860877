"""Agent state rows say what came before and which call; pending agent states are kept.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("agent_state_changes") as batch:
        batch.add_column(sa.Column("previous", sa.String(16)))
        batch.add_column(sa.Column("call_uniqueid", sa.String(64)))
    op.create_table(
        "agent_pending",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_agent_pending_agent_id", "agent_pending", ["agent_id"])
    op.create_index("ix_calls_end_reason", "calls", ["end_reason"])


def downgrade() -> None:
    op.drop_index("ix_calls_end_reason", "calls")
    op.drop_table("agent_pending")
    with op.batch_alter_table("agent_state_changes") as batch:
        batch.drop_column("call_uniqueid")
        batch.drop_column("previous")
