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
from server._bus import Bus, Leases, LocalBus, LocalLeases
from server._hub import EventHub, Hub
from server._limits import Clock, SlidingWindow, Window
from server._manifests import LocalManifests, ManifestStore
from server._presence import Presence, PresenceStore

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


async def _nothing() -> None:
    return None


async def open_shared(config: ServerConfig, clock: Clock) -> Shared:
    if config.redis_url is not None:
        from server._redis_state import open_redis

        return await open_redis(config.redis_url.get_secret_value(), config, clock)
    interval = heartbeat_interval(config)
    return Shared(
        hub=EventHub(config.event_replay_size),
        presence=Presence(
            offline_after_s(config),
            beats=BEATS_PER_HALF_INTERVAL,
            beat_window_s=interval / 2,
            clock=clock,
        ),
        manifests=LocalManifests(),
        bus=LocalBus(),
        leases=LocalLeases(),
        window=lambda _name, limit, window_s: SlidingWindow(limit, window_s, clock),
        close=_nothing,
    )
