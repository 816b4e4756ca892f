"""Rollouts: a version that every change of the row bumps (the controller writes only
if the row is unchanged since it read it, so an abort or a pause is never overwritten),
and the servers' /metrics the guardrails also read, with the counters at the step's
start.

Revision ID: 0011_rollout_version
Revises: 0009_rollouts
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_rollout_version"
down_revision = "0009_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("metrics_urls", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("metrics_baseline", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("metrics_baseline")
        batch.drop_column("metrics_urls")
        batch.drop_column("version")
