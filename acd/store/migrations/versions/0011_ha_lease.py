"""The leader's lease among servers sharing the database (acd.leader): one row, its holder,
a fencing token that grows at each change of holder, and when it expires (the database
server's clock, seconds since the epoch).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    t = op.create_table(
        "ha_lease",
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("holder", sa.String(120), nullable=False),
        sa.Column("token", sa.Integer, nullable=False),
        sa.Column("expires", sa.Float, nullable=False))
    op.bulk_insert(t, [{"name": "acd", "holder": "", "token": 0, "expires": 0.0}])


def downgrade() -> None:
    op.drop_table("ha_lease")
