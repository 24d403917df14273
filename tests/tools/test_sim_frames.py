"""Frame policies and switch captures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pygame
import pytest

from core import ConfigError
from player import TimelineEvent
from protocol import Transition
from tools.sim._frames import (
    FramePolicy,
    FrameWriter,
    SwitchFrames,
    frame_name,
)


def test_policies_parse_and_print() -> None:
    for text in ("none", "switch", "first", "every:2.5"):
        assert str(FramePolicy.parse(text)) == text
    assert FramePolicy.parse("every:10").every_s == 10
    for bad in ("every:", "every:-1", "every:0", "all", ""):
        with pytest.raises(ConfigError, match="--frames"):
            FramePolicy.parse(bad)


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


@pytest.mark.parametrize("policy", ["switch", "switch+start"])
async def test_an_item_fading_in_is_taken_once_the_transition_has_finished(
    tmp_path: Path, policy: str
) -> None:
    # The screen shows the outgoing item (red) until the fade ends, then the new one (blue).
    screen = pygame.Surface((8, 8))
    screen.fill((200, 0, 0))
    fades = {"b": Transition(type="fade", duration_ms=500)}
    writer = FrameWriter()
    frames = SwitchFrames(
        FramePolicy.parse(policy),
        tmp_path,
        lambda: screen.copy(),
        writer,
        lambda item: fades.get(item or ""),
    )
    frames(_start(8.0, "main", "b"))  # fade frame 0: still red
    frames.frame(8.0)
    frames.frame(8.25)  # the dip
    screen.fill((0, 0, 200))
    frames.frame(8.5)  # finished: blue
    frames.frame(8.6)
    await writer.drain()
    writer.close()
    end = frame_name(8.5, "day", "main", "b", "fade-end")
    expected = (
        [end]
        if policy == "switch"
        else sorted([end, frame_name(8.0, "day", "main", "b", "fade-start")])
    )
    assert _pngs(tmp_path) == expected
    assert end.endswith("_b_fade-end.png")
    loaded = pygame.image.load(str(tmp_path / end))
    assert loaded.get_at((0, 0))[:3] == (0, 0, 200), "the incoming item, not the outgoing one"
    assert str(FramePolicy.parse(policy)) == policy
