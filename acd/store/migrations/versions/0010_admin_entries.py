"""Agents, skill groups and web users kept in the database (acd.admin_config): seeded from
config.yaml, created, changed and removed on the admin page.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("doc", sa.Text, nullable=True),
        sa.Column("seeded", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(40), nullable=False))
    op.create_index("ix_admin_entries_key", "admin_entries", ["kind", "key"], unique=True)


def downgrade() -> None:
    op.drop_table("admin_entries")
