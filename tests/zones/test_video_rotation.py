"""Rotated clips (a phone's portrait video) on the software render path: upright, never fatal.

libmpv 0.35.1's software renderer aborted the process on the first frame of a clip whose
container says "rotate" (an assertion in ``mp_image_crop``). Each clip here is made by ffmpeg
with ``-metadata:s:v:0 rotate=N``; ffmpeg's own decode of it (which applies the rotation) is
the reference the rendered frame must match, corner by corner.
"""

from __future__ import annotations

import queue
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest
from PIL import Image

from tests.media import FFMPEG, QUADRANTS, MediaMaker
from zones._mpv import MpvOutput, VideoEvent, VideoEventKind
from zones._mpv_rotation import rotation_filter, video_rotation

CORNERS = ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))


@pytest.fixture
def output() -> Iterator[MpvOutput]:
    out = MpvOutput()
    yield out
    out.close()


def _first_frame(output: MpvOutput, clip: Path, size: tuple[int, int], fit: str) -> pygame.Surface:
    events: queue.Queue[VideoEvent] = queue.Queue()
    output.listener = events.put
    output.set_size(size)
    load = output.open(str(clip), fit=fit, loop=False, audio=False, volume=0)  # type: ignore[arg-type]
    while (event := events.get(timeout=10)).kind is not VideoEventKind.READY or event.load != load:
        assert event.kind is not VideoEventKind.ERROR, event.detail
    output.request_frame()
    while (event := events.get(timeout=10)).kind is not VideoEventKind.FRAME:
        pass
    with output.front() as frame:
        assert frame is not None
        return frame.copy()


def _reference(clip: Path, folder: Path) -> Image.Image:
    """ffmpeg's first frame of ``clip``, rotation applied (ffmpeg autorotates)."""
    png = folder / f"{clip.stem}-reference.png"
    subprocess.run(
        [FFMPEG, "-v", "error", "-nostdin", "-y", "-i", str(clip), "-frames:v", "1", str(png)],
        check=True,
        timeout=60,
    )
    return Image.open(png).convert("RGB")


def _colour_name(rgb: tuple[int, ...]) -> tuple[int, int, int]:
    """The quadrant colour nearest to ``rgb`` (video compression blurs them a little)."""
    return min(QUADRANTS, key=lambda q: sum((a - b) ** 2 for a, b in zip(q, rgb, strict=False)))


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotated_clip_renders_upright_as_ffmpeg_shows_it(
    output: MpvOutput, media: MediaMaker, tmp_path: Path, degrees: int
) -> None:
    clip = media(f"rotated_{degrees}.mp4")
    reference = _reference(clip, tmp_path)
    wanted = []
    for fx, fy in CORNERS:
        pixel = reference.getpixel((int(fx * reference.width), int(fy * reference.height)))
        assert isinstance(pixel, tuple)
        wanted.append(_colour_name(pixel))
    assert wanted != list(QUADRANTS), "the clip must carry a rotation (ffmpeg turns it)"
    frame = _first_frame(output, clip, (200, 200), "stretch")  # corners land on corners
    got = [_colour_name(frame.get_at((int(fx * 200), int(fy * 200)))[:3]) for fx, fy in CORNERS]
    assert got == wanted


def test_a_portrait_clip_is_letterboxed_as_a_portrait(output: MpvOutput, media: MediaMaker) -> None:
    clip = media("rotated_90.mp4")  # 320x180 frames, shown 180x320
    frame = _first_frame(output, clip, (320, 180), "contain")
    # A portrait picture in a landscape zone: bars left and right, picture in the middle.
    assert frame.get_at((10, 90))[:3] == (0, 0, 0)
    assert frame.get_at((310, 90))[:3] == (0, 0, 0)
    assert frame.get_at((160, 90))[:3] != (0, 0, 0)
    lit = [x for x in range(320) if frame.get_at((x, 90))[:3] != (0, 0, 0)]
    assert 90 <= len(lit) <= 110  # 180 * 180 / 320 ~ 101 pixels wide


def test_the_handle_plays_an_upright_clip_after_a_rotated_one(
    output: MpvOutput, media: MediaMaker, tmp_path: Path
) -> None:
    # The filter belongs to the rotated file only: the next file on the handle is left alone.
    _first_frame(output, media("rotated_90.mp4"), (200, 200), "stretch")
    still = media("quadrants.jpg")
    clip = tmp_path / "upright.mp4"
    subprocess.run(
        [FFMPEG, "-v", "error", "-nostdin", "-loop", "1", "-i", str(still), "-t", "0.3",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-vf", "scale=320:180", str(clip)],
        check=True,
        timeout=60,
    )  # fmt: skip
    frame = _first_frame(output, clip, (200, 200), "stretch")
    got = [_colour_name(frame.get_at((int(fx * 200), int(fy * 200)))[:3]) for fx, fy in CORNERS]
    assert got == list(QUADRANTS)


def test_rotation_filters_cover_the_quarter_turns() -> None:
    assert rotation_filter(0) == ""
    assert rotation_filter(90) == "lavfi=[transpose=clock]"
    assert rotation_filter(180) == "lavfi=[hflip,vflip]"
    assert rotation_filter(270) == "lavfi=[transpose=cclock]"
    assert rotation_filter(-90) == rotation_filter(270)
    assert rotation_filter(88) == rotation_filter(90)  # mpv turns by quarter turns only


def test_the_rotation_comes_from_the_first_video_track_that_is_not_cover_art() -> None:
    tracks = [
        {"type": "audio", "id": 1},
        {"type": "video", "id": 1, "albumart": True, "demux-rotation": 90},
        {"type": "video", "id": 2, "demux-rotation": 270},
    ]
    assert video_rotation(tracks) == 270
    assert video_rotation([{"type": "video", "id": 1}]) == 0
    assert video_rotation(None) == 0
