"""Frame policies, the black-frame watch and switch captures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pygame
import pytest

from core import ConfigError
from player import TimelineEvent
from tools.sim._frames import (
    FramePolicy,
    FrameWriter,
    SwitchFrames,
    blank_regions,
    frame_name,
    is_flat,
)


def test_policies_parse_and_print() -> None:
    for text in ("none", "switch", "first", "every:2.5"):
        assert str(FramePolicy.parse(text)) == text
    assert FramePolicy.parse("every:10").every_s == 10
    for bad in ("every:", "every:-1", "every:0", "all", ""):
        with pytest.raises(ConfigError, match="--frames"):
            FramePolicy.parse(bad)


def test_flat_surfaces_and_detail() -> None:
    flat = pygame.Surface((640, 360))
    flat.fill((20, 12, 40))
    assert is_flat(flat)
    noisy = flat.copy()
    noisy.set_at((5, 5), (22, 13, 41))  # JPEG-like noise stays flat
    assert is_flat(noisy)
    text = flat.copy()
    pygame.draw.rect(text, (255, 255, 255), pygame.Rect(300, 150, 40, 12))  # a text stroke
    assert not is_flat(text)
    small = pygame.Surface((260, 100))
    small.fill((0, 0, 0))
    pygame.draw.line(small, (255, 255, 255), (10, 50), (250, 50), 6)
    assert not is_flat(small)
    picture = pygame.Surface((640, 360))
    for x in range(640):  # a gradient: the sparse grid of probes tells it at once
        pygame.draw.line(picture, (x * 255 // 639, 40, 90), (x, 0), (x, 359))
    assert not is_flat(picture)
    assert is_flat(picture.subsurface(pygame.Rect(0, 0, 2, 360)))  # within noise: flat


def test_blank_regions_look_at_the_canvas_and_each_media_zone() -> None:
    canvas = pygame.Surface((1920, 1080))
    canvas.fill((10, 32, 64))
    assert blank_regions(canvas, [])
    pygame.draw.rect(canvas, (255, 196, 61), pygame.Rect(1700, 1000, 200, 60))  # the clock
    assert not blank_regions(canvas, [])
    main_zone = pygame.Rect(0, 0, 1920, 960)
    assert blank_regions(canvas, [main_zone])  # the image zone shows nothing
    pygame.draw.circle(canvas, (200, 90, 60), (900, 500), 200)
    assert not blank_regions(canvas, [main_zone])


def _pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def _start(t: float, zone: str, item: str, layout: str = "day") -> TimelineEvent:
    wall = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    return TimelineEvent(t, wall, "sim-1", layout, zone, item, "start", t, 0.0)


async def test_switch_frames_first_policy_keeps_one_per_item(tmp_path: Path) -> None:
    surface = pygame.Surface((64, 36))
    surface.fill((1, 2, 3))
    writer = FrameWriter()
    frames = SwitchFrames(FramePolicy("first"), tmp_path, lambda: surface.copy(), writer)
    frames(_start(0.0, "main", "a"))
    frames(_start(0.0, "ticker", "t"))  # same presented frame: one picture
    frames(_start(8.0, "main", "b"))
    frames(_start(16.0, "main", "a"))  # seen before: skipped
    frames(_start(20.0, "slides", "a", layout="evening"))  # a new layout: kept
    await writer.drain()
    writer.close()
    names = _pngs(tmp_path)
    assert names == [
        frame_name(0.0, "day", "main", "a"),
        frame_name(8.0, "day", "main", "b"),
        frame_name(20.0, "evening", "slides", "a"),
    ]
    assert writer.written == 3
    loaded = pygame.image.load(str(tmp_path / names[0]))
    assert loaded.get_at((0, 0))[:3] == (1, 2, 3)


async def test_switch_policy_keeps_every_switch(tmp_path: Path) -> None:
    writer = FrameWriter()
    frames = SwitchFrames(FramePolicy("switch"), tmp_path, lambda: pygame.Surface((8, 8)), writer)
    for t in (0.0, 8.0, 16.0):
        frames(_start(t, "main", "a"))
    await writer.drain()
    writer.close()
    assert len(_pngs(tmp_path)) == 3


async def test_two_layouts_presented_at_one_virtual_instant_get_a_picture_each(
    tmp_path: Path,
) -> None:
    # The default layout shows while the scheduled one's assets arrive, then the scheduled one,
    # both at the same instant of a virtual clock: the second frame is a switch of its own.
    writer = FrameWriter()
    frames = SwitchFrames(FramePolicy("switch"), tmp_path, lambda: pygame.Surface((8, 8)), writer)
    frames(_start(0.15, "slides", "evening", layout="evening"))
    frames(_start(0.15, "corner", "clock", layout="evening"))  # same frame: one picture
    frames(_start(0.15, "main", "welcome"))  # the day layout's first frame
    await writer.drain()
    writer.close()
    assert _pngs(tmp_path) == sorted(
        [
            frame_name(0.15, "evening", "slides", "evening"),
            frame_name(0.15, "day", "main", "welcome"),
        ]
    )
