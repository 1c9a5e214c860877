"""Skill-group memberships kept in the database (acd.memberships): seeded from config.yaml,
changed on the admin page.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_members",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("skill_group", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("level", sa.Integer, nullable=True),
        sa.Column("seeded", sa.Integer, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(40), nullable=False))
    op.create_index("ix_group_members_key", "group_members", ["skill_group", "agent_id"],
                    unique=True)


def downgrade() -> None:
    op.drop_table("group_members")
