"""Batch scoring: the job-run table.

Revision ID: 0003_batch_runs
Revises: 0001_base
"""

import sqlalchemy as sa
from alembic import op

from flowship.store.tables import UTCDateTime

revision = "0003_batch_runs"
down_revision = "0001_base"
branch_labels = ("batch",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_runs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("engine", sa.String(20), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("model_ref", sa.String(500), nullable=False),
        sa.Column("model_name", sa.String(250)),
        sa.Column("model_version", sa.String(50)),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("input_snapshot", sa.JSON),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("output_version", sa.Integer),
        sa.Column("prediction_date", sa.String(10)),
        sa.Column("rows_in", sa.Integer, nullable=False),
        sa.Column("rows_out", sa.Integer, nullable=False),
        sa.Column("rows_skipped", sa.Integer, nullable=False),
        sa.Column("rows_rejected", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("duration_s", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_batch_runs"),
    )
    op.create_index("ix_batch_runs_job", "batch_runs", ["job"])
    op.create_index("ix_batch_runs_started_at", "batch_runs", ["started_at"])


def downgrade() -> None:
    op.drop_table("batch_runs")
