"""The root revision every capability's first migration builds on.

Each capability (lifecycle, batch, monitoring, ...) owns a migration chain that starts
from here, so ``store.db`` upgrades to ``heads``.

Revision ID: 0001_base
Revises:
"""

revision = "0001_base"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
