"""Device tokens expire: when the current and the previous token stop working.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server._migrations import missing_columns

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = ("token_expires_at", "previous_token_expires_at")


def upgrade() -> None:
    # Null: a token issued before tokens expired (rotated at the device's next heartbeat).
    with op.batch_alter_table("devices") as batch:
        for name in missing_columns("devices", COLUMNS):
            batch.add_column(sa.Column(name, sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
