"""Call control: every agent's leg of a call (talk, hold, wrap-up), the caller's rating, and
the direction of a call (outbound calls made by agents).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("direction", sa.String(8)))
        batch.add_column(sa.Column("rating", sa.Integer))
        batch.add_column(sa.Column("rated_at", TZ))
    op.create_table(
        "call_legs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.Integer, sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=False),
        sa.Column("talk_seconds", sa.Float, nullable=False),
        sa.Column("hold_seconds", sa.Float, nullable=False),
        sa.Column("wrapup_seconds", sa.Float),
        sa.Column("reason", sa.String(32), nullable=False),
    )
    op.create_index("ix_call_legs_call_id", "call_legs", ["call_id"])
    op.create_index("ix_call_legs_agent_id", "call_legs", ["agent_id"])


def downgrade() -> None:
    op.drop_index("ix_call_legs_agent_id", "call_legs")
    op.drop_index("ix_call_legs_call_id", "call_legs")
    op.drop_table("call_legs")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("rated_at")
        batch.drop_column("rating")
        batch.drop_column("direction")
