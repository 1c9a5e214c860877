"""The customer directory for identity verification in IVR flows.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_number", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("phone", sa.String(64), nullable=False),
        sa.Column("id_number", sa.String(64), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_customers_customer_number", "customers", ["customer_number"], unique=True)
    op.create_index("ix_customers_phone", "customers", ["phone"])
    op.create_index("ix_customers_id_number", "customers", ["id_number"])


def downgrade() -> None:
    op.drop_table("customers")
