"""The player on a virtual clock: deadlines, switches, errors, state changes, no black frames."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import itertools
import logging
from typing import Any, ClassVar

import pygame
import pytest

import zones._api
from core import Settings
from player import (
    DirectoryAssets,
    MediaClock,
    Player,
    PlayerState,
    TimelineEvent,
    VirtualClock,
)
from protocol import Item, Manifest
from tests.player.conftest import BLUE, BROKEN, DATA, RED, Harness, S, image, layout, manifest
from zones import OffscreenDisplay, RenderContext

RED_RGB = (220, 30, 30)
BLUE_RGB = (30, 60, 220)


async def test_items_switch_on_absolute_deadlines(harness: Harness) -> None:
    m = manifest(("p1", [image("a", RED, 10_000), image("b", BLUE, 5_000)]))
    await harness.player.set_manifest(m)
    await harness.run(0)
    assert harness.pixel() == RED_RGB
    await harness.run(10)
    assert harness.pixel() == BLUE_RGB
    await harness.run(5)
    assert harness.pixel() == RED_RGB
    starts = harness.of("start")
    assert [e.item for e in starts] == ["a", "b", "a"]
    assert [e.due for e in starts] == [0.0, 10.0, 15.0]
    assert [e.t for e in starts] == [0.0, 10.0, 15.0], "presented on the deadline's frame"
    # Media time stands still while a virtual clock's player works: nothing to measure.
    assert all(e.late_ms is None and e.load_ms is None for e in starts)


async def test_a_day_of_switches_accumulates_no_drift(harness: Harness) -> None:
    m = manifest(("p1", [image("a", RED, 60_000), image("b", BLUE, 90_000)]))
    await harness.player.set_manifest(m)
    await harness.run(24 * 3600)
    starts = harness.of("start")
    assert len(starts) == 24 * 3600 * 2 // 150 + 1
    # Item k is due at t0 + the sum of the durations before it, to the nanosecond.
    expected = [0.0]
    for index in range(1, len(starts)):
        expected.append(expected[-1] + (60.0 if index % 2 else 90.0))
    assert [e.due for e in starts] == pytest.approx(expected, abs=1e-6)
    assert all(e.t == e.due for e in starts)


async def test_broken_file_is_an_error_event_and_the_zone_moves_on(harness: Harness) -> None:
    m = manifest(("p1", [image("a", RED, 5_000), image("bad", BROKEN), image("b", BLUE, 5_000)]))
    await harness.player.set_manifest(m)
    await harness.run(5)
    assert harness.pixel() == BLUE_RGB, "the item after the broken one takes its place"
    errors = harness.of("error")
    assert [(e.zone, e.item) for e in errors] == [("main", "bad")]
    assert errors[0].error and "cannot show image" in errors[0].error
    assert [e.item for e in harness.of("start")] == ["a", "b"]
    assert harness.of("start")[1].t == harness.of("start")[1].due == 5.0


async def test_playlist_of_only_broken_items_holds_and_retries_without_spinning(
    harness: Harness,
) -> None:
    m = manifest(("p1", [image("bad", BROKEN)]))
    await harness.player.set_manifest(m)
    await harness.run(35)
    errors = harness.of("error")
    assert 3 <= len(errors) <= 5, "one attempt at load, then one per retry period"
    assert harness.state() is PlayerState.PLAYING


async def test_new_manifest_mid_item_switches_without_a_black_frame(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED, 60_000)])))
    await harness.run(3)
    frames: list[tuple[int, int, int]] = []

    def on_event(event: TimelineEvent) -> None:
        if event.event == "start":
            frames.append(harness.pixel())

    harness.player.add_listener(on_event)
    await harness.player.set_manifest(manifest(("p2", [image("b", BLUE, 60_000)]), version=2))
    assert harness.pixel() == RED_RGB, "while the new layout loads the old one stays"
    await harness.run(0.5)
    assert harness.pixel() == BLUE_RGB
    assert frames == [BLUE_RGB], "the first frame presented after the switch is the new item"
    ends = [(e.item, e.layout) for e in harness.of("end")]
    assert ("a", "l1") in ends


async def test_schedule_only_edit_does_not_restart_playback(harness: Harness) -> None:
    items = ("p1", [image("a", RED, 10_000), image("b", BLUE, 10_000)])
    await harness.player.set_manifest(manifest(items))
    await harness.run(12)
    await harness.player.set_manifest(manifest(items, version=2))
    await harness.run(10)
    assert [e.item for e in harness.of("start")] == ["a", "b", "a"]
    assert harness.states().count("loading") == 1


async def test_layout_whose_assets_are_missing_is_skipped_and_the_old_one_kept(
    harness: Harness,
) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED, 60_000)])))
    await harness.run(1)
    missing = "f" * 64
    m = manifest(("p2", [image("x", missing)]), version=2)
    await harness.player.set_manifest(m)
    await harness.run(5)
    assert harness.pixel() == RED_RGB
    assert harness.player.snapshot()[0] == "l1"


async def test_schedule_switches_layouts_at_the_window_edges(harness: Harness) -> None:
    m = manifest(
        ("p1", [image("a", RED, 3_600_000)]),
        ("p2", [image("b", BLUE, 3_600_000)]),
        layouts=[layout("l1", "p1"), layout("l2", "p2")],
        schedule=[{"id": "s", "layout": "l2", "from": "09:10", "to": "09:20", "priority": 5}],
    )
    await harness.player.set_manifest(m)  # starts 09:00 UTC
    await harness.run(0)
    assert harness.pixel() == RED_RGB
    await harness.run(600)
    assert harness.pixel() == BLUE_RGB
    await harness.run(600)
    assert harness.pixel() == RED_RGB
    layouts = [(e.layout, e.t, e.due) for e in harness.of("start")]
    assert layouts == [("l1", 0.0, 0.0), ("l2", 600.0, 600.0), ("l1", 1200.0, 1200.0)]


async def test_wall_clock_jump_re_evaluates_the_schedule(harness: Harness) -> None:
    m = manifest(
        ("p1", [image("a", RED, 600_000)]),
        ("p2", [image("b", BLUE, 600_000)]),
        layouts=[layout("l1", "p1"), layout("l2", "p2")],
        schedule=[{"id": "s", "layout": "l2", "from": "15:00", "to": "16:00"}],
    )
    await harness.player.set_manifest(m)
    await harness.run(1)
    assert harness.pixel() == RED_RGB
    harness.clock.step_wall(6 * 3600 * S)  # NTP steps the clock to 15:00
    harness.player.wall.check()
    await harness.run(0.1)
    assert harness.pixel() == BLUE_RGB
    harness.clock.step_wall(-6 * 3600 * S)  # and back: no stall, no double play
    harness.player.wall.check()
    await harness.run(0.1)
    assert harness.pixel() == RED_RGB
    assert [e.layout for e in harness.of("start")] == ["l1", "l2", "l1"]


async def test_server_time_sets_wall_time_before_ntp(harness: Harness) -> None:
    m = manifest(
        ("p1", [image("a", RED, 600_000)]),
        ("p2", [image("b", BLUE, 600_000)]),
        layouts=[layout("l1", "p1"), layout("l2", "p2")],
        schedule=[{"id": "s", "layout": "l2", "days": ["sat"]}],
    )
    await harness.player.set_manifest(m)
    await harness.run(1)
    harness.player.feed_server_time(dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC))
    await harness.run(0.1)
    assert harness.player.snapshot()[0] == "l2"


@pytest.mark.parametrize("setup", ["idle", "loading", "playing", "stopped"])
async def test_every_state_accepts_stop_reload_and_new_content(
    harness: Harness, setup: str
) -> None:
    player = harness.player
    first = manifest(("p1", [image("a", RED, 60_000)]))
    if setup in ("loading", "playing", "stopped"):
        await player.set_manifest(first)
        if setup != "loading":
            await harness.run(1)
    if setup == "stopped":
        await player.reload()
    await player.reload()
    await harness.run(1)
    assert harness.state() is (PlayerState.IDLE if setup == "idle" else PlayerState.PLAYING)
    await player.set_manifest(manifest(("p2", [image("b", BLUE, 60_000)]), version=2))
    await harness.run(1)
    assert harness.state() is PlayerState.PLAYING
    assert harness.pixel() == BLUE_RGB
    await player._fire("halt")
    await harness.run(1)
    assert harness.state() is PlayerState.IDLE


async def test_reload_passes_through_stopping_and_keeps_the_last_frame(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED, 60_000)])))
    await harness.run(1)
    frames_before = harness.display.frames
    await harness.player.reload()
    assert harness.pixel() == RED_RGB
    await harness.run(1)
    assert harness.states()[-4:] == ["stopping", "idle", "loading", "playing"]
    assert harness.pixel() == RED_RGB
    assert harness.display.frames == frames_before + 1, "one frame: the reloaded layout"


async def test_no_content_screen_when_nothing_is_scheduled(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED)]), default=None))
    await harness.run(1)
    assert harness.state() is PlayerState.IDLE
    frame = harness.player.frame()
    assert frame is not None and frame.get_size() == (64, 36)
    assert harness.pixel(0, 0) != RED_RGB


async def test_pairing_screen_replaces_content(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED)])))
    await harness.run(1)
    expires = dt.datetime(2026, 11, 23, 9, 5, tzinfo=dt.UTC)
    harness.player.show_pairing("123456", "http://127.0.0.1:8080", "lobby", expires)
    await harness.run(1)
    assert harness.state() is PlayerState.IDLE
    assert harness.player.snapshot()[0] is None
    assert RED_RGB not in {harness.pixel(x, 18) for x in range(0, 64, 4)}


async def test_screenshot_is_a_png_of_the_composed_frame(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED)])))
    await harness.run(1)
    png = await harness.player.screenshot()
    assert png.startswith(b"\x89PNG")
    picture = pygame.image.load(io.BytesIO(png), "shot.png")
    assert picture.get_size() == (64, 36)
    assert tuple(picture.get_at((32, 18)))[:3] == RED_RGB


async def test_identify_banner_shows_then_goes(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED)])))
    await harness.run(1)
    harness.player.identify("lobby", 5)
    await harness.run(0.1)
    assert harness.pixel(2, 34) == (255, 196, 0)
    await harness.run(6)
    assert harness.pixel(2, 34) == RED_RGB


async def test_static_content_presents_no_frames(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED, 60_000)])))
    await harness.run(1)
    before = harness.display.frames
    await harness.run(50)
    assert harness.display.frames == before


async def test_stop_releases_every_renderer(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED, 2_000), image("b", BLUE)])))
    await harness.run(1)  # "b" is being prepared: preload_ms is 2000
    assert harness.player.compositor is not None
    scene = harness.player.compositor.active
    assert scene is not None
    view = scene.zones[0]
    assert view.renderer is not None
    await harness.player._fire("halt")
    await harness.run(0)
    assert all(v.renderer is None for v in scene.zones)
    assert harness.state() is PlayerState.IDLE


async def test_real_clock_and_real_display_play_a_playlist() -> None:
    """The whole player on the monotonic clock and the SDL display (dummy driver)."""
    settings = Settings.model_validate(
        {"display": {"width": 64, "height": 36, "fullscreen": False, "driver": "dummy"}}
    )
    assets = DirectoryAssets(DATA)
    await asyncio.to_thread(assets.scan)
    player = Player(settings, clock=MediaClock(), assets=assets, device="real")
    starts: list[str | None] = []
    player.add_listener(lambda e: starts.append(e.item) if e.event == "start" else None)
    await player.start()
    try:
        await player.set_manifest(manifest(("p1", [image("a", RED, 300), image("b", BLUE, 300)])))
        for _ in range(200):  # bounded: at most ~4 s on a very busy machine
            if starts.count("b") >= 1 and starts.count("a") >= 2:
                break
            await asyncio.sleep(0.02)
        assert starts[:3] == ["a", "b", "a"]
        screen = pygame.display.get_surface()
        assert screen is not None
        colour = tuple(screen.get_at((32, 18)))[:3]
        assert colour in (RED_RGB, BLUE_RGB)
        assert player._frames.warmup.warmed >= 1, (
            "switch frames were warmed ahead of their deadline"
        )
    finally:
        await player.stop()


async def test_layout_switch_at_a_boundary_is_prepared_ahead(harness: Harness) -> None:
    m = manifest(
        ("p1", [image("a", RED, 3_600_000)]),
        ("p2", [image("b", BLUE, 3_600_000)]),
        layouts=[layout("l1", "p1"), layout("l2", "p2")],
        schedule=[{"id": "s", "layout": "l2", "from": "09:10", "to": "10:00"}],
    )
    await harness.player.set_manifest(m)
    await harness.run(599)
    loading = [e.t for e in harness.of("state") if e.state == "loading"]
    # Never loaded before, so the lead is preroll_max_ms (15 s): l2's load time is unknown.
    assert loading[-1] == pytest.approx(585.0), "prepared ahead of the boundary"
    assert harness.pixel() == RED_RGB, "but not shown before the boundary"
    assert harness.player.snapshot()[0] == "l1"
    await harness.run(1)
    assert harness.pixel() == BLUE_RGB
    start = harness.of("start")[-1]
    assert (start.layout, start.due, start.t, start.late_ms) == ("l2", 600.0, 600.0, None)
    end = harness.of("end")[-1]
    assert (end.layout, end.item, end.t) == ("l1", "a", 600.0)


async def test_new_content_while_a_boundary_switch_is_armed(harness: Harness) -> None:
    m = manifest(
        ("p1", [image("a", RED, 3_600_000)]),
        ("p2", [image("b", BLUE, 3_600_000)]),
        layouts=[layout("l1", "p1"), layout("l2", "p2")],
        schedule=[{"id": "s", "layout": "l2", "from": "09:10", "to": "10:00"}],
    )
    await harness.player.set_manifest(m)
    await harness.run(599)
    only_l1 = manifest(("p1", [image("a", RED, 3_600_000)]), version=2)
    await harness.player.set_manifest(only_l1)  # the 09:10 entry was deleted meanwhile
    await harness.run(5)
    assert harness.pixel() == RED_RGB
    assert [e.layout for e in harness.of("start")] == ["l1"], "no restart, no stale switch"


async def test_waiting_for_assets_shows_preparing_once(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("x", "e" * 64)])))
    await harness.run(1)
    assert harness.state() is PlayerState.IDLE
    frames = harness.display.frames
    for _ in range(3):
        await harness.player.set_manifest(manifest(("p1", [image("x", "e" * 64)])))
        await harness.run(1)
    assert harness.display.frames == frames, "the same screen is not presented again"


async def test_invalid_trigger_is_ignored_and_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="player")
    await harness.player._fire("loaded")  # IDLE has no 'loaded' transition
    assert harness.state() is PlayerState.IDLE
    assert any("trigger ignored" in r.getMessage() for r in caplog.records)


async def test_tick_listeners_hear_from_the_frame_loop_every_second(harness: Harness) -> None:
    await harness.player.set_manifest(manifest(("p1", [image("a", RED, 600_000)])))
    await harness.run(1)
    ticks: list[int] = []
    harness.player.add_tick_listener(lambda: ticks.append(harness.clock.now_ns()))
    await harness.run(10)
    assert len(ticks) >= 10
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) <= S


class FakeVideo:
    """Plays for 5 s of media time; its length is known once prepared (like mpv's duration)."""

    prepared_at: ClassVar[list[tuple[str, int]]] = []

    def __init__(self, context: RenderContext) -> None:
        self._context = context
        self._start: int | None = None
        self._ended = False
        self._item = ""

    async def prepare(self, item: Item, size: tuple[int, int]) -> None:
        self._item = item.id
        FakeVideo.prepared_at.append((item.id, VIDEO_CLOCK[0].now_ns()))

    def start(self, at_ns: int) -> None:
        self._start = at_ns

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        assert self._start is not None
        if now_ns >= self._start + 5 * S and not self._ended:
            self._ended = True
            self._context.wake()
        surface.fill((0, 200, 0))
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        return None if self._start is None or self._ended else self._start + 5 * S

    @property
    def expected_end_ns(self) -> int | None:
        return None if self._start is None else self._start + 5 * S

    @property
    def ended(self) -> bool:
        return self._ended

    def stop(self) -> None:
        self._start = None

    def release(self) -> None:
        self._ended = True


VIDEO_CLOCK: list[Any] = []


async def test_item_without_duration_is_followed_gaplessly(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(zones._api._factories, "video", FakeVideo)
    VIDEO_CLOCK[:] = [harness.clock]
    FakeVideo.prepared_at.clear()
    video = {"sha256": BROKEN, "size": 1, "mime": "video/mp4"}
    m = Manifest.model_validate(
        {
            "version": 1,
            "assets": [video],
            "playlists": [
                {
                    "id": "p1",
                    "items": [
                        {"id": "v1", "type": "video", "asset": BROKEN},
                        {"id": "v2", "type": "video", "asset": BROKEN},
                    ],
                }
            ],
            "layouts": [layout("l1", "p1")],
            "default_layout": "l1",
        }
    )
    await harness.player.set_manifest(m)
    await harness.run(12)
    assert FakeVideo.prepared_at[:2] == [("v1", 0), ("v2", 3 * S)], "loaded 2 s before the end"
    starts = [(e.item, e.due, e.t) for e in harness.of("start")]
    assert starts[:3] == [("v1", 0.0, 0.0), ("v2", 5.0, 5.0), ("v1", 10.0, 10.0)]


async def test_ticker_and_clock_zones_animate_on_the_virtual_clock(harness: Harness) -> None:
    zones_ = [
        {"id": "ticker", "x": 0, "y": 0, "w": 64, "h": 18, "playlist": "t"},
        {"id": "clock", "x": 0, "y": 18, "w": 64, "h": 18, "playlist": "c"},
    ]
    m = Manifest.model_validate(
        {
            "version": 1,
            "playlists": [
                {
                    "id": "t",
                    "items": [{"id": "n", "type": "text", "text": "NEWS", "scroll": "left"}],
                },
                {"id": "c", "items": [{"id": "k", "type": "clock", "format": "%S"}]},
            ],
            "layouts": [{"id": "l1", "width": 64, "height": 36, "zones": zones_}],
            "default_layout": "l1",
        }
    )
    await harness.player.set_manifest(m)
    await harness.run(0)
    frames = harness.display.frames
    await harness.run(1)
    presented = harness.display.frames - frames
    assert 55 <= presented <= 61, "the ticker moves every frame, capped at 60 Hz"
    assert {e.item for e in harness.of("start")} == {"n", "k"}


async def test_content_given_before_start_plays_once_started() -> None:
    clock = VirtualClock()
    assets = DirectoryAssets(DATA)
    assets.scan()
    player = Player(
        Settings(), clock=clock, assets=assets, display=OffscreenDisplay((64, 36)), device="early"
    )
    await player.set_manifest(manifest(("p1", [image("a", RED)])))
    await clock.settle()  # anything set_manifest started has run before the display exists
    await player.start()
    try:
        await clock.advance(S)
        assert player.state is PlayerState.PLAYING
        assert player.snapshot()[:2] == ("l1", {"main": "a"})
    finally:
        await player.stop()
