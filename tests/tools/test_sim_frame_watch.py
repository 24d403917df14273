"""The simulator's frame watch: the shared detector applied per zone, on a worker thread."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pygame
import pytest
from PIL import Image

from protocol import ImageItem, Item, Transition, VideoItem
from tools.sim._frame_watch import SAMPLE, Fade, FrameJob, FrameWatch, ZoneShot
from zones import surface_image

SIZE = (160, 90)
MS = 1_000_000


def _image_file(folder: Path, name: str, colour: tuple[int, int, int]) -> None:
    Image.new("RGB", SIZE, colour).save(folder / name, "PNG")


@pytest.fixture
def watch(tmp_path: Path) -> tuple[FrameWatch, list[tuple[float, str]]]:
    found: list[tuple[float, str]] = []
    checker = FrameWatch(
        lambda asset: tmp_path / asset,
        lambda t, zone, picture: found.append((t, zone)),
        wait_when_full=True,
    )
    return checker, found


def _item(tmp_path: Path, colour: tuple[int, int, int], **extra: object) -> ImageItem:
    name = hashlib.sha256(repr(colour).encode()).hexdigest()  # the watch resolves names
    _image_file(tmp_path, name, colour)
    return ImageItem(id=name[:8], type="image", asset=name, duration_ms=5000, **extra)


def _shot(
    colour: tuple[int, int, int],
    item: Item,
    black_part: pygame.Rect | None = None,
    **extra: object,
) -> ZoneShot:
    """The zone as the device hands it over: sampled, plus a full copy for a video."""
    picture = pygame.Surface(SIZE)
    picture.fill(colour)
    if black_part is not None:
        picture.fill((0, 0, 0), black_part)
    full = picture if item.type == "video" else None
    sampled = surface_image(picture, sample=SAMPLE)
    return ZoneShot("main", sampled, SIZE, item, (0, 0, 0), full=full, **extra)  # type: ignore[arg-type]


def _run(watch: FrameWatch, *shots: ZoneShot, frozen: bool = False) -> FrameWatch:
    for index, shot in enumerate(shots):
        watch.submit(FrameJob(index * 20 * MS, index * 0.02, [shot], 16_666_667, frozen))
    watch.close()
    return watch


def test_black_dark_grey_and_half_black_zones_are_caught(
    tmp_path: Path, watch: tuple[FrameWatch, list[tuple[float, str]]]
) -> None:
    checker, found = watch
    item = _item(tmp_path, (200, 120, 40))
    half = _shot((200, 120, 40), item, pygame.Rect(0, 0, 80, 90))
    _run(
        checker,
        _shot((200, 120, 40), item),  # the picture itself
        _shot((0, 0, 0), item),
        _shot((15, 15, 15), item),  # dark grey: luma 15
        half,
        _shot((16, 16, 16), item),  # luma 16: the video black level itself, not below it
    )
    assert checker.checked_frames == 5
    assert checker.black_frames == 3
    assert [t for t, _ in found] == pytest.approx([0.02, 0.04, 0.06])


def test_a_dark_item_matching_its_reference_is_not_black(
    tmp_path: Path, watch: tuple[FrameWatch, list[tuple[float, str]]]
) -> None:
    checker, _ = watch
    night = _item(tmp_path, (5, 5, 8))
    _run(checker, _shot((5, 5, 8), night))
    assert checker.black_frames == 0


def test_a_fade_dip_to_a_black_background_is_not_black_but_a_crossfade_gap_is(
    tmp_path: Path, watch: tuple[FrameWatch, list[tuple[float, str]]]
) -> None:
    checker, _ = watch
    before = _item(tmp_path, (200, 120, 40))
    fade = Transition(type="fade", duration_ms=500)
    after = _item(tmp_path, (40, 120, 200), transition=fade)
    mid_dip = Fade("fade", 0.5, before)  # the layout background (black) at the dip
    crossfade = Fade("crossfade", 0.5, before)  # never darker than either item
    _run(
        checker,
        _shot((0, 0, 0), after, fade=mid_dip),
        _shot((0, 0, 0), after, fade=crossfade),
    )
    assert checker.black_frames == 1


def test_zones_above_are_not_judged_as_this_item(
    tmp_path: Path, watch: tuple[FrameWatch, list[tuple[float, str]]]
) -> None:
    checker, _ = watch
    item = _item(tmp_path, (200, 120, 40))
    # A dark zone on top of the left half.
    covered = _shot((200, 120, 40), item, pygame.Rect(0, 0, 80, 90), covered=((0, 0, 80, 90),))
    _run(checker, covered)
    assert checker.black_frames == 0


def test_a_frozen_video_is_caught_on_the_real_clock(
    watch: tuple[FrameWatch, list[tuple[float, str]]],
) -> None:
    checker, _ = watch
    video = VideoItem(id="v", type="video", asset="a" * 64, fit="cover")
    colours = [(10, 200, 10), (20, 200, 20), (30, 200, 30), (40, 200, 40)]
    display = 16_666_667
    times = [0, 40 * MS, 80 * MS, 200 * MS]  # the last picture came 120 ms after the third
    for colour, at in zip(colours, times, strict=True):
        shot = _shot(colour, video, video_started_ns=0, frame_interval_ns=40 * MS)
        checker.submit(FrameJob(at, at / 1e9, [shot], display, check_frozen=True))
    checker.close()
    assert checker.frozen_frames == 1
    assert checker.black_frames == 0


def test_a_full_queue_drops_frames_on_the_real_clock(tmp_path: Path) -> None:
    release = threading.Event()
    found: list[float] = []

    def slow(t: float, zone: str, picture: Image.Image) -> None:
        release.wait(5)
        found.append(t)

    checker = FrameWatch(lambda a: tmp_path / a, slow, wait_when_full=False)
    item = _item(tmp_path, (200, 120, 40))
    for index in range(12):
        checker.submit(FrameJob(index, index, [_shot((0, 0, 0), item)], 16_666_667, False))
    release.set()
    checker.close()
    assert checker.unchecked_frames > 0
    assert checker.checked_frames + checker.unchecked_frames == 12
