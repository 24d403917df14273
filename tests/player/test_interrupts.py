"""Interrupts: a layout that takes over at the next frame, expires on time, then the schedule
resumes where the media clock says it would be."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from core import Settings
from player import DirectoryAssets, MediaClock, Player, TimelineEvent, VirtualClock
from protocol import Manifest
from tests.player.conftest import BLUE, DATA, RED, START, Harness, S, image, layout
from zones import OffscreenDisplay

RED_RGB = (220, 30, 30)
BLUE_RGB = (30, 60, 220)
ALERT_RGB = (200, 0, 0)
FRAME_MS = 1000 / 60


def at(seconds: float) -> str:
    return (START + dt.timedelta(seconds=seconds)).isoformat()


def content(*interrupts: dict[str, Any], version: int = 1, **extra: Any) -> Manifest:
    """'l1' plays a (red, 60 s) and b (blue, 60 s); 'alert' is a red-on-dark text."""
    alert = {
        "id": "alert",
        "type": "text",
        "text": "EVACUATE",
        "duration_ms": 5_000,
        "background": "#c80000",
    }
    return Manifest.model_validate(
        {
            "version": version,
            "assets": [
                {"sha256": RED, "size": 1, "mime": "image/png"},
                {"sha256": BLUE, "size": 1, "mime": "image/png"},
            ],
            "playlists": [
                {"id": "p1", "items": [image("a", RED, 60_000), image("b", BLUE, 60_000)]},
                {"id": "p2", "items": [alert]},
            ],
            "layouts": [layout("l1", "p1"), layout("emergency", "p2")],
            "default_layout": "l1",
            "interrupts": list(interrupts),
            **extra,
        }
    )


def interrupt(start_s: float, end_s: float | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": extra.pop("id", "i1"),
        "layout": "emergency",
        "starts_at": at(start_s),
        "ends_at": None if end_s is None else at(end_s),
        **extra,
    }


async def test_an_interrupt_takes_over_mid_item_and_the_schedule_resumes_on_its_deadlines(
    harness: Harness,
) -> None:
    await harness.player.set_manifest(content())
    await harness.run(20)
    assert harness.pixel() == RED_RGB
    # Sent at 20 s, for 70 s: it ends at 90 s, in the middle of b (60 s to 120 s).
    await harness.player.set_manifest(content(interrupt(20, 90), version=2))
    await harness.run(0)
    assert harness.pixel(1, 1) == ALERT_RGB, "at the next frame, not at a's end (60 s)"
    took = [e for e in harness.of("interrupt") if e.state == "start"]
    assert [(e.interrupt, e.layout, e.t) for e in took] == [("i1", "emergency", 20.0)]
    a_end = next(e for e in harness.of("end") if e.item == "a")
    assert a_end.t == 20.0, "a was cut short"
    await harness.run(69.9)
    assert harness.pixel(1, 1) == ALERT_RGB
    await harness.run(0.1)
    assert harness.pixel() == BLUE_RGB, "b, where l1 would be at 90 s"
    ended = [e for e in harness.of("interrupt") if e.state == "end"]
    assert [(e.interrupt, e.t, e.due) for e in ended] == [("i1", 90.0, 90.0)]
    await harness.run(30)
    assert harness.pixel() == RED_RGB
    l1 = [(e.item, e.t) for e in harness.of("start") if e.layout == "l1"]
    # b resumed at 90 s and kept its deadline: a comes back at 120 s, as if never interrupted.
    assert l1 == [("a", 0.0), ("b", 90.0), ("a", 120.0)]


async def test_an_interrupt_expires_on_time_without_any_network(harness: Harness) -> None:
    """Nothing but the manifest is needed: its end is an absolute instant evaluated locally."""
    await harness.player.set_manifest(content(interrupt(0, 30)))
    await harness.run(29.99)
    assert harness.player.interrupt() == "i1"
    await harness.run(0.01)
    assert harness.player.interrupt() is None
    assert harness.pixel() == RED_RGB
    assert [(e.item, e.t) for e in harness.of("start") if e.layout == "l1"] == [("a", 30.0)]


async def test_an_interrupt_announced_ahead_is_prepared_and_shown_on_its_instant(
    harness: Harness,
) -> None:
    await harness.player.set_manifest(content(interrupt(45, 50)))
    await harness.run(44.9)
    assert harness.pixel() == RED_RGB
    await harness.run(0.1)
    assert harness.pixel(1, 1) == ALERT_RGB
    took = next(e for e in harness.of("interrupt") if e.state == "start")
    assert (took.t, took.due) == (45.0, 45.0)
    await harness.run(5)
    assert harness.pixel() == RED_RGB, "a, which runs until 60 s, is back"


async def test_until_cleared_then_cleared(harness: Harness) -> None:
    await harness.player.set_manifest(content(interrupt(0, None)))
    await harness.run(3600)
    assert harness.player.interrupt() == "i1"
    await harness.player.set_manifest(content(version=2))  # the admin cleared it
    await harness.run(0)
    assert harness.player.interrupt() is None
    ended = [e for e in harness.of("interrupt") if e.state == "end"]
    assert [(e.t, e.due) for e in ended] == [(3600.0, None)], "cleared: nothing was due"
    # An hour in: l1's turn of 120 s has run 30 times, a is on screen from 3600 s.
    assert harness.pixel() == RED_RGB


async def test_the_highest_priority_then_the_latest_interrupt_wins(harness: Harness) -> None:
    urgent = interrupt(0, 100, id="fire", priority=5)
    later = interrupt(10, 50, id="notice")
    await harness.player.set_manifest(content(urgent, later))
    await harness.run(60)
    assert [e.interrupt for e in harness.of("interrupt") if e.state == "start"] == ["fire"]


async def test_a_player_started_during_an_interrupt_shows_it(tmp_path: Any) -> None:
    """A restart (or a power cut) mid-interrupt: the stored manifest still holds it."""
    clock = VirtualClock(wall_start_ns=int(START.timestamp()) * S + 40 * S)
    assets = DirectoryAssets(DATA)
    assets.scan()
    player = Player(
        Settings(), clock=clock, assets=assets, display=OffscreenDisplay((64, 36)), device="x"
    )
    await player.start()
    try:
        await player.set_manifest(content(interrupt(0, 60)))
        await clock.advance(0)
        assert player.interrupt() == "i1"
        await clock.advance(20 * S)
        assert player.interrupt() is None
    finally:
        await player.stop()


async def test_an_interrupt_pre_empts_within_one_frame_on_the_real_clock() -> None:
    """Real monotonic clock, real compositor: the interrupt's first frame is the first frame
    presented once it is ready, within one 60 Hz frame, whatever the item on screen."""
    assets = DirectoryAssets(DATA)
    await asyncio.to_thread(assets.scan)
    display = OffscreenDisplay((64, 36))
    player = Player(Settings(), clock=MediaClock(), assets=assets, display=display, device="real")
    events: list[TimelineEvent] = []
    started = {"l1": asyncio.Event(), "emergency": asyncio.Event()}

    def on_event(event: TimelineEvent) -> None:
        events.append(event)
        if event.event == "start" and event.layout in started:
            started[event.layout].set()

    player.add_listener(on_event)
    lateness: list[float] = []
    await player.start()
    try:
        await player.set_manifest(content())
        for trial in range(10):
            await asyncio.wait_for(started["l1"].wait(), 2)
            started["emergency"].clear()
            events.clear()
            now = player.wall.now() - START
            start_s = now.total_seconds() - 1
            await player.set_manifest(content(interrupt(start_s, None), version=2 * trial + 2))
            await asyncio.wait_for(started["emergency"].wait(), 2)
            first = next(e for e in events if e.event == "start" and e.layout == "emergency")
            assert first.late_ms is not None
            lateness.append(first.late_ms)
            frames = [e for e in events if e.event in ("start", "end")]
            assert frames[0].item == "a" and frames[0].event == "end", "the red item was cut"
            events.clear()
            started["l1"].clear()
            await player.set_manifest(content(version=2 * trial + 3))
    finally:
        await player.stop()
    print(f"pre-emption lateness (ready -> presented), ms: {sorted(lateness)}")
    assert max(lateness) < FRAME_MS, lateness


async def test_an_item_with_under_a_second_left_gives_way_to_the_next_on_resuming(
    harness: Harness,
) -> None:
    await harness.player.set_manifest(content(interrupt(20, 59.5)))
    await harness.run(59.5)
    assert harness.pixel() == BLUE_RGB, "not a half-second flash of a"
    l1 = [(e.item, e.t, e.due) for e in harness.of("start") if e.layout == "l1"]
    assert l1 == [("a", 0.0, 0.0), ("b", 59.5, 59.5)]
    await harness.run(60.5)
    assert [e.t for e in harness.of("start") if e.layout == "l1"][-1] == 120.0, "b kept 60-120"
