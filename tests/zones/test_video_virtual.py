"""A video on a virtual media clock (the simulator) ends on that clock, not on mpv's real time."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator

import pygame
import pytest

from core import VideoConfig
from tests.fakes.fake_mpv import FakeMpvFactory
from tests.zones._video_support import H264, ZONE, asset_path, video_item
from zones import RenderContext
from zones._mpv import VideoEvent, VideoEventKind
from zones._video import VideoRenderer, VideoRenderers

S = 1_000_000_000
LENGTH = 2 * S  # the fake's clips are 2 s long


class Media:
    """A virtual media clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def has_ended(renderer: VideoRenderer) -> bool:
    return renderer.ended  # a call: mypy does not narrow a property between reads


@pytest.fixture
def factory() -> Iterator[FakeMpvFactory]:
    made = FakeMpvFactory()
    yield made
    made.unhang_all()


def renderer_on(
    factory: FakeMpvFactory, media: Media | None, *, frame_ns: int = 10 * S
) -> VideoRenderer:
    """A renderer as the simulator's players make them (``--speed max``: a frame per 10 s)."""
    renderers = VideoRenderers(
        VideoConfig.model_validate({"command_timeout_s": 2.0}), output_factory=factory
    )
    context = RenderContext(
        zone_id="main", asset_path=asset_path, virtual_now=media, frame_ns=frame_ns
    )
    return renderers(context)


async def test_a_video_on_a_virtual_clock_ends_at_its_length_in_media_time(
    factory: FakeMpvFactory,
) -> None:
    media = Media()
    renderer = renderer_on(factory, media)
    await renderer.prepare(video_item(H264), ZONE)
    media.now = 5 * S
    renderer.start(5 * S)
    assert renderer.expected_end_ns == 5 * S + LENGTH
    assert renderer.next_change_ns(5 * S) == 5 * S + LENGTH, "the end is a deadline to wake for"
    factory.outputs[-1].trigger_eof()  # mpv got there first, in real time
    await asyncio.sleep(0.03)  # its event reaches the loop
    assert has_ended(renderer) is False, "media time has not reached the end yet"
    media.now = 5 * S + LENGTH - 1
    assert has_ended(renderer) is False
    media.now = 5 * S + LENGTH
    assert has_ended(renderer) is True
    renderer.release()


async def test_on_a_virtual_clock_frames_are_sampled_at_the_frame_rate(
    factory: FakeMpvFactory,
) -> None:
    media = Media()
    renderer = renderer_on(factory, media, frame_ns=S // 4)
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(0)
    assert renderer.next_change_ns(0) == S // 4
    assert renderer.next_change_ns(LENGTH - S // 8) == LENGTH, "then its end"
    fake = factory.outputs[-1]
    assert fake.listener is not None
    surface = pygame.Surface(ZONE)
    assert renderer.draw(surface, 0) is True  # the first frame
    woken: list[int] = []
    renderer._context = dataclasses.replace(renderer._context, wake=lambda: woken.append(1))
    fake.listener(VideoEvent(VideoEventKind.FRAME, 1))  # from this thread, like mpv's
    await asyncio.sleep(0.03)
    assert not woken, "a new frame does not wake the loop: it is drawn at the next sample"
    assert renderer.draw(surface, S // 4) is True, "the new frame, rendered when drawn"
    renderer.release()


async def test_a_video_on_a_virtual_clock_ends_even_if_mpv_is_still_playing(
    factory: FakeMpvFactory,
) -> None:
    # At --speed max media time races ahead of mpv: the clip must not last minutes of it.
    media = Media()
    renderer = renderer_on(factory, media)
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(0)
    media.now = 40 * S
    assert has_ended(renderer) is True
    renderer.release()


async def test_a_video_with_a_duration_is_ended_by_its_deadline_not_by_its_length(
    factory: FakeMpvFactory,
) -> None:
    media = Media()
    renderer = renderer_on(factory, media)
    await renderer.prepare(video_item(H264, duration_ms=9000), ZONE)
    renderer.start(0)
    media.now = 3 * S
    assert has_ended(renderer) is False and renderer.expected_end_ns is None
    renderer.release()


async def test_on_the_real_clock_media_time_does_not_end_a_video(factory: FakeMpvFactory) -> None:
    renderer = renderer_on(factory, None)
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(0)
    assert has_ended(renderer) is False  # no end of file and no position reports yet
    assert renderer.next_change_ns(10 * S) != 10 * S + LENGTH
    renderer.release()
