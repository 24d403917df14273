"""The state replicas of one server share, chosen once at start: in this process (the default:
one server process), or in Redis (``server.redis_url``: any number of processes, on any number
of machines, behind a load balancer, on one database).

Every piece has one interface and two implementations, so the routes never know which runs:
the event hub (``server._hub``), presence (``server._presence``), built manifests
(``server._manifests``), rate limits (``server._limits``), the bus with its wake-ups and
leases (``server._bus``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core import ServerConfig
from server._bus import Bus, Leases
from server._hub import Hub
from server._limits import Window
from server._manifests import ManifestStore
from server._presence import PresenceStore

# A device may send two heartbeats per half interval: a restarting device may send one early,
# a storm may not.
BEATS_PER_HALF_INTERVAL = 2


@dataclass
class Shared:
    hub: Hub
    presence: PresenceStore
    manifests: ManifestStore
    bus: Bus
    leases: Leases
    window: Callable[[str, int, float], Window]  # (name, limit, window_s): a named limit
    close: Callable[[], Awaitable[None]]


def heartbeat_interval(config: ServerConfig) -> int:
    return max(5, round(config.heartbeat_interval_s))


def offline_after_s(config: ServerConfig) -> float:
    return heartbeat_interval(config) * config.offline_after_missed
