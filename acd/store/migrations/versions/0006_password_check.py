"""Web users: a check of the configured password (an HMAC under the data folder's key), so
that a start tells an unchanged password without argon2.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("web_users") as t:
        t.add_column(sa.Column("password_check", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_users") as t:
        t.drop_column("password_check")
