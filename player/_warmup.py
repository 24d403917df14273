"""Warming a switch frame's memory shortly before its deadline (see ``zones._memory``).

The frame loop sleeps between deadlines. Before a frame at which a zone switches item it wakes
``lead_ns`` early, touches the memory that frame will copy (the staged item, the canvas, the
screen), and sleeps again until the deadline, so the copy at the deadline runs warm. The lead
follows how long warming takes (between 4 and 50 ms). Only on the real clock: under a virtual
clock sleeping costs nothing and there is nothing to win.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from player._clock import NS_PER_MS, Clock

MIN_LEAD_NS = 4 * NS_PER_MS
MAX_LEAD_NS = 50 * NS_PER_MS


class _Switching(Protocol):
    def switching_zones(self, at_ns: int) -> list[str]: ...


class _Warmable(Protocol):
    def warm(self, zone_ids: list[str]) -> None: ...


class SwitchWarmup:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.enabled = not hasattr(clock, "advance_to")  # a virtual clock jumps: nothing to warm
        self.lead_ns = 2 * MIN_LEAD_NS
        self.warmed = 0  # switch frames warmed (for tests and benchmarks)

    async def before(
        self,
        wanted_ns: int | None,
        presentation: _Switching | None,
        compositor: _Warmable,
        wake: asyncio.Event,
    ) -> None:
        """If the frame at ``wanted_ns`` switches a zone and there is time, warm it first.

        Returns early (having done nothing) when ``wake`` is set meanwhile: the caller's own
        sleep then returns at once and the loop looks at what woke it.
        """
        if not self.enabled or wanted_ns is None or presentation is None:
            return
        if wanted_ns - self._clock.now_ns() <= self.lead_ns + MIN_LEAD_NS:
            return  # too close: the frame loop is busy (animation) and memory is warm anyway
        zones = presentation.switching_zones(wanted_ns)
        if not zones:
            return
        if await self._clock.sleep_until(wanted_ns - self.lead_ns, wake):
            return
        started = self._clock.now_ns()
        compositor.warm(zones)
        took = self._clock.now_ns() - started
        self.warmed += 1
        # Twice what warming took, so it ends well before the deadline; smoothed, bounded.
        target = 2 * took + MIN_LEAD_NS
        self.lead_ns = max(MIN_LEAD_NS, min(MAX_LEAD_NS, (3 * self.lead_ns + target) // 4))
