"""A synced video kept at group time's position: the follower's decisions, the renderer
applying them (FakeMpv), and a zone's crop on real libmpv."""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest
from PIL import Image

from core import VideoConfig
from tests.fakes.fake_mpv import FakeMpv, FakeMpvFactory
from tests.media import FFMPEG, QUADRANTS, MediaMaker
from tests.zones._video_support import H264, ZONE, context, video_item
from zones._mpv import MpvOutput, VideoEvent, VideoEventKind, crop_filter
from zones._video import VideoRenderer, VideoRenderers
from zones._video_follow import (
    MAX_SPEED_DELTA,
    SEEK_LANDING_NS,
    PlaybackFollower,
)

MS = 1_000_000
S = 1_000_000_000


def test_small_errors_nudge_the_speed_within_one_percent() -> None:
    follower = PlaybackFollower(duration_ns=30 * S)
    assert follower.observe(10 * S + 1 * MS, 10 * S, 1).speed is None  # inside the deadband
    ahead = follower.observe(10 * S + 20 * MS, 10 * S, 2)  # 20 ms ahead: slow down by 1 %
    assert ahead.speed == pytest.approx(0.99) and ahead.seek_to_s is None
    behind = follower.observe(10 * S - 40 * MS, 10 * S, 3)  # behind: as fast as allowed
    assert behind.speed == pytest.approx(1 + MAX_SPEED_DELTA)
    assert follower.observe(10 * S - 39 * MS, 10 * S, 4).speed is None  # no change worth it
    back = follower.observe(10 * S, 10 * S, 5)
    assert back.speed == 1.0  # converged: normal speed again
    assert list(follower.errors_ns) == [1 * MS, 20 * MS, -40 * MS, -39 * MS, 0]


def test_a_large_error_is_one_seek_to_where_the_group_will_be() -> None:
    follower = PlaybackFollower(duration_ns=30 * S)
    joined = follower.observe(0, 12 * S, 100)  # a screen that joins 12 s into the clip
    assert joined.seek_to_s == pytest.approx((12 * S + SEEK_LANDING_NS) / S)
    assert follower.seeks == 1
    assert follower.observe(0, 12 * S + 5 * MS, 100) == follower.observe(0, 0, 99)  # stale
    # The first report after the seek: 20 ms ahead of the group, so the seek took 20 ms less
    # than guessed: the next guess is halfway there.
    landed = follower.observe(12_220 * MS, 12_200 * MS, 100 + 80 * MS)
    assert landed.seek_to_s is None and landed.speed == pytest.approx(0.99)
    assert follower.landing_ns == SEEK_LANDING_NS - 10 * MS


def test_a_looping_clip_compares_positions_round_its_length() -> None:
    follower = PlaybackFollower(duration_ns=2 * S, loop=True)
    # Expected 6.010 s into a 2 s loop is 0.010 s; mpv shows 1.995 s (just before wrapping).
    correction = follower.observe(1_995 * MS, 6_010 * MS, 1)
    assert correction.seek_to_s is None and follower.errors_ns[-1] == -15 * MS
    far = follower.observe(1 * S, 6_010 * MS, 2)  # half a loop away: seek
    assert far.seek_to_s is not None and 0 <= far.seek_to_s < 2


def test_past_the_end_of_a_clip_nothing_is_corrected() -> None:
    follower = PlaybackFollower(duration_ns=2 * S)
    assert follower.observe(2 * S, 3 * S, 1) == follower.observe(0, 2 * S, 2)
    assert follower.seeks == 0


@pytest.fixture
def factory() -> Iterator[FakeMpvFactory]:
    made = FakeMpvFactory()
    yield made
    made.unhang_all()


async def _started(
    factory: FakeMpvFactory, elapsed_offset_ns: int
) -> tuple[VideoRenderer, FakeMpv]:
    """A synced video whose item began ``elapsed_offset_ns`` before its start call."""
    renderers = VideoRenderers(
        VideoConfig.model_validate({"command_timeout_s": 2.0}), output_factory=factory
    )

    def elapsed(since_ns: int, at_ns: int) -> int:
        return at_ns - since_ns + elapsed_offset_ns

    renderer = renderers(dataclasses.replace(context(), elapsed=elapsed))
    await renderer.prepare(video_item(H264, duration_ms=10_000), ZONE)
    renderer.start(time.monotonic_ns())
    output = renderer._output
    assert isinstance(output, FakeMpv)
    return renderer, output


async def _draw_until_unpaused(renderer: VideoRenderer, surface: pygame.Surface) -> None:
    for _ in range(100):
        renderer.draw(surface, time.monotonic_ns())
        if renderer._unpause_later is None:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("never unpaused")


async def test_a_video_joined_mid_item_seeks_to_the_groups_position(
    factory: FakeMpvFactory,
) -> None:
    renderer, fake = await _started(factory, 1_200 * MS)  # its slot began 1.2 s ago
    surface = pygame.Surface(ZONE)
    await _draw_until_unpaused(renderer, surface)
    fake.report_position(0.04, time.monotonic_ns())
    renderer.draw(surface, time.monotonic_ns())
    assert len(fake.seeks) == 1 and 1.2 < fake.seeks[0] < 1.5
    renderer.release()


