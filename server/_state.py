"""What one server process holds: settings, database, shared state, limits, counters.

The state several replicas must agree on (presence, events, manifests, limits, wake-ups)
lives behind interfaces: in this process by default, in Redis with ``server.redis_url``
(``server._shared``). What stays here is either per process by nature (open streams, the
token cache, counters) or kept in step with the other replicas through the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.types import Scope

from core import ServerConfig
from server._bus import Bus, Leases, Wakeups
from server._db import commands, devices
from server._hub import Hub
from server._limits import KeyedBatches, Window
from server._manifests import ManifestStore
from server._outages import Outages
from server._presence import PresenceStore
from server._probe import Prober
from server._sse import Pings

log = logging.getLogger("signage.server")

# PostgreSQL advisory lock taken by every content transaction, on every replica.
CONTENT_LOCK = 0x5349_474E_4354  # "SIGNCT"
LOOKUP_BATCH_MAX = 500  # tokens in one query (SQLite and PostgreSQL take far more)


@dataclass(frozen=True)
class AuthedDevice:
    """The caller of a device route, as the token lookup found it."""

    id: str
    token_hash: str  # of the token presented
    expires_at: float | None  # of that token; None: issued before tokens expired
    previous: bool = False  # the presented token was rotated away and awaits retirement


@dataclass
class Counters:
    """Process-wide counters for /metrics; labels are aggregates, never device ids."""

    values: Counter[str] = field(default_factory=Counter)

    def inc(self, name: str, amount: int = 1) -> None:
        self.values[name] += amount


@dataclass
class ServerState:
    config: ServerConfig
    data_dir: Path
    engine: AsyncEngine
    writer: AsyncEngine  # the same pool; its transactions take the write lock first
    clock: Callable[[], float]
    admin_token_hash: str
    hub: Hub
    presence: PresenceStore
    manifests: ManifestStore
    bus: Bus
    wakeups: Wakeups
    leases: Leases
    pairing_per_ip: Window
    pairing_per_hardware: Window
    claim_failures: Window
    prober: Prober
    auth_failures: Window  # per client address
    sse_connects: Window  # per client address
    signin_failures: Window  # the web console's, per client address
    time_exchanges: Window  # a sync group member's clock exchanges, per device
    counters: Counters = field(default_factory=Counters)
    # Token lookups that missed auth_cache, batched per client address.
    auth_lookups: KeyedBatches[str, AuthedDevice] = field(
        default_factory=lambda: KeyedBatches(LOOKUP_BATCH_MAX)
    )
    # Content writes one at a time in this process (content_transaction adds the database's
    # lock for the other replicas).
    content_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    upload_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Hot-path cache, so a heartbeat normally touches no database at all: token hash →
    # device, dropped on rotation and revocation (on every replica, through the bus).
    auth_cache: dict[str, AuthedDevice] = field(default_factory=dict)
    # Devices with undelivered commands, kept in step by the bus ("commands" messages).
    devices_with_commands: set[str] = field(default_factory=set)
    presence_writes: dict[str, dict[str, Any]] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    outages: Outages = field(default_factory=Outages)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    pings: Pings = field(init=False)  # the keep-alive ticker every event stream shares

    def __post_init__(self) -> None:
        self.pings = Pings(self.config.sse_ping_s)
        self.bus.on("forget_auth", lambda p: self._forget_auth(p["device"]))
        self.bus.on("commands", lambda p: self.devices_with_commands.add(p["device"]))
        self.bus.on("resync", lambda _p: self._resync())

    def _resync(self) -> None:
        """The bus was lost for a while (on any replica): revocations and command notices
        sent meanwhile never arrived, so the token cache is dropped and the devices with
        commands are read again."""
        self.auth_cache.clear()
        task = asyncio.get_running_loop().create_task(self.load_pending_commands())
        self._tasks.add(task)
        task.add_done_callback(self._loaded)

    def _loaded(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None and self.outages.noted(exc) is None:
            log.error("reading pending commands failed", exc_info=exc)

    async def restore_presence(self) -> None:
        """After Redis was lost (it may have restarted empty): the devices the database has
        online are online again from now, so the sweeper can take the silent ones offline."""
        async with self.engine.connect() as conn:
            online = await conn.execute(
                select(devices.c.id).where(
                    devices.c.status == "online", devices.c.revoked_at.is_(None)
                )
            )
            ids = [row.id for row in online]
        await self.presence.restore(ids, self.clock())

    async def load_pending_commands(self) -> None:
        """Devices with undelivered commands, from the database."""
        now = self.clock()
        async with self.engine.connect() as conn:
            pending = await conn.execute(
                select(commands.c.device_id)
                .where(commands.c.completed_at.is_(None), commands.c.expires_at > now)
                .distinct()
            )
            self.devices_with_commands.update(r.device_id for r in pending)

    def _forget_auth(self, device_id: str) -> None:
        for token_hash in [h for h, d in self.auth_cache.items() if d.id == device_id]:
            del self.auth_cache[token_hash]

    async def forget_device_auth(self, device_id: str) -> None:
        """The device's tokens changed: every replica looks them up again (this one at once,
        the others when the message reaches them)."""
        self._forget_auth(device_id)
        await self.bus.send("forget_auth", {"device": device_id})

    async def note_commands(self, device_id: str) -> None:
        """The device has a new command: every replica's heartbeats look for it."""
        self.devices_with_commands.add(device_id)
        await self.bus.send("commands", {"device": device_id})

    @contextlib.asynccontextmanager
    async def content_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction for content, assignments, media and pairing codes, one at a
        time on every replica: checks (conflicts, references, free codes), writes and version
        bumps cannot interleave. SQLite's write lock already spans processes; PostgreSQL
        takes an advisory lock until the commit."""
        async with self.content_lock, self.writer.begin() as conn:
            await lock_content(conn)
            yield conn

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def screenshots_dir(self) -> Path:
        return self.data_dir / "screenshots"

    def heartbeat_interval(self) -> int:
        return max(5, round(self.config.heartbeat_interval_s))


async def lock_content(conn: AsyncConnection) -> None:
    """The other replicas' half of the content lock, held until ``conn`` commits."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CONTENT_LOCK})


def client_address(request: Request) -> str:
    """The caller's address: the peer, or what a trusted proxy forwarded
    (``server.forwarded_allow_ips``; uvicorn rewrites the scope before the app sees it)."""
    return scope_address(request.scope)


def scope_address(scope: Scope) -> str:
    """``client_address`` of a request's ASGI scope."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.signage
    return state
