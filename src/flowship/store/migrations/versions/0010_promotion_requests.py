"""Promotion requests and their approvals.

Revision ID: 0010_promotion_requests
Revises: 0001_base
"""

import sqlalchemy as sa
from alembic import op

from flowship.store.tables import UTCDateTime

revision = "0010_promotion_requests"
down_revision = "0001_base"
branch_labels = ("requests",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "promotion_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=False),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("base_version", sa.String(32), nullable=True),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("gates", sa.JSON, nullable=True),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("closed_by", sa.String(128), nullable=True),
        sa.Column("close_reason", sa.Text, nullable=True),
    )
    op.create_index("ix_promotion_requests_model", "promotion_requests", ["model"])
    op.create_index("ix_promotion_requests_state", "promotion_requests", ["state"])
    op.create_table(
        "promotion_approvals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("promotion_requests.id"), nullable=False),
        sa.Column("approver", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        # One person counts once, even if two of their approvals race.
        sa.UniqueConstraint("request_id", "approver", name="uq_promotion_approvals_request_id"),
    )


def downgrade() -> None:
    op.drop_table("promotion_approvals")
    op.drop_index("ix_promotion_requests_state", "promotion_requests")
    op.drop_index("ix_promotion_requests_model", "promotion_requests")
    op.drop_table("promotion_requests")
