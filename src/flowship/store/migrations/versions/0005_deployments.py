"""Deployments: the revisions of each named deployment.

Revision ID: 0005_deployments
Revises: 0001_base
"""

import sqlalchemy as sa
from alembic import op

from flowship.store.tables import UTCDateTime

revision = "0005_deployments"
down_revision = "0001_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_revisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deployment_revisions"),
        sa.UniqueConstraint("name", "revision", name="uq_deployment_revisions_name_revision"),
    )
    op.create_index("ix_deployment_revisions_name", "deployment_revisions", ["name"])


def downgrade() -> None:
    op.drop_table("deployment_revisions")
