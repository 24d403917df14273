"""Storage: SQLAlchemy Core tables and the async engine (SQLite with WAL by default).

Times are stored as UNIX seconds (floats) so the schema means the same on SQLite and
PostgreSQL; JSON bodies are the validated wire models, dumped by alias.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger("signage.server")
metadata = MetaData()
WRITE_OPTION = "signage_write"

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
    Column("token_expires_at", Float),  # null: a token from before expiry existed
    Column("previous_token_expires_at", Float),
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

# Sync groups: a group's epoch, in a table of its own (migration 0008).
group_sync = Table(
    "group_sync",
    metadata,
    Column("group_id", String(64), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("epoch", Float, nullable=False),  # group time (UNIX s) at which the cycles begin
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
    Column("size", BigInteger, nullable=False),
    Column("mime", String(64), nullable=False),
    Column("name", String(255)),
    Column("created_at", Float, nullable=False),
    Column("probe", JSON),  # server._probe.MediaProbe; null for media stored before probing
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
    Column("received_at", Float, nullable=False, index=True),
    # Set once the row is added to daily_impressions; the row itself stays until it is older
    # than server.impressions_keep_days, so retried batches are still recognised.
    Column("summed_at", Float, index=True),
)

daily_impressions = Table(
    "impression_days",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # UTC date of the impression, YYYY-MM-DD
    Column("layout", String(64), primary_key=True),
    Column("zone", String(64), primary_key=True),
    Column("item", String(64), primary_key=True),
    Column("plays", Integer, nullable=False),  # "start" events
    Column("played_ms", BigInteger, nullable=False),  # durations of "end" events
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64)),  # what the client announced, checked at completion
    Column("name", String(255)),
    Column("ranges", JSON, nullable=False),  # received [start, end) pairs, merged
    # open | completing (one replica checks and stores it, until expires_at) | completed
    Column("status", String(10), nullable=False),
    Column("media_sha256", String(64)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)


# An interrupt targets one device or one group (exactly one of the two ids is set). It leaves
# the manifests once cleared or past its end; the rows stay as history.
interrupts = Table(
    "interrupts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("device_id", String(64), index=True),
    Column("group_id", String(64), index=True),
    Column("layout", String(64), nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float),
    Column("created_at", Float, nullable=False),
    Column("cleared_at", Float),
)

# A power schedule (protocol.PowerSchedule) per device or group: "device:<id>", "group:<id>".
power_schedules = Table(
    "power_schedules",
    metadata,
    Column("target", String(80), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)


console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie's secret
    Column("admin_token_hash", String(64), nullable=False),  # a new admin token ends it
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)


def database_url(data_dir: Path, configured: str | None) -> str:
    return configured or f"sqlite+aiosqlite:///{data_dir / 'server.sqlite3'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never wait for the writer; busy_timeout: writers queue instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # SQLAlchemy issues BEGIN itself (see _sqlite_begin), so the driver must not.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # A write transaction takes the write lock up front. In WAL mode a deferred transaction
    # that reads and then writes fails at once (SQLITE_BUSY, no waiting) if another writer
    # committed in between; BEGIN IMMEDIATE queues behind it instead.
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def writer_of(engine: AsyncEngine) -> AsyncEngine:
    """The same engine, for transactions that write (``BEGIN IMMEDIATE`` on SQLite)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def new_engine(url: str) -> AsyncEngine:
    """An engine on ``url`` as the server uses it, the schema as it is."""
    engine = create_async_engine(url, **_pool_options(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database server cannot be reached (down, restarting, the
    connection cut), rather than that a statement failed."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError, PoolTimeout, ConnectionError))


async def database_answers(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


def _pool_options(url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        # Connections are cheap to hold and slow to open; a reconnect wave of event streams
        # queues for them rather than failing. pre_ping: a restarted database is survived;
        # a connect that gets no answer (a hung or unroutable server) fails after 5 s.
        return {
            "pool_size": 10,
            "max_overflow": 20,
            "pool_timeout": 60,
            "pool_pre_ping": True,
            "connect_args": {"timeout": 5},
        }
    return {}
