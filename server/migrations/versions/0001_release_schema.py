"""The schema of the first release, as its create_all made it.

Databases from before migrations existed are adopted at this revision (``server._migrations``)
and brought up from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _content_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("schedule", sa.JSON),
        sa.Column("default_layout", sa.String(64)),
        sa.Column("timezone", sa.String(64)),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("hardware_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128)),
        sa.Column("resolution", sa.String(16)),
        sa.Column("player_version", sa.String(32)),
        sa.Column("token_hash", sa.String(64), unique=True),
        sa.Column("previous_token_hash", sa.String(64), unique=True),
        sa.Column("group_id", sa.String(64), sa.ForeignKey("groups.id", ondelete="SET NULL")),
        sa.Column("schedule", sa.JSON),
        sa.Column("default_layout", sa.String(64)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("last_seen", sa.Float),
        sa.Column("manifest_version", sa.Integer, nullable=False),
        sa.Column("manifest_digest", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.Column("screenshot_at", sa.Float),
    )
    op.create_table(
        "pairings",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("code", sa.String(6), nullable=False),
        sa.Column("hardware_id", sa.String(128), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("poll_token_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("device_id", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_pairings_code", "pairings", ["code"])
    op.create_index("ix_pairings_hardware_id", "pairings", ["hardware_id"])
    op.create_table(
        "media",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("mime", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    for name in ("playlists", "layouts", "schedules"):
        _content_table(name)
    op.create_table(
        "commands",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("completed_at", sa.Float),
        sa.Column("result", sa.JSON),
    )
    op.create_index("ix_commands_device_pending", "commands", ["device_id", "completed_at"])
    op.create_table(
        "impressions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )
    op.create_index("ix_impressions_device_id", "impressions", ["device_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("name", sa.String(255)),
        sa.Column("ranges", sa.JSON, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("media_sha256", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "uploads",
        "impressions",
        "commands",
        "schedules",
        "layouts",
        "playlists",
        "media",
        "pairings",
        "devices",
        "groups",
    ):
        op.drop_table(name)
