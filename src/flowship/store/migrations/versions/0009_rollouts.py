"""Rollouts: the desired progression of a deployment, its controller lease, its events.

Revision ID: 0009_rollouts
Revises: 0005_deployments
"""

import sqlalchemy as sa
from alembic import op

from flowship.store.tables import UTCDateTime

revision = "0009_rollouts"
down_revision = "0005_deployments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("deployment", sa.String(100), nullable=False),
        sa.Column("candidate", sa.String(100), nullable=False),
        sa.Column("champion", sa.String(100), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("bake_seconds", sa.Float(), nullable=False),
        sa.Column("min_requests", sa.Integer(), nullable=False),
        sa.Column("guardrails", sa.JSON(), nullable=False),
        sa.Column("webhook", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("step_started_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
    )
    op.create_index("ix_rollouts_deployment", "rollouts", ["deployment"])
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("guardrails", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_events"),
    )
    op.create_index("ix_rollout_events_rollout_id", "rollout_events", ["rollout_id"])


def downgrade() -> None:
    op.drop_table("rollout_events")
    op.drop_table("rollouts")
