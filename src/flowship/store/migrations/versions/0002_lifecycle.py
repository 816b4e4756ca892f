"""The lifecycle history table.

Revision ID: 0002_lifecycle
Revises: 0001_base
"""

import sqlalchemy as sa
from alembic import op

from flowship.store.tables import UTCDateTime

revision = "0002_lifecycle"
down_revision = "0001_base"
branch_labels = ("lifecycle",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lifecycle_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=False),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("gates", sa.JSON, nullable=True),
    )
    op.create_index("ix_lifecycle_events_model", "lifecycle_events", ["model"])


def downgrade() -> None:
    op.drop_index("ix_lifecycle_events_model", "lifecycle_events")
    op.drop_table("lifecycle_events")
