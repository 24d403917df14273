"""Who is online: kept in memory (or Redis), written to the database only on transitions.

A device is online from its first heartbeat (or event stream) until it has been silent for
``offline_after_missed`` heartbeat intervals; the sweeper decides that, never a closing
connection, so a device reconnecting while its old connection closes late cannot flap
offline. ``last_seen`` is persisted at most once per ``LAST_SEEN_WRITE_S``. Heartbeats are
limited here too (``beats`` per ``beat_window_s``), since each one is a presence update.

``Presence`` keeps this in the process; ``server._redis_state.RedisPresence`` keeps it in Redis
for several replicas, behind the same interface (``PresenceStore``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from server._limits import Clock, SlidingWindow

LAST_SEEN_WRITE_S = 300.0

Transition = Literal["online", "offline"]


@dataclass
class DeviceLive:
    last_seen: float
    last_written: float
    online: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    transition: Transition | None
    write_last_seen: bool  # the database's last_seen is due for an update
    retry_after: int = 0  # a heartbeat refused as too frequent (nothing recorded)
    # The device's stored manifest ETag, when the store reads it in the same step (Redis:
    # the same script, one round trip per heartbeat); None: ask the ManifestStore.
    manifest_etag: str | None = None


class PresenceStore(Protocol):
    offline_after_s: float

    async def seen(self, device_id: str, now: float) -> Seen:
        """Record activity (an event stream opened)."""
        ...

    async def beat(self, device_id: str, now: float, metrics: dict[str, Any]) -> Seen:
        """A heartbeat: refused (``retry_after``) when too frequent, else seen with metrics."""
        ...

    async def touch(self, device_id: str, now: float) -> None:
        """Note activity of a device already online (never brings one online)."""
        ...

    async def expired(self, now: float) -> list[tuple[str, float]]:
        """Take silent devices offline; (device_id, last_seen) of each, to one caller only."""
        ...

    async def forget(self, device_id: str) -> None: ...

    async def live(self, device_ids: Iterable[str]) -> dict[str, DeviceLive]:
        """The online ones among ``device_ids``."""
        ...

    async def online_count(self) -> int: ...

    async def restore(self, device_ids: Iterable[str], now: float) -> None:
        """Devices the database has online but this store does not know (it was lost): online
        from ``now``, so those that stay silent are swept offline, never left online."""
        ...


class Presence:
    """A ``PresenceStore`` in this process's memory."""

    def __init__(
        self, offline_after_s: float, *, beats: int, beat_window_s: float, clock: Clock
    ) -> None:
        self.offline_after_s = offline_after_s
        self._live: dict[str, DeviceLive] = {}
        self._beats = SlidingWindow(beats, beat_window_s, clock)

    def _seen(self, device_id: str, now: float) -> Seen:
        live = self._live.get(device_id)
        if live is None or not live.online:
            self._live[device_id] = DeviceLive(last_seen=now, last_written=now)
            return Seen("online", True)
        live.last_seen = now
        if now - live.last_written >= LAST_SEEN_WRITE_S:
            live.last_written = now
            return Seen(None, True)
        return Seen(None, False)

    async def seen(self, device_id: str, now: float) -> Seen:
        return self._seen(device_id, now)

    async def beat(self, device_id: str, now: float, metrics: dict[str, Any]) -> Seen:
        wait = await self._beats.hit(device_id)
        if wait:
            return Seen(None, False, retry_after=wait)
        seen = self._seen(device_id, now)
        self._live[device_id].metrics = metrics
        return seen

    async def touch(self, device_id: str, now: float) -> None:
        live = self._live.get(device_id)
        if live is not None and live.online:
            live.last_seen = max(live.last_seen, now)

    async def expired(self, now: float) -> list[tuple[str, float]]:
        gone = []
        for device_id, live in self._live.items():
            if live.online and now - live.last_seen > self.offline_after_s:
                live.online = False
                gone.append((device_id, live.last_seen))
        for device_id, _ in gone:
            del self._live[device_id]
        return gone

    async def forget(self, device_id: str) -> None:
        self._live.pop(device_id, None)

    async def live(self, device_ids: Iterable[str]) -> dict[str, DeviceLive]:
        return {i: live for i in device_ids if (live := self._live.get(i)) is not None}

    async def online_count(self) -> int:
        return sum(1 for live in self._live.values() if live.online)

    async def restore(self, device_ids: Iterable[str], now: float) -> None:
        for device_id in device_ids:
            if device_id not in self._live:
                self._live[device_id] = DeviceLive(last_seen=now, last_written=now)
