"""VideoRenderer on real libmpv with the committed clips: switching, end of file, loop, faults."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest

from core import ZoneError
from tests.zones._video_support import (
    CORRUPT,
    H264,
    HEVC,
    SHORT,
    VP9,
    ZONE,
    context,
    play_until,
    renderers,
    video_item,
)
from zones._video import VideoRenderer, VideoRenderers


@pytest.fixture
def video() -> Iterator[VideoRenderers]:
    made = renderers()
    yield made
    assert made.close()


def _black(surface: pygame.Surface) -> bool:
    return pygame.transform.average_color(surface)[:3] == (0, 0, 0)


def _pixels(surface: pygame.Surface) -> bytes:
    return pygame.image.tobytes(surface, "RGB")


async def test_video_to_video_switch_paints_the_next_first_frame_at_once(
    video: VideoRenderers,
) -> None:
    surface = pygame.Surface(ZONE)
    first, second = video(context()), video(context())
    await first.prepare(video_item(SHORT), ZONE)
    first.start(0)
    await play_until(first, surface, lambda: first.ended)
    last_of_first = _pixels(surface)
    # The next one was prepared while the first played: loaded, paused, first frame rendered.
    await second.prepare(video_item(VP9, item_id="v2"), ZONE)
    second.start(1)
    first.stop()
    assert second.draw(surface, 1) is True  # on the very first frame after the switch
    assert not _black(surface) and _pixels(surface) != last_of_first
    first.release()
    painted = await play_until(second, surface, lambda: second.frames_painted >= 5)
    assert painted >= 4  # and it plays on
    second.release()


async def test_a_video_without_duration_plays_to_its_end(video: VideoRenderers) -> None:
    surface = pygame.Surface(ZONE)
    renderer = video(context())
    await renderer.prepare(video_item(SHORT), ZONE)
    renderer.start(10**9)
    expected_end = renderer.expected_end_ns  # the next item is prepared ahead of this
    # 0.4 s of clip; playback may already run a frame (40 ms) ahead of start (see _lag_ns).
    assert expected_end is not None and 0.3e9 <= expected_end - 10**9 <= 0.45e9
    painted = await play_until(renderer, surface, lambda: renderer.ended)
    assert painted >= 5  # the clip has 10 frames; a busy machine may drop a few
    assert not _black(surface)  # the last frame stays up
    renderer.draw(surface, 0)  # the last frame may still be on its way
    await asyncio.sleep(0.1)
    renderer.draw(surface, 0)
    assert renderer.draw(surface, 0) is False  # and nothing follows it
    renderer.release()


async def test_a_timed_video_shorter_than_its_duration_holds_its_last_frame(
    video: VideoRenderers,
) -> None:
    surface = pygame.Surface(ZONE)
    renderer = video(context())
    await renderer.prepare(video_item(SHORT, duration_ms=60_000), ZONE)
    renderer.start(0)
    await play_until(renderer, surface, lambda: renderer._eof)
    assert renderer.ended is False  # the deadline, not the file, ends it
    assert not _black(surface)
    renderer.release()


async def test_loop_repeats_a_short_clip_to_fill_its_duration(video: VideoRenderers) -> None:
    surface = pygame.Surface(ZONE)
    renderer = video(context())
    await renderer.prepare(video_item(SHORT, duration_ms=5_000, loop=True), ZONE)
    renderer.start(0)
    # The clip has 10 frames: more than 15 painted means it started over.
    await play_until(renderer, surface, lambda: renderer.frames_painted > 15)
    assert not renderer._eof and not renderer.ended
    renderer.release()


@pytest.mark.parametrize("clip", [H264, VP9, HEVC], ids=["h264", "vp9", "hevc"])
async def test_each_codec_prepares_and_plays(video: VideoRenderers, clip: Path) -> None:
    surface = pygame.Surface((200, 200))  # another aspect ratio: letterboxed (contain)
    renderer = video(context())
    await renderer.prepare(video_item(clip), (200, 200))
    renderer.start(0)
    await play_until(renderer, surface, lambda: renderer.frames_painted >= 3)
    assert surface.get_at((100, 5))[:3] == (0, 0, 0)  # bar above the 16:9 picture
    assert surface.get_at((100, 100))[:3] != (0, 0, 0)
    renderer.release()


async def test_a_corrupt_file_is_a_zone_error_and_the_zone_moves_on(
    video: VideoRenderers,
) -> None:
    broken = video(context())
    with pytest.raises(ZoneError, match="unrecognized file format") as caught:
        await broken.prepare(video_item(CORRUPT, item_id="bad"), ZONE)
    assert caught.value.item == "bad"
    following = video(context())
    await following.prepare(video_item(H264, item_id="next"), ZONE)
    following.start(0)
    assert following.draw(pygame.Surface(ZONE), 0)
    following.release()
    assert video.pool.discarded == 0 and video.pool.created == 1  # the handle survived


async def test_repeated_switches_reuse_two_handles_and_keep_descriptors_flat(
    video: VideoRenderers,
) -> None:
    surface = pygame.Surface(ZONE)

    async def switch(index: int, previous: VideoRenderer | None) -> VideoRenderer:
        renderer = video(context())
        await renderer.prepare(video_item(SHORT if index % 2 else H264, item_id=f"v{index}"), ZONE)
        renderer.start(index)
        if previous is not None:
            previous.stop()
            previous.release()
        await play_until(renderer, surface, lambda: renderer.frames_painted >= 2)
        return renderer

    current = None
    for index in range(4):  # warm-up
        current = await switch(index, current)
    baseline = len(os.listdir("/proc/self/fd"))
    for index in range(4, 30):
        current = await switch(index, current)
    assert current is not None
    current.release()
    assert len(os.listdir("/proc/self/fd")) <= baseline
    assert video.pool.created == 2  # gapless needs two; nothing more was ever created
