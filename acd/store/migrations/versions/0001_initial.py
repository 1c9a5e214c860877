"""Calls, key trail, call timeline, agent state changes.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uniqueid", sa.String(64), nullable=False),
        sa.Column("linkedid", sa.String(64)),
        sa.Column("channel", sa.String(255), nullable=False),
        sa.Column("caller_number", sa.String(256), nullable=False),
        sa.Column("caller_name", sa.String(256), nullable=False),
        sa.Column("did", sa.String(64), nullable=False),
        sa.Column("skill_group", sa.String(64)),
        sa.Column("verification", sa.String(16)),
        sa.Column("verification_method", sa.String(32)),
        sa.Column("arrived_at", TZ, nullable=False),
        sa.Column("answered_at", TZ),
        sa.Column("ended_at", TZ),
        sa.Column("end_reason", sa.String(32)),
    )
    op.create_index("ix_calls_uniqueid", "calls", ["uniqueid"], unique=True)
    op.create_index("ix_calls_linkedid", "calls", ["linkedid"])
    op.create_index("ix_calls_arrived_at", "calls", ["arrived_at"])
    op.create_table(
        "key_presses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.Integer, sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("keys", sa.String(256), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_key_presses_call_id", "key_presses", ["call_id"])
    op.create_table(
        "call_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.Integer, sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_call_events_call_id", "call_events", ["call_id"])
    op.create_table(
        "agent_state_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_agent_state_changes_agent_id", "agent_state_changes", ["agent_id"])
    op.create_index("ix_agent_state_changes_at", "agent_state_changes", ["at"])


def downgrade() -> None:
    op.drop_table("agent_state_changes")
    op.drop_table("call_events")
    op.drop_table("key_presses")
    op.drop_table("calls")
