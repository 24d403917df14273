"""The video zone inside the real player: gapless follow-up, video→image, a broken clip skipped.

On both presentation paths: software (mpv's software render API, blitted) and GL (mpv's OpenGL
render API drawing into the compositor's framebuffers; SDL offscreen + EGL, llvmpipe here).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pygame
import pytest

from core import Settings
from player import DirectoryAssets, MediaClock, Player, TimelineEvent, sha256_of
from protocol import Manifest
from tests.zones._video_support import CORRUPT, SHORT, VP9
from zones import GLOffscreen, OffscreenDisplay

DATA = Path(__file__).parent.parent / "data"
RED = DATA / "red.png"


@pytest.fixture(params=["software", "gl"])
def display(request: pytest.FixtureRequest) -> OffscreenDisplay | GLOffscreen:
    if request.param == "gl":
        request.getfixturevalue("gl")
        return GLOffscreen((160, 90))
    return OffscreenDisplay((160, 90))


async def test_videos_and_an_image_follow_each_other_without_errors_or_black(
    display: OffscreenDisplay | GLOffscreen,
) -> None:
    items: list[dict[str, Any]] = [
        {"id": "v1", "type": "video", "asset": sha256_of(SHORT)},  # to its end (0.4 s)
        {"id": "bad", "type": "video", "asset": sha256_of(CORRUPT)},  # skipped
        {"id": "v2", "type": "video", "asset": sha256_of(VP9), "duration_ms": 600},  # cut
        {"id": "i1", "type": "image", "asset": sha256_of(RED), "duration_ms": 400},
    ]
    manifest = Manifest.model_validate(
        {
            "version": 1,
            "assets": [
                {"sha256": item["asset"], "size": 1, "mime": "video/mp4"} for item in items[:3]
            ]
            + [{"sha256": items[3]["asset"], "size": 1, "mime": "image/png"}],
            "playlists": [{"id": "p", "items": items}],
            "layouts": [
                {
                    "id": "l",
                    "width": 160,
                    "height": 90,
                    "zones": [{"id": "main", "w": 160, "h": 90, "playlist": "p"}],
                }
            ],
            "default_layout": "l",
        }
    )
    assets = DirectoryAssets(DATA)
    await asyncio.to_thread(assets.scan)
    settings = Settings.model_validate({"player": {"preload_ms": 300}})
    player = Player(settings, clock=MediaClock(), assets=assets, display=display)
    events: list[TimelineEvent] = []
    player.add_listener(events.append)
    black_frames = 0
    await player.start()
    try:
        await player.set_manifest(manifest)
        for _ in range(500):  # until the playlist came round again (~1.5 s), 5 s at most
            await asyncio.sleep(0.01)
            frame = player.frame()
            if frame is not None and any(e.event == "start" for e in events):
                black_frames += pygame.transform.average_color(frame)[:3] == (0, 0, 0)
            if sum(e.event == "start" for e in events) >= 4:
                break
    finally:
        await player.stop()
    assert (player.compositor is not None) and (player.compositor.gl is not None) == isinstance(
        display, GLOffscreen
    )
    starts = [e.item for e in events if e.event == "start"]
    assert starts[:4] == ["v1", "v2", "i1", "v1"]
    assert [e.item for e in events if e.event == "error"][:1] == ["bad"]
    assert black_frames == 0
