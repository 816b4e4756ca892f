"""History first: a lifecycle change is recorded as pending before MLflow is written.

Revision ID: 0006_event_intent
Revises: 0002_lifecycle
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_event_intent"
down_revision = "0002_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lifecycle_events") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="done"))
        batch.add_column(sa.Column("undo", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lifecycle_events") as batch:
        batch.drop_column("undo")
        batch.drop_column("state")
