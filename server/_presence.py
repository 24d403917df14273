"""Who is online: kept in memory, written to the database only on transitions.

A device is online from its first heartbeat (or event stream) until it has been silent for
``offline_after_missed`` heartbeat intervals; the sweeper decides that, never a closing
connection, so a device reconnecting while its old connection closes late cannot flap
offline. ``last_seen`` is persisted at most once per ``LAST_SEEN_WRITE_S``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LAST_SEEN_WRITE_S = 300.0

Transition = Literal["online", "offline"]


@dataclass
class DeviceLive:
    last_seen: float
    last_written: float
    online: bool = True
    metrics: dict[str, Any] = field(default_factory=dict)


class Presence:
    def __init__(self, offline_after_s: float) -> None:
        self.offline_after_s = offline_after_s
        self._live: dict[str, DeviceLive] = {}

    def seen(self, device_id: str, now: float) -> tuple[Transition | None, bool]:
        """Record activity; return (transition, whether last_seen is due for a write)."""
        live = self._live.get(device_id)
        if live is None or not live.online:
            self._live[device_id] = DeviceLive(last_seen=now, last_written=now)
            return "online", True
        live.last_seen = now
        if now - live.last_written >= LAST_SEEN_WRITE_S:
            live.last_written = now
            return None, True
        return None, False

    def touch(self, device_id: str, now: float) -> None:
        """Note activity of a device already online (never brings one online)."""
        live = self._live.get(device_id)
        if live is not None and live.online:
            live.last_seen = max(live.last_seen, now)

    def record_metrics(self, device_id: str, metrics: dict[str, Any]) -> None:
        live = self._live.get(device_id)
        if live is not None:
            live.metrics = metrics

    def expired(self, now: float) -> list[tuple[str, float]]:
        """Mark silent devices offline; return (device_id, last_seen) of each one."""
        gone = []
        for device_id, live in self._live.items():
            if live.online and now - live.last_seen > self.offline_after_s:
                live.online = False
                gone.append((device_id, live.last_seen))
        for device_id, _ in gone:
            del self._live[device_id]
        return gone

    def forget(self, device_id: str) -> None:
        self._live.pop(device_id, None)

    def get(self, device_id: str) -> DeviceLive | None:
        return self._live.get(device_id)

    def online_count(self) -> int:
        return sum(1 for live in self._live.values() if live.online)
