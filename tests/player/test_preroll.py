"""A layout due at a schedule boundary: its deadline is the boundary, its lead is measured."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pygame
import pytest

import zones._api
from core import PlayerConfig, Settings
from player import DirectoryAssets, LoadTimes, MediaClock, Player, TimelineEvent, WallClock
from protocol import Item, Manifest
from tests.player.conftest import BLUE, DATA, RED, Harness, S, image, layout, manifest
from zones import RenderContext

LOAD_S = 0.6  # how long the slow item takes to prepare
BOUNDARY = dt.datetime(2026, 11, 23, 9, 10, tzinfo=dt.UTC)


class SlowItem:
    """Prepares for LOAD_S of real time (a big picture on a slow board), then shows green.

    It stands in for the text renderer, whose items need no asset."""

    def __init__(self, context: RenderContext) -> None:
        self._painted = False

    async def prepare(self, item: Item, size: tuple[int, int]) -> None:
        await asyncio.sleep(LOAD_S)

    def start(self, at_ns: int) -> None:
        self._painted = False

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        if self._painted:
            return False
        surface.fill((0, 200, 0))
        self._painted = True
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        return None

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        self._painted = True

    def release(self) -> None:
        self._painted = True


class ShiftedClock(MediaClock):
    """The real media clock with a wall clock that reads ``wall_at_start`` now."""

    def __init__(self, wall_at_start_ns: int) -> None:
        self._offset = wall_at_start_ns - time.time_ns()

    def wall_ns(self) -> int:
        return time.time_ns() + self._offset


def _boundary_manifest() -> Manifest:
    slow = {"id": "slow", "type": "text", "text": "slow", "duration_ms": 60_000}
    return manifest(
        ("p1", [image("a", RED, 3_600_000)]),
        ("p2", [slow]),
        layouts=[layout("l1", "p1"), layout("l2", "p2")],
        schedule=[{"id": "s", "layout": "l2", "from": "09:10", "to": "10:00"}],
    )


async def _play_across_boundary(
    monkeypatch: pytest.MonkeyPatch, *, seconds_before: float, preroll_ms: tuple[int, int]
) -> tuple[TimelineEvent, float]:
    """Start at ``seconds_before`` the 09:10 boundary; the l2 start event, and the boundary's
    media seconds."""
    monkeypatch.setitem(zones._api._factories, "text", SlowItem)
    boundary_ns = int(BOUNDARY.timestamp()) * S
    clock = ShiftedClock(boundary_ns - int(seconds_before * S))
    settings = Settings.model_validate(
        {
            "display": {"width": 64, "height": 36, "fullscreen": False, "driver": "dummy"},
            "player": {"preroll_min_ms": preroll_ms[0], "preroll_max_ms": preroll_ms[1]},
        }
    )
    assets = DirectoryAssets(DATA)
    await asyncio.to_thread(assets.scan)
    player = Player(
        settings, clock=clock, assets=assets, wall=WallClock(clock, synchronised=lambda: True)
    )
    events: list[TimelineEvent] = []
    player.add_listener(events.append)
    await player.start()
    try:
        await player.set_manifest(_boundary_manifest())
        for _ in range(400):  # bounded: 8 s at most
            if any(e.event == "start" and e.layout == "l2" for e in events):
                break
            await asyncio.sleep(0.02)
        boundary_s = player.media_seconds(player.wall.media_ns_of(BOUNDARY))
    finally:
        await player.stop()
    start = next(e for e in events if e.event == "start" and e.layout == "l2")
    return start, boundary_s


async def test_a_layout_loaded_after_its_boundary_is_late_by_what_a_viewer_saw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No lead at all: loading starts at the boundary and takes LOAD_S.
    start, boundary_s = await _play_across_boundary(
        monkeypatch, seconds_before=0.5, preroll_ms=(0, 0)
    )
    assert start.due == pytest.approx(boundary_s, abs=0.002), "due at the scheduled start"
    assert start.late_ms is not None and start.load_ms is not None and start.due is not None
    assert start.load_ms >= LOAD_S * 1000 * 0.95
    assert start.late_ms >= LOAD_S * 1000 * 0.9, "the load is in the lateness a viewer saw"
    assert start.late_ms == pytest.approx((start.t - start.due) * 1000, abs=0.01)


async def test_a_lead_longer_than_the_load_presents_on_the_boundary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The load time is unknown, so the lead is preroll_max_ms (1.5 s > LOAD_S).
    start, boundary_s = await _play_across_boundary(
        monkeypatch, seconds_before=2.0, preroll_ms=(0, 1500)
    )
    assert start.due == pytest.approx(boundary_s, abs=0.002)
    assert start.late_ms is not None and 0 <= start.late_ms < 300  # lenient: a shared machine
    assert start.load_ms is not None and start.load_ms >= LOAD_S * 1000 * 0.95


def test_lead_follows_the_largest_recent_load_within_bounds() -> None:
    times = LoadTimes(PlayerConfig(preroll_min_ms=500, preroll_max_ms=10_000, preroll_factor=2))
    assert times.lead_ns(None) == 10 * S, "unknown: the maximum"
    times.record("k", 100_000_000)
    assert times.lead_ns(times.estimate_ns("k")) == 500_000_000, "2 x 0.1 s, raised to the minimum"
    times.record("k", 2 * S)
    times.record("k", S // 10)
    assert times.lead_ns(times.estimate_ns("k")) == 4 * S, "a slow load is remembered"
    times.record("k", 60 * S)
    assert times.lead_ns(times.estimate_ns("k")) == 10 * S, "capped at the maximum"
    for _ in range(5):
        times.record("k", S // 10)
    assert times.estimate_ns("k") == S // 10, "only the last few loads count"


def test_layout_estimate_sums_first_items_until_the_layout_itself_was_loaded() -> None:
    m = manifest(("p1", [image("a", RED, 1000)]), ("p2", [image("b", RED, 1000)]),
                 layouts=[layout("l1", "p1")])  # fmt: skip
    data: dict[str, Any] = m.model_dump(by_alias=True)
    zones_ = [{"id": "z1", "w": 32, "h": 36, "playlist": "p1"},
              {"id": "z2", "x": 32, "w": 32, "h": 36, "playlist": "p2"}]  # fmt: skip
    data["layouts"] = [{"id": "l1", "width": 64, "height": 36, "zones": zones_}]
    two = Manifest.model_validate(data)
    times = LoadTimes(PlayerConfig())
    assert times.layout_estimate_ns(two, two.layout("l1"), "layout:x") is None
    times.record(f"asset:{RED}", 300_000_000)
    assert times.layout_estimate_ns(two, two.layout("l1"), "layout:x") == 600_000_000
    times.record("layout:x", 200_000_000)
    assert times.layout_estimate_ns(two, two.layout("l1"), "layout:x") == 200_000_000


async def test_second_boundary_of_a_layout_uses_its_measured_load(harness: Harness) -> None:
    m = manifest(
        ("p1", [image("a", RED, 3_600_000)]),
        ("p2", [image("b", BLUE, 3_600_000)]),
        layouts=[layout("l1", "p1"), layout("l2", "p2")],
        schedule=[
            {"id": "s1", "layout": "l2", "from": "09:10", "to": "09:20"},
            {"id": "s2", "layout": "l2", "from": "09:30", "to": "09:40"},
        ],
    )
    await harness.player.set_manifest(m)
    await harness.run(1801)
    loading = [e.t for e in harness.of("state") if e.state == "loading"]
    # 09:10: l2's picture was never loaded, so the maximum lead (15 s). Back to l1 at 09:20,
    # l2 again at 09:30: loaded before, and a virtual clock's load takes no media time, so
    # the lead is the minimum (0.5 s).
    assert loading[1:] == pytest.approx([585.0, 1199.5, 1799.5])
    starts = [(e.layout, e.t, e.due) for e in harness.of("start")]
    assert starts[1:] == [("l2", 600.0, 600.0), ("l1", 1200.0, 1200.0), ("l2", 1800.0, 1800.0)]
