"""Warming a switch frame's memory before its deadline (player/_warmup.py)."""

from __future__ import annotations

import asyncio

from player import MediaClock, VirtualClock
from player._clock import NS_PER_MS
from player._warmup import MAX_LEAD_NS, MIN_LEAD_NS, SwitchWarmup


class Due:
    def __init__(self, zones: list[str]) -> None:
        self.zones = zones
        self.asked: list[int] = []

    def switching_zones(self, at_ns: int) -> list[str]:
        self.asked.append(at_ns)
        return self.zones


class Recorder:
    def __init__(self, clock: MediaClock, cost_ns: int = 0) -> None:
        self.clock = clock
        self.cost_ns = cost_ns
        self.calls: list[tuple[list[str], int]] = []

    def warm(self, zone_ids: list[str]) -> None:
        self.calls.append((list(zone_ids), self.clock.now_ns()))
        end = self.clock.now_ns() + self.cost_ns
        while self.clock.now_ns() < end:  # warming that takes time (a cold machine)
            pass


async def test_a_switch_frame_is_warmed_before_its_deadline() -> None:
    clock = MediaClock()
    warmup, compositor = SwitchWarmup(clock), Recorder(clock)
    deadline = clock.now_ns() + 60 * NS_PER_MS
    await warmup.before(deadline, Due(["main"]), compositor, asyncio.Event())
    assert [zones for zones, _ in compositor.calls] == [["main"]]
    assert compositor.calls[0][1] < deadline, "before the deadline, not at it"
    assert warmup.warmed == 1


async def test_nothing_is_warmed_without_a_switch_or_time_to_do_it() -> None:
    clock = MediaClock()
    warmup, compositor = SwitchWarmup(clock), Recorder(clock)
    await warmup.before(clock.now_ns() + 60 * NS_PER_MS, Due([]), compositor, asyncio.Event())
    await warmup.before(clock.now_ns() + NS_PER_MS, Due(["main"]), compositor, asyncio.Event())
    await warmup.before(None, Due(["main"]), compositor, asyncio.Event())
    await warmup.before(clock.now_ns() + 60 * NS_PER_MS, None, compositor, asyncio.Event())
    assert compositor.calls == []


async def test_a_wake_up_cancels_the_warm_up() -> None:
    clock = MediaClock()
    warmup, compositor = SwitchWarmup(clock), Recorder(clock)
    wake = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, wake.set)
    await warmup.before(clock.now_ns() + 5_000 * NS_PER_MS, Due(["main"]), compositor, wake)
    assert compositor.calls == [], "new content woke the loop: it looks at that first"


async def test_the_lead_follows_how_long_warming_takes_within_bounds() -> None:
    clock = MediaClock()
    slow = SwitchWarmup(clock)
    for _ in range(12):
        deadline = clock.now_ns() + 120 * NS_PER_MS
        await slow.before(
            deadline, Due(["a"]), Recorder(clock, cost_ns=20 * NS_PER_MS), asyncio.Event()
        )
    assert 40 * NS_PER_MS <= slow.lead_ns <= MAX_LEAD_NS, "twice the 20 ms warming takes"
    fast = SwitchWarmup(clock)
    for _ in range(12):
        deadline = clock.now_ns() + 30 * NS_PER_MS
        await fast.before(deadline, Due(["a"]), Recorder(clock), asyncio.Event())
    assert MIN_LEAD_NS <= fast.lead_ns < 6 * NS_PER_MS


def test_a_virtual_clock_is_never_warmed_for() -> None:
    assert SwitchWarmup(VirtualClock()).enabled is False
    assert SwitchWarmup(MediaClock()).enabled is True
