"""The schema of the release before migrations, as its ``server/_db.py`` declared it (commit
c9f3cbe), for the tests that upgrade a database that release made. Frozen: never edit it to
follow the current schema."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, MetaData, String, Table

metadata = MetaData()

devices = Table(
    "devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("hardware_id", String(128), nullable=False),
    Column("model", String(128)),
    Column("resolution", String(16)),
    Column("player_version", String(32)),
    Column("token_hash", String(64), unique=True),
    # The previous token stays valid until the rotated one is first used: a lost rotation
    # response must not lock the device out.
    Column("previous_token_hash", String(64), unique=True),
    Column("group_id", String(64), ForeignKey("groups.id", ondelete="SET NULL")),
    Column("schedule", JSON),
    Column("default_layout", String(64)),
    Column("timezone", String(64)),
    Column("status", String(8), nullable=False, default="offline"),
    Column("last_seen", Float),
    Column("manifest_version", Integer, nullable=False, default=0),
    Column("manifest_digest", String(64)),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("screenshot_at", Float),
)

groups = Table(
    "groups",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("schedule", JSON),
    Column("default_layout", String(64)),
    Column("timezone", String(64)),
)

pairings = Table(
    "pairings",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("code", String(6), nullable=False, index=True),
    Column("hardware_id", String(128), nullable=False, index=True),
    Column("request", JSON, nullable=False),
    Column("poll_token_hash", String(64), nullable=False),
    Column("status", String(10), nullable=False),  # pending | claimed | consumed
    Column("device_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

media = Table(
    "media",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("mime", String(64), nullable=False),
    Column("name", String(255)),
    Column("created_at", Float, nullable=False),
)

playlists = Table(
    "playlists",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

layouts = Table(
    "layouts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

commands = Table(
    "commands",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("name", String(32), nullable=False),
    Column("args", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("completed_at", Float),
    Column("result", JSON),
    Index("ix_commands_device_pending", "device_id", "completed_at"),
)

impressions = Table(
    "impressions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("device_id", String(64), nullable=False, index=True),
    Column("body", JSON, nullable=False),
    Column("received_at", Float, nullable=False),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64)),  # what the client announced, checked at completion
    Column("name", String(255)),
    Column("ranges", JSON, nullable=False),  # received [start, end) pairs, merged
    Column("status", String(10), nullable=False),  # open | completed
    Column("media_sha256", String(64)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)


def release_schema_sql() -> str:
    """The release's ``create_all`` on SQLite, as one script."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)))
        statements += [str(CreateIndex(i).compile(dialect=dialect)) for i in table.indexes]
    return ";\n".join(statements) + ";\n"
