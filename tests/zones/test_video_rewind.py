"""A clip played again is rewound in the handle that kept it loaded, not loaded again."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest

from core import VideoConfig, ZoneError
from tests.zones._video_support import (
    CORRUPT,
    SHORT,
    VP9,
    ZONE,
    context,
    play_until,
    video_item,
)
from zones import RenderContext
from zones._mpv import Crop, Fit, MpvOutput
from zones._video import VideoRenderers


class CountingOutput(MpvOutput):
    """The real mpv output, counting how files reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.opens = 0
        self.rewinds = 0

    def open(
        self, path: str, *, fit: Fit, loop: bool, audio: bool, volume: int, crop: Crop = None
    ) -> int:
        self.opens += 1
        return super().open(path, fit=fit, loop=loop, audio=audio, volume=volume, crop=crop)

    def rewind(self) -> int:
        self.rewinds += 1
        return super().rewind()


class Factory:
    def __init__(self) -> None:
        self.outputs: list[CountingOutput] = []

    def __call__(self) -> CountingOutput:
        output = CountingOutput()
        self.outputs.append(output)
        return output

    def count(self, what: str) -> int:
        return sum(getattr(o, what) for o in self.outputs)


@pytest.fixture
def factory() -> Factory:
    return Factory()


@pytest.fixture
def video(factory: Factory) -> Iterator[VideoRenderers]:
    made = VideoRenderers(VideoConfig(), output_factory=factory)
    yield made
    assert made.close()


def _pixels(surface: pygame.Surface) -> bytes:
    return pygame.image.tobytes(surface, "RGB")


async def test_a_replayed_clip_is_rewound_and_starts_again_at_its_first_frame(
    video: VideoRenderers, factory: Factory
) -> None:
    surface = pygame.Surface(ZONE)
    first = video(context())
    await first.prepare(video_item(SHORT), ZONE)
    assert first.draw(surface, 0)
    first_frame = _pixels(surface)
    first.start(0)
    await play_until(first, surface, lambda: first.ended)
    assert _pixels(surface) != first_frame  # it played to its last frame
    first.release()

    again = video(context())
    await again.prepare(video_item(SHORT, item_id="again"), ZONE)
    assert (factory.count("opens"), factory.count("rewinds"), len(factory.outputs)) == (1, 1, 1)
    assert again.draw(surface, 0)
    assert _pixels(surface) == first_frame  # frame 0 again, not the last frame it stopped on
    again.start(0)
    painted = await play_until(again, surface, lambda: again.ended)
    assert painted >= 2  # it plays through to its end a second time
    again.release()


async def test_a_clip_rewritten_on_disk_is_loaded_again(
    video: VideoRenderers, factory: Factory, tmp_path: Path
) -> None:
    clip = tmp_path / SHORT.name
    shutil.copyfile(SHORT, clip)
    in_tmp = RenderContext(zone_id="main", asset_path=lambda _sha: clip)
    item = video_item(SHORT)
    for _ in range(2):
        renderer = video(in_tmp)
        await renderer.prepare(item, ZONE)
        renderer.release()
    assert (factory.count("opens"), factory.count("rewinds")) == (1, 1)
    stat = clip.stat()
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # bytes rewritten
    renderer = video(in_tmp)
    await renderer.prepare(item, ZONE)
    renderer.release()
    assert (factory.count("opens"), factory.count("rewinds")) == (2, 1)


async def test_another_clip_replaces_the_kept_one_in_its_handle(
    video: VideoRenderers, factory: Factory
) -> None:
    surface = pygame.Surface(ZONE)
    first = video(context())
    await first.prepare(video_item(SHORT), ZONE)
    first.release()
    other = video(context())
    await other.prepare(video_item(VP9, item_id="other"), ZONE)
    assert (factory.count("opens"), factory.count("rewinds"), len(factory.outputs)) == (2, 0, 1)
    assert other.draw(surface, 0)
    other.release()


async def test_a_clip_that_failed_is_not_kept_for_a_rewind(
    video: VideoRenderers, factory: Factory
) -> None:
    for _ in range(2):
        broken = video(context())
        with pytest.raises(ZoneError):
            await broken.prepare(video_item(CORRUPT), ZONE)
    assert factory.count("rewinds") == 0
    assert factory.count("opens") == 2
