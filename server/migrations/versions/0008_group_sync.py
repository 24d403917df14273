"""Sync groups: a group's epoch (the group time its members' cycles count from), in a table of
its own.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_sync",
        sa.Column(
            "group_id",
            sa.String(64),
            sa.ForeignKey("groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("epoch", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("group_sync")
