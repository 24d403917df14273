"""What one server process holds: settings, database, presence, events, limits, counters."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from core import ServerConfig
from server._hub import EventHub
from server._limits import KeyedLocks, SlidingWindow
from server._presence import Presence
from server._probe import Prober


@dataclass(frozen=True)
class CachedManifest:
    etag: str
    body: bytes
    version: int
    assets: frozenset[str]


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
    hub: EventHub
    presence: Presence
    pairing_per_ip: SlidingWindow
    pairing_per_hardware: SlidingWindow
    claim_failures: SlidingWindow
    heartbeat_limit: SlidingWindow
    prober: Prober
    auth_failures: SlidingWindow  # per client address
    sse_connects: SlidingWindow  # per client address
    counters: Counters = field(default_factory=Counters)
    auth_lookups: KeyedLocks = field(default_factory=KeyedLocks)  # per client address
    # One writer for content and assignments: publishing, conflict checks and version bumps
    # happen inside it, so two concurrent requests cannot both pass a check.
    content_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Storing and deleting media files: a deletion cannot remove a file an upload just adopted.
    media_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    upload_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    manifests: dict[str, CachedManifest] = field(default_factory=dict)
    pairing_events: dict[str, asyncio.Event] = field(default_factory=dict)
    # Hot-path caches, so a heartbeat normally touches no database at all: token hash →
    # device (dropped on rotation and revocation), and devices with undelivered commands.
    auth_cache: dict[str, AuthedDevice] = field(default_factory=dict)
    devices_with_commands: set[str] = field(default_factory=set)
    presence_writes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def forget_device_auth(self, device_id: str) -> None:
        for token_hash in [h for h, d in self.auth_cache.items() if d.id == device_id]:
            del self.auth_cache[token_hash]

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


def client_address(request: Request) -> str:
    """The caller's address: the peer, or what a trusted proxy forwarded
    (``server.forwarded_allow_ips``; uvicorn rewrites the scope before the app sees it)."""
    return request.client.host if request.client else "unknown"


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.signage
    return state
