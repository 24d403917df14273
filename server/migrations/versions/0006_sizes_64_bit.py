"""File sizes in 64 bits: a 2 GiB upload (server.max_upload_bytes) overflows PostgreSQL's
integer. (SQLite's INTEGER holds 64 bits already; its tables are rebuilt to say BIGINT, so the
schema reads the same on both engines.)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("media", "uploads")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("size", type_=sa.BigInteger, existing_nullable=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("size", type_=sa.Integer, existing_nullable=False)
