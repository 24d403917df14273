"""Proof of play summed per day; raw impressions marked when summed and pruned by age.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server._migrations import missing_columns, missing_index, missing_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if missing_columns("impressions", ["summed_at"]):
        with op.batch_alter_table("impressions") as batch:
            batch.add_column(sa.Column("summed_at", sa.Float))
    for column in ("received_at", "summed_at"):
        if missing_index("impressions", f"ix_impressions_{column}"):
            op.create_index(f"ix_impressions_{column}", "impressions", [column])
    if missing_table("impression_days"):
        op.create_table(
            "impression_days",
            sa.Column("device_id", sa.String(64), primary_key=True),
            sa.Column("day", sa.String(10), primary_key=True),
            sa.Column("layout", sa.String(64), primary_key=True),
            sa.Column("zone", sa.String(64), primary_key=True),
            sa.Column("item", sa.String(64), primary_key=True),
            sa.Column("plays", sa.Integer, nullable=False),
            sa.Column("played_ms", sa.BigInteger, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("impression_days")
    op.drop_index("ix_impressions_summed_at", "impressions")
    op.drop_index("ix_impressions_received_at", "impressions")
    with op.batch_alter_table("impressions") as batch:
        batch.drop_column("summed_at")
