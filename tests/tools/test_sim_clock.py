"""The simulator's clocks: per-device wall offsets, pacing, and the fast settle."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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


async def test_a_drifting_device_clock_runs_fast_and_sleeps_on_its_own_time() -> None:
    shared = SimClock(start_ns=0, wall_start_ns=1_000 * NS_PER_S)
    fast = device_clock(shared, wall_offset_ns=2 * NS_PER_S, drift_ppm=100.0)
    await shared.advance(1_000 * NS_PER_S)
    assert fast.now_ns() == 1_000 * NS_PER_S + 100_000_000  # 100 ppm of 1000 s
    # Its system clock drifts along with it (an unsynchronised board).
    assert fast.wall_ns() - shared.wall_ns() == 2 * NS_PER_S + 100_000_000
    woke: list[int] = []

    async def sleeper() -> None:
        await fast.sleep_until(fast.now_ns() + 10 * NS_PER_S)
        woke.append(shared.now_ns())

    task = asyncio.create_task(sleeper())
    await shared.advance(20 * NS_PER_S)
    await task
    # Ten of its seconds are 9.999 of the shared clock's, rounded up: it never wakes early.
    assert woke == [1_000 * NS_PER_S + 9_999_000_100]
    assert fast.to_base_ns(fast.now_ns()) >= shared.now_ns()


@pytest.mark.parametrize("drift_ppm", [80.0, -95.0, 30.0, -60.0])
async def test_a_drifting_sleeper_wakes_reading_its_deadline_exactly(drift_ppm: float) -> None:
    """A frame loop asleep until a deadline must find that very instant on waking (the
    simulator checks every start for ``t == due``)."""
    shared = SimClock(start_ns=5 * NS_PER_S)
    clock = device_clock(shared, drift_ppm=drift_ppm)
    late = 0
    for step in range(1, 400):
        deadline = clock.now_ns() + step * 7_919_083
        task = asyncio.create_task(clock.sleep_until(deadline))
        await shared.advance_to(clock.to_base_ns(deadline))
        await task
        late += clock.now_ns() != deadline
        assert clock.now_ns() >= deadline
    assert late <= 1  # a fast clock may round up once in ten thousand


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


async def test_timeline_times_count_from_the_players_own_start(tmp_path: Path) -> None:
    # A player's ``t`` counts from the instant its start() reset its events, which can be tens
    # of milliseconds (a display opened under load) after the device began starting it: the
    # timeline must take that instant, not an earlier one, or every time of that screen shifts.
    import datetime as dt
    import json
    from types import SimpleNamespace
    from typing import Any, cast

    from core import load_settings
    from player import TimelineEvent, TimelineWriter
    from tools.sim._device import SimDevice

    shared = SimClock(start_ns=0, wall_start_ns=1_000 * NS_PER_S)
    clock = device_clock(shared, drift_ppm=-100.0)
    timeline = TimelineWriter(tmp_path / "timeline.jsonl")
    device = SimDevice(
        "sim-1", tmp_path / "sim-1", load_settings(None, env={}), clock=clock,
        server_url="http://127.0.0.1:9", make_display=lambda: cast(Any, None),
        timeline=timeline, run_t0_ns=0,
        on_code=lambda _device, _code: None,
    )  # fmt: skip
    await shared.advance(500 * NS_PER_S)
    player = SimpleNamespace(events=SimpleNamespace(t0_ns=clock.now_ns()))
    await shared.advance(37 * NS_PER_S)  # 37 s of the run's clock later...
    seconds = (clock.now_ns() - player.events.t0_ns) / NS_PER_S  # ...what the player says
    wall = dt.datetime.now(dt.UTC)
    event = TimelineEvent(t=seconds, wall=wall, device="sim-1", layout="a", zone="z",
                          item="i", event="start", due=seconds - 0.25)  # fmt: skip
    device._emit(cast(Any, player), event)
    timeline.close()
    record = json.loads((tmp_path / "timeline.jsonl").read_text())
    assert record["t"] == pytest.approx(537.0, abs=2e-6)
    assert record["due"] == pytest.approx(537.0 - 0.25 / (1 - 100e-6), abs=2e-6)