async def test_a_video_running_ahead_is_slowed_then_let_go(factory: FakeMpvFactory) -> None:
    renderer, fake = await _started(factory, 0)
    surface = pygame.Surface(ZONE)
    await _draw_until_unpaused(renderer, surface)
    seen = time.monotonic_ns()
    assert renderer._started_at is not None
    expected_s = (seen - renderer._started_at) / S
    fake.report_position(expected_s + 0.010, seen)  # 10 ms ahead of the group
    renderer.draw(surface, time.monotonic_ns())
    assert fake.speeds == [pytest.approx(0.995, abs=2e-4)] and fake.seeks == []
    seen = time.monotonic_ns()
    fake.report_position((seen - renderer._started_at) / S, seen)
    renderer.draw(surface, time.monotonic_ns())
    assert fake.speeds[-1] == 1.0
    renderer.release()


async def test_without_a_group_nothing_is_followed(factory: FakeMpvFactory) -> None:
    renderers = VideoRenderers(VideoConfig.model_validate({}), output_factory=factory)
    renderer = renderers(context())
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(time.monotonic_ns() - 5 * S)
    surface = pygame.Surface(ZONE)
    await _draw_until_unpaused(renderer, surface)
    output = renderer._output
    assert isinstance(output, FakeMpv)
    output.report_position(0.1, time.monotonic_ns())
    renderer.draw(surface, time.monotonic_ns())
    assert renderer.follower is None and output.seeks == output.speeds == []
    renderer.release()


def test_the_crop_filter_names_even_pixels_of_the_tile() -> None:
    assert crop_filter((0.5, 0.0, 0.5, 1.0)) == (
        "lavfi-crop=w=trunc(iw*0.500000/2)*2:h=trunc(ih*1.000000/2)*2"
        ":x=trunc(iw*0.500000/2)*2:y=trunc(ih*0.000000/2)*2"
    )


@pytest.mark.parametrize(
    ("crop", "colour"),
    [((0.0, 0.0, 0.5, 1.0), (220, 20, 20)), ((0.5, 0.0, 0.5, 1.0), (20, 20, 220))],
    ids=["left-tile", "right-tile"],
)
def test_a_zone_shows_its_tile_of_the_picture_on_real_libmpv(
    tmp_path: Path, crop: tuple[float, float, float, float], colour: tuple[int, int, int]
) -> None:
    """Two screens of a wall: each shows its half of one picture, stretched to its zone."""
    picture = Image.new("RGB", (640, 180), (220, 20, 20))
    picture.paste((20, 20, 220), (320, 0, 640, 180))
    path = tmp_path / "wide.png"
    picture.save(path)
    out = MpvOutput()
    try:
        out.set_size(ZONE)
        events: list[VideoEvent] = []
        out.listener = events.append

        def wait(load: int, kind: VideoEventKind) -> None:
            deadline = time.monotonic() + 10
            while not any(e.load == load and e.kind is kind for e in events):
                assert time.monotonic() < deadline, events
                time.sleep(0.01)

        load = out.open(str(path), fit="stretch", loop=False, audio=False, volume=0, crop=crop)
        wait(load, VideoEventKind.READY)
        out.request_frame()
        wait(load, VideoEventKind.FRAME)
        with out.front() as frame:
            assert frame is not None
            got = [frame.get_at(point)[:3] for point in ((5, 5), (160, 90), (314, 174))]
        for pixel in got:
            assert all(abs(a - b) < 24 for a, b in zip(pixel, colour, strict=True)), got
    finally:
        out.close()


def test_a_rotated_clip_is_cropped_upright(media: MediaMaker, tmp_path: Path) -> None:
    """The tile is of the picture as shown: the rotation filter first, then the crop."""
    clip = media("rotated_90.mp4")
    png = tmp_path / "reference.png"
    subprocess.run(
        [FFMPEG, "-v", "error", "-nostdin", "-y", "-i", str(clip), "-frames:v", "1", str(png)],
        check=True,
        timeout=60,
    )
    reference = Image.open(png).convert("RGB")

    def nearest(rgb: tuple[int, ...]) -> tuple[int, int, int]:
        return min(QUADRANTS, key=lambda q: sum((a - b) ** 2 for a, b in zip(q, rgb, strict=False)))

    # The left half of the upright picture: its two left quadrants, top and bottom.
    wanted = []
    for fy in (0.25, 0.75):
        pixel = reference.getpixel((int(0.25 * reference.width), int(fy * reference.height)))
        assert isinstance(pixel, tuple)
        wanted.append(nearest(pixel))
    out = MpvOutput()
    try:
        events: queue.Queue[VideoEvent] = queue.Queue()
        out.listener = events.put
        out.set_size((100, 200))
        load = out.open(
            str(clip), fit="stretch", loop=False, audio=False, volume=0, crop=(0, 0, 0.5, 1)
        )
        while (event := events.get(timeout=10)).kind is not VideoEventKind.READY:
            assert event.kind is not VideoEventKind.ERROR, event.detail
        assert event.load == load
        out.request_frame()
        while events.get(timeout=10).kind is not VideoEventKind.FRAME:
            pass
        with out.front() as frame:
            assert frame is not None
            got = [nearest(frame.get_at((50, int(fy * 200)))[:3]) for fy in (0.25, 0.75)]
            right = nearest(frame.get_at((95, 50))[:3])
    finally:
        out.close()
    assert got == wanted
    assert right == wanted[0]  # the whole zone is the left half: no right quadrant in it
