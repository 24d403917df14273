"""Which shared state a server process runs on, chosen once at start: in this process (no
``server.redis_url``), or in Redis (``server._redis_state``, loaded only then)."""

from __future__ import annotations

from core import ServerConfig
from server._bus import LocalBus, LocalLeases
from server._hub import EventHub
from server._limits import Clock, SlidingWindow
from server._manifests import LocalManifests
from server._outages import Outages
from server._presence import Presence
from server._shared import BEATS_PER_HALF_INTERVAL, Shared, heartbeat_interval, offline_after_s


async def _nothing() -> None:
    return None


async def open_shared(config: ServerConfig, clock: Clock, outages: Outages) -> Shared:
    if config.redis_url is not None:
        from server._redis_state import open_redis

        return await open_redis(config.redis_url.get_secret_value(), config, clock, outages)
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
