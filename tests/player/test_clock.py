"""Media clocks, the wall clock, timeline lines and the directory asset source."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import shutil
from pathlib import Path

import pytest

from core import CacheError
from player import (
    DirectoryAssets,
    MediaClock,
    TimelineEvent,
    TimelineWriter,
    VirtualClock,
    WallClock,
    read_timeline,
    sha256_of,
)
from tests.player.conftest import DATA, RED

S = 1_000_000_000


async def test_virtual_clock_visits_deadlines_in_order() -> None:
    clock = VirtualClock()
    woken: list[tuple[str, int]] = []

    async def sleeper(name: str, at: int) -> None:
        await clock.sleep_until(at)
        woken.append((name, clock.now_ns()))

    tasks = [asyncio.create_task(sleeper(n, t)) for n, t in (("b", 5 * S), ("a", 2 * S))]
    await clock.advance(3 * S)
    assert woken == [("a", 2 * S)]
    assert clock.now_ns() == 3 * S
    await clock.advance_to(10 * S)
    assert woken == [("a", 2 * S), ("b", 5 * S)]
    await asyncio.gather(*tasks)


async def test_virtual_clock_wake_event_interrupts_a_sleep() -> None:
    clock = VirtualClock()
    wake = asyncio.Event()
    task = asyncio.create_task(clock.sleep_until(100 * S, wake))
    await clock.settle()
    wake.set()
    assert await task is True
    assert clock.next_deadline() is None, "the abandoned deadline is forgotten"


async def test_virtual_clock_waits_for_busy_work_before_moving_on() -> None:
    clock = VirtualClock()
    seen: list[int] = []

    async def work() -> None:
        async with clock.busy():
            await asyncio.to_thread(lambda: sum(range(200_000)))
        seen.append(clock.now_ns())

    task = asyncio.create_task(work())
    await clock.advance(5 * S)
    assert seen == [0], "time did not run while the thread worked"
    await task


async def test_media_clock_sleeps_until_deadline_or_wake() -> None:
    clock = MediaClock()
    start = clock.now_ns()
    assert await clock.sleep_until(start + 20_000_000) is False
    assert clock.now_ns() - start >= 20_000_000
    wake = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, wake.set)
    assert await clock.sleep_until(clock.now_ns() + 60 * S, wake) is True
    with pytest.raises(ValueError, match="wake event"):
        await clock.sleep_until(None)


async def test_wall_clock_follows_server_time_until_synchronised() -> None:
    clock = VirtualClock(wall_start_ns=0)  # a Pi booting at 1970 without an RTC
    synced = False
    wall = WallClock(clock, synchronised=lambda: synced)
    jumps: list[int] = []
    wall.add_listener(jumps.append)
    assert wall.source == "unsynced"
    server = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    wall.feed_server_time(server)
    assert wall.source == "server"
    assert wall.now() == server
    assert len(jumps) == 1 and jumps[0] > 0
    await clock.advance(10 * S)
    assert wall.now() == server + dt.timedelta(seconds=10)
    assert wall.media_ns_of(server + dt.timedelta(seconds=30)) == 30 * S
    synced = True  # NTP steps the system clock; it now wins
    clock.step_wall(int(server.timestamp()) * S + 5 * S)
    assert wall.check() == 5 * S - 0
    assert wall.source == "system"
    assert wall.now() == server + dt.timedelta(seconds=15)


def test_small_wall_clock_corrections_are_not_jumps() -> None:
    clock = VirtualClock(wall_start_ns=10**18)
    wall = WallClock(clock, synchronised=lambda: True)
    clock.step_wall(S)  # a one-second slew is under the two-second threshold
    assert wall.check() == 0
    assert wall.now_ns() == 10**18 + S, "small corrections are still followed"
    clock.step_wall(3 * S)
    assert wall.check() == 3 * S


def test_naive_server_time_is_refused() -> None:
    wall = WallClock(VirtualClock(), synchronised=lambda: False)
    with pytest.raises(ValueError, match="timezone-aware"):
        wall.feed_server_time(dt.datetime(2026, 1, 1))


def test_timeline_lines_follow_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "out" / "timeline.jsonl"
    writer = TimelineWriter(path)
    wall = dt.datetime(2026, 11, 23, 9, 0, 1, 500000, tzinfo=dt.UTC)
    writer(
        TimelineEvent(
            1.5, wall, "d1", "l1", "main", "i1", "start", due=1.5, late_ms=0.25, load_ms=12.5
        )
    )
    writer(TimelineEvent(2.0, wall, "d1", "l1", None, None, "state", state="playing"))
    writer(TimelineEvent(3.0, wall, "d1", "l1", "main", "i2", "error", due=3.0, error="bad"))
    writer.close()
    lines = read_timeline(path)
    assert lines[0] == {
        "t": 1.5,
        "wall": "2026-11-23T09:00:01.500000+00:00",
        "device": "d1",
        "layout": "l1",
        "zone": "main",
        "item": "i1",
        "event": "start",
        "due": 1.5,
        "late_ms": 0.25,
        "load_ms": 12.5,
    }
    assert lines[1]["state"] == "playing" and "error" not in lines[1] and "load_ms" not in lines[1]
    assert lines[2]["error"] == "bad" and "state" not in lines[2]
    writer(TimelineEvent(4.0, wall, "d1", None, None, None, "state", state="idle"))
    assert len(read_timeline(path)) == 3, "a closed writer drops events instead of raising"


def test_timeline_writer_on_a_stream() -> None:
    stream = io.StringIO()
    writer = TimelineWriter(stream)
    wall = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    writer.write(TimelineEvent(0.0, wall, "d", None, None, None, "state", state="idle"))
    assert json.loads(stream.getvalue())["state"] == "idle"
    assert writer.count == 1


def test_directory_assets_serve_files_by_hash_whatever_their_name(tmp_path: Path) -> None:
    shutil.copy(DATA / "red.png", tmp_path / "anything.bin")
    (tmp_path / "other.txt").write_text("not wanted")
    assets = DirectoryAssets(tmp_path, wanted=[RED, "0" * 64])
    found = assets.scan()
    assert found == {RED: tmp_path / "anything.bin"}
    assert assets.is_ready(RED) and not assets.is_ready("0" * 64)
    assert assets.path_of(RED) == tmp_path / "anything.bin"


def test_directory_assets_refuse_a_file_changed_after_hashing(tmp_path: Path) -> None:
    target = tmp_path / "slide.png"
    shutil.copy(DATA / "red.png", target)
    assets = DirectoryAssets(tmp_path)
    assets.scan()
    shutil.copy(DATA / "blue.png", target)  # same name, other bytes: never shown as RED
    assert sha256_of(target) != RED
    assert not assets.is_ready(RED)
    with pytest.raises(CacheError, match="changed since hashed"):
        assets.path_of(RED)


def test_directory_assets_need_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="not found"):
        DirectoryAssets(tmp_path / "missing").scan()
