"""Plays a manifest in this process, watching every frame; the hostile-media suite runs it.

``python -m tests.player.hostile_run SPEC.json`` (from the repository root): SPEC names the
manifest, the asset directory, the state directory, how long to play and where to write the
result: the timeline events, the presented frames whose media zone showed nothing, and the
event loop's stalls. Run as a child process on purpose: if a file took the process down, the
test sees the child die instead of dying with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame

from core import Settings
from player import (
    DirectoryAssets,
    LoopStallProbe,
    MediaClock,
    Player,
    TimelineEvent,
)
from protocol import Manifest
from zones import DisplayWrapper, OffscreenDisplay


def _black(zone: pygame.Surface) -> bool:
    """The zone shows nothing: every pixel of it near black (letterbox bars alone are not)."""
    small = pygame.transform.scale(
        zone, (max(1, zone.get_width() // 4), max(1, zone.get_height() // 4))
    )
    near_black = pygame.mask.from_threshold(small, (0, 0, 0, 255), (16, 16, 16, 255))
    return bool(near_black.count() == small.get_width() * small.get_height())


class _Watch(DisplayWrapper):
    """Presents offscreen and notes every frame whose media zone shows nothing."""

    def __init__(self, inner: OffscreenDisplay, zone: pygame.Rect, clock: MediaClock) -> None:
        super().__init__(inner)
        self.zone = zone
        self.clock = clock
        self.watching = False
        self.blank_at: list[int] = []
        self.checked = 0

    def present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        super().present(canvas, rects)
        if self.watching:
            self.checked += 1
            if _black(canvas.subsurface(self.zone)):
                self.blank_at.append(self.clock.now_ns())


async def _play(spec: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
    assets = DirectoryAssets(Path(spec["assets"]), wanted=[a.sha256 for a in manifest.assets])
    await asyncio.to_thread(assets.scan)
    settings = Settings.model_validate({"player": {"preload_ms": spec["preload_ms"]}})
    clock = MediaClock()
    layout = manifest.layouts[0]
    zone = layout.zones[0]
    display = _Watch(
        OffscreenDisplay((layout.width, layout.height)),
        pygame.Rect(zone.x, zone.y, zone.w, zone.h),
        clock,
    )
    events: list[TimelineEvent] = []
    player = Player(
        settings,
        clock=clock,
        assets=assets,
        display=display,
        device="hostile",
        state_dir=Path(spec["state"]),
    )
    player.add_listener(events.append)

    def on_event(event: TimelineEvent) -> None:
        if event.event == "start":
            display.watching = True  # from the first item on (the idle screen is black)

    player.add_listener(on_event)
    probe = LoopStallProbe()
    await player.start()
    try:
        async with probe.running():
            await player.set_manifest(manifest)
            await asyncio.sleep(spec["seconds"])
    finally:
        await player.stop()
    return {
        "events": [e.to_json() for e in events],
        "frames_checked": display.checked,
        "blank_frames": len(display.blank_at),
        "max_stall_ms": probe.max_ms,
        "max_busy_ms": probe.max_busy_ms,
        "p99_stall_ms": probe.percentile_ms(0.99),
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    manifest = Manifest.model_validate_json(Path(spec["manifest"]).read_text())
    result = asyncio.run(_play(spec, manifest))
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
