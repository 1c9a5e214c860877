"""History reports: fact tables kept beside the records (acd.reports).

Every call that had ended before this revision is listed for the indexer, which makes its
facts in the background (``report_dirty``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_dirty",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.Integer, nullable=False))
    op.create_index("ix_report_dirty_call_id", "report_dirty", ["call_id"])
    op.create_table(
        "report_offers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.Integer, sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("skill_group", sa.String(64), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("wait", sa.Float, nullable=False),
        sa.Column("agent_id", sa.String(40), nullable=True),
        sa.Column("within_sl", sa.Integer, nullable=False),
        sa.Column("talk", sa.Float, nullable=False),
        sa.Column("hold", sa.Float, nullable=False),
        sa.Column("wrapup", sa.Float, nullable=False),
        sa.Column("rating", sa.Integer, nullable=True),
        sa.Column("verified", sa.Integer, nullable=False),
        sa.Column("callback", sa.Integer, nullable=False))
    op.create_index("ix_report_offers_call_id", "report_offers", ["call_id"])
    op.create_index("ix_report_offers_bucket", "report_offers", ["bucket"])
    op.create_table(
        "report_legs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.Integer, sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("skill_group", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("talk", sa.Float, nullable=False),
        sa.Column("hold", sa.Float, nullable=False),
        sa.Column("wrapup", sa.Float, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("transfers_given", sa.Integer, nullable=False),
        sa.Column("consults_given", sa.Integer, nullable=False))
    op.create_index("ix_report_legs_call_id", "report_legs", ["call_id"])
    op.create_index("ix_report_legs_bucket", "report_legs", ["bucket"])
    op.create_table(
        "report_sums",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("dim", sa.String(8), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        *[sa.Column(name, sa.Integer, nullable=False) for name in (
            "offered", "answered", "abandoned", "overflowed", "sent", "callbacks", "within_sl")],
        *[sa.Column(name, sa.Float, nullable=False) for name in (
            "answer_wait", "wait", "wait_max", "talk", "hold", "wrapup")],
        *[sa.Column(name, sa.Integer, nullable=False) for name in (
            "ratings", "satisfied", "verified")])
    op.create_index("ix_report_sums_dim_bucket", "report_sums", ["dim", "bucket"])
    op.create_index("ix_report_offers_outcome_bucket", "report_offers", ["outcome", "bucket"])
    op.create_table(
        "report_agent_time",
        sa.Column("agent_id", sa.String(40), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(16), primary_key=True),
        sa.Column("reason", sa.String(256), primary_key=True),
        sa.Column("seconds", sa.Float, nullable=False))
    op.create_index("ix_report_agent_time_bucket", "report_agent_time", ["bucket"])
    op.create_table(
        "report_agent_open",
        sa.Column("agent_id", sa.String(40), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False))
    op.create_table(
        "report_marks",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False))
    op.execute("INSERT INTO report_dirty (call_id) SELECT id FROM calls WHERE end_reason IS NOT NULL")


def downgrade() -> None:
    for table in ("report_marks", "report_agent_open", "report_agent_time", "report_sums",
                  "report_legs",
                  "report_offers", "report_dirty"):
        op.drop_table(table)
