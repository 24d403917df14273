"""What the sync client needs from the rest of the device, as an interface it can be handed.

``sync`` never imports the player or the cache: the daemon (``player/_daemon.py``) adapts them
to ``DeviceHost`` and tests pass a fake.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal, Protocol

from protocol import CacheMetrics, Manifest, PowerMetrics, QuarantinedItem, TimeStatus
from sync._timesync import ClockEstimate, MediaTime

PlayerStateName = Literal["stopping", "idle", "loading", "playing"]


@dataclass(frozen=True)
class HostStatus:
    """What the heartbeat reports about playback and the cache."""

    state: PlayerStateName = "idle"
    layout: str | None = None
    items: dict[str, str] = field(default_factory=dict)
    dropped_frames: int = 0
    cache: CacheMetrics = field(default_factory=CacheMetrics)
    power: PowerMetrics | None = None
    interrupt: str | None = None  # the interrupt on screen
    quarantined: list[QuarantinedItem] = field(default_factory=list)
    time: TimeStatus | None = None  # where group time comes from (a sync group's device)


class DeviceHost(Protocol):
    @property
    def clock(self) -> MediaTime:
        """The media clock: time exchanges are stamped and paced on it."""
        ...

    def system_time_ns(self) -> int | None:
        """The system clock (ns since the epoch) while NTP keeps it synchronised, else None."""
        ...

    def set_clock_estimate(self, estimate: ClockEstimate | None) -> None:
        """Group time as last estimated (None: no longer kept, e.g. the group left sync)."""
        ...

    def show_pairing(
        self, code: str, server_url: str, device_name: str, expires_at: dt.datetime
    ) -> None:
        """Put the pairing screen up (replacing any content)."""

    async def apply_manifest(self, manifest: Manifest) -> None:
        """Fetch the manifest's assets through the cache and hand it to the player.

        The player keeps showing what it shows until the new layout is playable.
        """

    def status(self) -> HostStatus: ...

    def feed_server_time(self, server_time: dt.datetime) -> None:
        """Server wall time, for the media clock until the system clock is NTP-synced."""

    async def reload(self) -> None:
        """Re-present the current manifest from scratch."""

    async def screenshot(self) -> bytes:
        """The composed frame as PNG."""

    async def clear_cache(self) -> None:
        """Drop cached assets the current manifest does not need."""

    def identify(self, text: str, seconds: float) -> None:
        """Show ``text`` over the content for ``seconds``."""

    async def display_power(self, on: bool, seconds: float | None) -> None:
        """Wake the screen or put it in standby, for ``seconds`` or until the power schedule
        next changes."""
