"""History reports: each agent's figures by UTC hour (report_agent_hours, and their break
reasons: report_agent_reasons), what reports by 60 minutes, day, week or month read in
zones whole hours from UTC.

A database with report facts already gets the table filled in the background: the mark
``agent_hours`` (report_marks) is the first hour still to make; the indexer makes the hours
from there a day at a time and removes the mark when it has caught up, and reports read the
quarter-hour facts until then (acd.reports.indexer.fill_agent_hours).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

STATES = ("offline", "idle", "busy", "break", "meeting", "ringing", "talking", "wrapup")


def upgrade() -> None:
    op.create_table(
        "report_agent_hours",
        sa.Column("agent_id", sa.String(40), primary_key=True),
        sa.Column("hour", sa.Integer, primary_key=True),
        *[sa.Column(name, sa.Integer, nullable=False) for name in (
            "calls_handled", "transfers_taken", "consults_taken", "transfers_given",
            "consults_given", "outbound")],
        *[sa.Column(name, sa.Float, nullable=False) for name in ("talk", "hold", "wrapup")],
        *[sa.Column(name, sa.Integer, nullable=False) for name in ("ratings", "satisfied")],
        *[sa.Column(f"in_{state}", sa.Float, nullable=False) for state in STATES])
    op.create_table(
        "report_agent_reasons",
        sa.Column("agent_id", sa.String(40), primary_key=True),
        sa.Column("hour", sa.Integer, primary_key=True),
        sa.Column("reason", sa.String(256), primary_key=True),
        sa.Column("seconds", sa.Float, nullable=False))
    op.create_index("ix_report_agent_reasons_hour", "report_agent_reasons", ["hour"])
    op.create_index("ix_report_agent_hours_hour", "report_agent_hours", ["hour"])
    first = op.get_bind().execute(sa.text(
        "SELECT MIN(b) FROM (SELECT MIN(bucket) AS b FROM report_legs "
        "UNION ALL SELECT MIN(bucket) FROM report_agent_time "
        "UNION ALL SELECT MIN(bucket) FROM report_sums WHERE dim = 'agent') AS firsts")).scalar()
    if first is not None:
        op.execute(sa.text("INSERT INTO report_marks (name, value) VALUES ('agent_hours', :v)")
                   .bindparams(v=int(first) - int(first) % 3600))


def downgrade() -> None:
    op.execute("DELETE FROM report_marks WHERE name = 'agent_hours'")
    op.drop_table("report_agent_reasons")
    op.drop_table("report_agent_hours")
