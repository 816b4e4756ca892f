"""Alert delivery with a lease: who claimed an alert for sending, and until when.

Revision ID: 0007_alert_delivery
Revises: 0004_monitoring
"""

import sqlalchemy as sa
from alembic import op

from flowship.store.tables import UTCDateTime

revision = "0007_alert_delivery"
down_revision = "0004_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitor_alerts") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(300), nullable=True))
        batch.add_column(sa.Column("claim_expires_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_alerts") as batch:
        batch.drop_column("claim_expires_at")
        batch.drop_column("claimed_by")
