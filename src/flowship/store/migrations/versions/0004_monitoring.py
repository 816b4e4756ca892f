"""Monitoring: monitor runs and alert state.

Revision ID: 0004_monitoring
Revises: 0001_base
"""

import sqlalchemy as sa
from alembic import op

from flowship.store.tables import UTCDateTime

revision = "0004_monitoring"
down_revision = "0001_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("monitor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("model", sa.String(300)),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("n_alerts", sa.Integer(), nullable=False),
        sa.Column("alerts", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("json_path", sa.Text()),
        sa.Column("html_path", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_runs"),
    )
    op.create_index("ix_monitor_runs_monitor_started", "monitor_runs", ["monitor", "started_at"])
    op.create_table(
        "monitor_alerts",
        sa.Column("monitor", sa.String(200), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("first_fired_at", UTCDateTime(), nullable=False),
        sa.Column("last_fired_at", UTCDateTime(), nullable=False),
        sa.Column("cleared_at", UTCDateTime()),
        sa.Column("last_sent_at", UTCDateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("monitor", "key", name="pk_monitor_alerts"),
    )


def downgrade() -> None:
    op.drop_table("monitor_alerts")
    op.drop_index("ix_monitor_runs_monitor_started", table_name="monitor_runs")
    op.drop_table("monitor_runs")
