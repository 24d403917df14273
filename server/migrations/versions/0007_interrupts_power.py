"""Interrupts (a layout shown now on a device or group, until cleared or ended) and power
schedules of devices and groups. (A server of the last release before migrations made these
tables at start already: only missing ones are created.)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server._migrations import missing_table

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if missing_table("interrupts"):
        op.create_table(
            "interrupts",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("device_id", sa.String(64)),
            sa.Column("group_id", sa.String(64)),
            sa.Column("layout", sa.String(64), nullable=False),
            sa.Column("priority", sa.Integer, nullable=False),
            sa.Column("starts_at", sa.Float, nullable=False),
            sa.Column("ends_at", sa.Float),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("cleared_at", sa.Float),
        )
        op.create_index("ix_interrupts_device_id", "interrupts", ["device_id"])
        op.create_index("ix_interrupts_group_id", "interrupts", ["group_id"])
    if missing_table("power_schedules"):
        op.create_table(
            "power_schedules",
            sa.Column("target", sa.String(80), primary_key=True),
            sa.Column("body", sa.JSON, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("power_schedules")
    op.drop_index("ix_interrupts_group_id", "interrupts")
    op.drop_index("ix_interrupts_device_id", "interrupts")
    op.drop_table("interrupts")
