"""Helpers shared by the video tests: clips, items, contexts, a tiny frame loop."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pygame

from core import VideoConfig, ZoneError
from protocol import VideoItem
from zones import RenderContext
from zones._video import VideoRenderer, VideoRenderers

CLIPS = Path(__file__).parent.parent / "data" / "video"
H264 = CLIPS / "h264_320x180_2s.mp4"
SHORT = CLIPS / "h264_160x90_0.4s.mp4"
VP9 = CLIPS / "vp9_320x180_2s.webm"
HEVC = CLIPS / "hevc_320x180_2s.mkv"
ODD = CLIPS / "vp9_1279x719_1s.webm"
AUDIO = CLIPS / "h264_aac_320x180_1s.mp4"
AUDIO_ONLY = CLIPS / "aac_1s.m4a"
CORRUPT = CLIPS / "truncated_h264.mp4"
ZONE = (320, 180)


def sha_of(path: Path) -> str:
    """A stand-in asset id: the hash of the file's name (the content is not re-verified here)."""
    return hashlib.sha256(path.name.encode()).hexdigest()


ASSETS = {sha_of(p): p for p in CLIPS.iterdir()}


def asset_path(sha: str) -> Path:
    try:
        return ASSETS[sha]
    except KeyError:
        raise ZoneError(f"asset {sha[:12]} is not in the cache") from None


def video_item(
    path: Path, *, item_id: str = "v1", duration_ms: int | None = None, **extra: object
) -> VideoItem:
    return VideoItem.model_validate(
        {"id": item_id, "type": "video", "asset": sha_of(path), "duration_ms": duration_ms, **extra}
    )


def context(zone: str = "main", wake: Callable[[], None] | None = None) -> RenderContext:
    if wake is None:
        return RenderContext(zone_id=zone, asset_path=asset_path)
    return RenderContext(zone_id=zone, asset_path=asset_path, wake=wake)


def renderers(**config: object) -> VideoRenderers:
    return VideoRenderers(VideoConfig.model_validate(config))


async def play_until(
    renderer: VideoRenderer,
    surface: pygame.Surface,
    done: Callable[[], bool],
    *,
    timeout_s: float = 10.0,
) -> int:
    """Draw every ~5 ms (a frame loop stand-in) until ``done()``; return frames painted."""
    painted = 0
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("the video did not get there in time")
        painted += renderer.draw(surface, time.monotonic_ns())
        await asyncio.sleep(0.005)
    return painted
