"""What each stored file is (dimensions, duration, rotation...), found when it was stored.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server._migrations import missing_columns

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for media stored before probing: they show no figures.
    if missing_columns("media", ["probe"]):
        with op.batch_alter_table("media") as batch:
            batch.add_column(sa.Column("probe", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.drop_column("probe")
