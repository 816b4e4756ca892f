"""Batch runs: a lease that a running run renews, so one whose process died on another
host stops counting as running when the lease expires.

Revision ID: 0008_run_lease
Revises: 0003_batch_runs
"""

import sqlalchemy as sa
from alembic import op

from flowship.store.tables import UTCDateTime

revision = "0008_run_lease"
down_revision = "0003_batch_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch_runs") as batch:
        batch.add_column(sa.Column("lease_until", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_runs") as batch:
        batch.drop_column("lease_until")
