"""Shared builders: manifests over the tiny images in tests/data, a player on a virtual clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from core import Settings
from player import (
    DirectoryAssets,
    Player,
    PlayerState,
    TimelineEvent,
    VirtualClock,
    sha256_of,
)
from protocol import Manifest
from zones import Display, offscreen_display

DATA = Path(__file__).parent.parent / "data"
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)  # a Monday
S = 1_000_000_000

SHA = {name: sha256_of(DATA / name) for name in ("red.png", "blue.png", "broken.jpg")}
RED, BLUE, BROKEN = SHA["red.png"], SHA["blue.png"], SHA["broken.jpg"]


def asset(sha: str) -> dict[str, Any]:
    mime = "image/jpeg" if sha == BROKEN else "image/png"
    return {"sha256": sha, "size": 1, "mime": mime}


def image(item_id: str, sha: str, ms: int = 10_000, **extra: Any) -> dict[str, Any]:
    return {"id": item_id, "type": "image", "asset": sha, "duration_ms": ms, **extra}


def manifest(
    *playlists: tuple[str, list[dict[str, Any]]],
    layouts: list[dict[str, Any]] | None = None,
    schedule: list[dict[str, Any]] | None = None,
    default: str | None = "l1",
    version: int = 1,
    timezone: str = "UTC",
) -> Manifest:
    """A manifest; by default one 64x36 layout 'l1' whose zone 'main' plays the first playlist."""
    shas = sorted({i["asset"] for _, items in playlists for i in items if "asset" in i})
    if layouts is None:
        layouts = [layout("l1", playlists[0][0])]
    return Manifest.model_validate(
        {
            "version": version,
            "timezone": timezone,
            "assets": [asset(s) for s in shas],
            "playlists": [{"id": pid, "items": items} for pid, items in playlists],
            "layouts": layouts,
            "schedule": schedule or [],
            "default_layout": default,
        }
    )


def layout(layout_id: str, playlist: str, **extra: Any) -> dict[str, Any]:
    zone = {"id": "main", "x": 0, "y": 0, "w": 64, "h": 36, "playlist": playlist}
    return {"id": layout_id, "width": 64, "height": 36, "zones": [zone], **extra}


class Harness:
    """A started player on a virtual clock and an offscreen display, recording its events."""

    def __init__(self, clock: VirtualClock, player: Player, display: Display) -> None:
        self.clock = clock
        self.player = player
        self.display = display
        self.events: list[TimelineEvent] = []
        player.add_listener(self.events.append)

    async def run(self, seconds: float) -> None:
        await self.clock.advance(int(seconds * S))

    def pixel(self, x: int = 32, y: int = 18) -> tuple[int, int, int]:
        frame = self.player.frame()
        assert frame is not None, "nothing presented yet"
        colour = frame.get_at((x, y))
        return colour.r, colour.g, colour.b

    def state(self) -> PlayerState:
        return self.player.state

    def of(self, kind: str) -> list[TimelineEvent]:
        return [e for e in self.events if e.event == kind]

    def starts(self) -> list[tuple[str | None, str | None]]:
        return [(e.zone, e.item) for e in self.of("start")]

    def states(self) -> list[str | None]:
        return [e.state for e in self.of("state")]


HarnessFactory = Callable[..., Any]


@pytest.fixture(params=["software", "gl"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """Each player test runs on both presentation paths (GL: an offscreen framebuffer of a
    real OpenGL context, frames read back with glReadPixels)."""
    if request.param == "gl":
        request.getfixturevalue("gl")
    clock = VirtualClock(wall_start_ns=int(START.timestamp()) * S)
    assets = DirectoryAssets(DATA)
    assets.scan()
    display = offscreen_display((64, 36), request.param)
    player = Player(Settings(), clock=clock, assets=assets, display=display, device="test")
    h = Harness(clock, player, display)
    await player.start()
    await clock.advance(0)
    try:
        yield h
    finally:
        await player.stop()
        display.close()
