"""The simulator's clocks: per-device wall offsets, pacing, and the fast settle."""

from __future__ import annotations

import asyncio
import time

import pytest

from player import NS_PER_S, MediaClock, VirtualClock
from tools.sim._clock import (
    DeviceClock,
    RealDeviceClock,
    SimClock,
    TimeDriver,
    device_clock,
    make_clock,
)


def test_make_clock_is_real_only_at_speed_one() -> None:
    assert isinstance(make_clock(1.0), MediaClock)
    assert isinstance(make_clock(None), SimClock)
    assert isinstance(make_clock(10.0), SimClock)


def test_device_clocks_share_media_time_but_not_wall_time() -> None:
    shared = SimClock(start_ns=0, wall_start_ns=1_000 * NS_PER_S)
    a = device_clock(shared, wall_offset_ns=5 * NS_PER_S)
    b = device_clock(shared)
    assert isinstance(a, DeviceClock) and hasattr(a, "advance_to")
    assert a.now_ns() == b.now_ns() == 0
    assert a.wall_ns() - b.wall_ns() == 5 * NS_PER_S
    a.step_wall(3600 * NS_PER_S)
    assert a.wall_ns() - b.wall_ns() == 3605 * NS_PER_S
    real = device_clock(MediaClock())
    assert isinstance(real, RealDeviceClock) and not hasattr(real, "advance_to")


async def test_sim_clock_wakes_sleepers_in_order_at_their_deadlines() -> None:
    clock = SimClock(start_ns=0)
    woke: list[tuple[str, int]] = []

    async def sleeper(name: str, at: int) -> None:
        await clock.sleep_until(at)
        woke.append((name, clock.now_ns()))
        if name == "a":  # work scheduled at a deadline runs before time moves on
            await clock.sleep_until(at + 5)
            woke.append(("a2", clock.now_ns()))

    tasks = [asyncio.create_task(sleeper("b", 20)), asyncio.create_task(sleeper("a", 10))]
    await clock.advance_to(100)
    await asyncio.gather(*tasks)
    assert woke == [("a", 10), ("a2", 15), ("b", 20)]
    assert clock.now_ns() == 100


async def test_sim_clock_waits_for_busy_work() -> None:
    clock = SimClock(start_ns=0)
    done: list[int] = []

    async def decode() -> None:
        async with clock.busy():
            await asyncio.to_thread(time.sleep, 0.02)
        done.append(clock.now_ns())

    task = asyncio.create_task(decode())
    await clock.advance_to(50)
    await task
    assert done == [0]  # time did not run past the decode


async def test_paced_driver_follows_real_time() -> None:
    clock = SimClock(start_ns=0)
    driver = TimeDriver(clock, 20.0)
    began = time.monotonic()
    await driver.run_until(2 * NS_PER_S)  # 2 media seconds at x20: 0.1 s
    elapsed = time.monotonic() - began
    assert clock.now_ns() == 2 * NS_PER_S
    assert elapsed >= 0.09


async def test_max_driver_jumps_and_run_while_stops_on_condition() -> None:
    clock = SimClock(start_ns=0)
    driver = TimeDriver(clock, None)
    await driver.run_until(3600 * NS_PER_S)
    assert clock.now_ns() == 3600 * NS_PER_S
    flag = asyncio.Event()

    async def setter() -> None:
        await clock.sleep_until(3601 * NS_PER_S)
        flag.set()

    task = asyncio.create_task(setter())
    assert await driver.run_while(flag, 4000 * NS_PER_S)
    assert clock.now_ns() < 3602 * NS_PER_S
    await task
    assert not await driver.run_while(asyncio.Event(), 3700 * NS_PER_S)
    assert clock.now_ns() == 3700 * NS_PER_S


def test_a_real_clock_only_runs_at_speed_one() -> None:
    with pytest.raises(ValueError, match="speed 1"):
        TimeDriver(MediaClock(), None)
    assert not TimeDriver(MediaClock(), 1.0).virtual
    assert TimeDriver(VirtualClock(), 2.0).virtual
