"""VideoRenderer against FakeMpv: events, faults, handle reuse and replacement, audio ownership."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pygame
import pytest

from core import VideoConfig, ZoneError
from protocol import ImageItem
from tests.fakes.fake_mpv import FakeMpv, FakeMpvFactory
from tests.zones._video_support import CORRUPT, H264, SHORT, ZONE, context, sha_of, video_item
from zones import create_renderer
from zones._mpv import VideoEvent, VideoEventKind
from zones._video import VideoRenderer, VideoRenderers, configure_video


@pytest.fixture
def factory() -> Iterator[FakeMpvFactory]:
    made = FakeMpvFactory()
    yield made
    made.unhang_all()  # let abandoned "hung" calls finish


def make(factory: FakeMpvFactory, **config: object) -> VideoRenderers:
    settings = {"command_timeout_s": 2.0, **config}
    return VideoRenderers(VideoConfig.model_validate(settings), output_factory=factory)


def fake_of(renderer: VideoRenderer) -> FakeMpv:
    output = renderer._output
    assert isinstance(output, FakeMpv)
    return output


def has_ended(renderer: VideoRenderer) -> bool:
    return renderer.ended  # a call, so that mypy does not narrow the property between reads


async def settle() -> None:
    """Let events posted from the fake's threads run on the loop."""
    for _ in range(3):
        await asyncio.sleep(0.01)


async def test_first_frame_is_painted_in_full_on_the_first_draw_after_start(
    factory: FakeMpvFactory,
) -> None:
    renderer = make(factory)(context())
    surface = pygame.Surface(ZONE)
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(0)
    assert renderer.draw(surface, 0) is True
    assert surface.get_at((10, 10))[:3] == (40, 1, 200)  # load 1, the frame rendered paused
    fake_of(renderer).stalled = True
    assert renderer.draw(surface, 1) is False  # nothing new: nothing to blit
    renderer.release()


async def test_new_frames_wake_the_frame_loop_and_are_painted(factory: FakeMpvFactory) -> None:
    wakes: list[int] = []
    renderer = make(factory)(context(wake=lambda: wakes.append(1)))
    surface = pygame.Surface(ZONE)
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(0)
    fake = fake_of(renderer)
    assert fake.playing
    assert renderer.draw(surface, 0)
    assert fake.listener is not None
    fake.listener(VideoEvent(VideoEventKind.FRAME, 1))  # from this thread, like mpv's
    await settle()
    assert wakes and renderer.draw(surface, 1)
    assert renderer.next_change_ns(1) is not None  # keeps watching for a stall
    renderer.release()


async def test_end_of_file_ends_an_item_without_a_duration(factory: FakeMpvFactory) -> None:
    renderers = make(factory)
    endless, timed = renderers(context()), renderers(context())
    await endless.prepare(video_item(H264), ZONE)
    await timed.prepare(video_item(H264, item_id="v2", duration_ms=5000), ZONE)
    for renderer in (endless, timed):
        renderer.start(0)
        fake_of(renderer).trigger_eof()
    await settle()
    assert endless.ended is True
    assert timed.ended is False  # holds its last frame until the deadline cuts it
    assert endless.next_change_ns(0) is None
    endless.release()
    timed.release()


async def test_an_answer_that_arrives_before_open_returns_is_not_lost() -> None:
    renderers = make(FakeMpvFactory(answer_before_return=True), command_timeout_s=1.0)
    renderer = renderers(context())
    await renderer.prepare(video_item(H264), ZONE)  # would time out if READY were dropped
    renderer.release()


async def test_late_events_about_an_earlier_file_are_ignored(factory: FakeMpvFactory) -> None:
    renderers = make(factory, spare_handles=1)
    first = renderers(context())
    await first.prepare(video_item(H264), ZONE)
    first.release()
    second = renderers(context())
    await second.prepare(video_item(H264, item_id="v2"), ZONE)  # same handle, load 2
    fake = fake_of(second)
    assert len(factory.outputs) == 1 and fake.unloads == 1
    assert fake.listener is not None
    fake.listener(VideoEvent(VideoEventKind.ENDED, 1))
    fake.listener(VideoEvent(VideoEventKind.ERROR, 1, "about the old file"))
    await settle()
    assert second.ended is False
    second.start(0)
    assert second.draw(pygame.Surface(ZONE), 0)
    second.release()


async def test_a_file_that_fails_to_load_is_a_zone_error_and_the_handle_is_kept(
    factory: FakeMpvFactory,
) -> None:
    renderers = make(factory)
    fake = await renderers.pool.acquire()
    assert isinstance(fake, FakeMpv)
    fake.fail_next_load = "unrecognized file format (moov atom not found)"
    renderers.pool.give_back(fake)
    renderer = renderers(context("side"))
    with pytest.raises(ZoneError, match="moov atom not found") as caught:
        await renderer.prepare(video_item(CORRUPT, item_id="bad"), ZONE)
    assert (caught.value.zone, caught.value.item) == ("side", "bad")
    assert renderers.pool.kept == 1 and renderers.pool.discarded == 0  # the handle is fine
    assert factory.outputs == [fake]


async def test_an_asset_missing_from_the_cache_is_a_zone_error(factory: FakeMpvFactory) -> None:
    item = video_item(H264).model_copy(update={"asset": "0" * 64})
    with pytest.raises(ZoneError, match="not in the cache"):
        await make(factory)(context()).prepare(item, ZONE)
    assert factory.outputs == []  # no handle was even needed


async def test_only_video_items_are_accepted(factory: FakeMpvFactory) -> None:
    image = ImageItem(id="i1", type="image", asset=sha_of(H264))
    with pytest.raises(ZoneError, match="cannot play a image item"):
        await make(factory)(context()).prepare(image, ZONE)


async def test_a_crashed_handle_is_discarded_and_replaced_without_a_restart(
    factory: FakeMpvFactory,
) -> None:
    renderers = make(factory)
    surface = pygame.Surface(ZONE)
    renderer = renderers(context())
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(0)
    renderer.draw(surface, 0)
    crashed = fake_of(renderer)
    crashed.trigger_crash()
    await settle()
    with pytest.raises(ZoneError, match="video output lost") as caught:
        renderer.draw(surface, 1)
    assert caught.value.item == "v1"
    renderer.release()
    assert renderers.pool.discarded == 1 and renderers.pool.kept == 0
    assert renderers.close() and crashed.closed
    following = renderers(context())
    await following.prepare(video_item(H264, item_id="v2"), ZONE)
    following.start(0)
    assert following.draw(surface, 2)
    assert fake_of(following) is not crashed and len(factory.outputs) == 2
    following.release()


async def test_a_hung_handle_is_abandoned_within_the_timeout_and_replaced(
    factory: FakeMpvFactory,
) -> None:
    renderers = make(factory, command_timeout_s=0.3)
    factory.hang = True
    started = time.monotonic()
    with pytest.raises(ZoneError, match=r"did not answer within 0\.3 s"):
        await renderers(context()).prepare(video_item(H264), ZONE)
    assert time.monotonic() - started < 5  # bounded by the timeout, not by the hang
    assert renderers.pool.discarded == 1
    factory.hang = False
    renderer = renderers(context())
    await renderer.prepare(video_item(H264, item_id="v2"), ZONE)
    assert len(factory.outputs) == 2 and fake_of(renderer) is factory.outputs[1]
    renderer.release()


async def test_a_decoder_that_stops_producing_frames_is_skipped(factory: FakeMpvFactory) -> None:
    renderers = make(factory, stall_s=0.2)
    surface = pygame.Surface(ZONE)
    renderer = renderers(context())
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(0)
    assert renderer.draw(surface, 0)
    fake_of(renderer).stalled = True
    deadline = renderer.next_change_ns(0)
    assert deadline is not None and deadline <= 0.25e9  # the loop comes back to check
    await asyncio.sleep(0.3)
    with pytest.raises(ZoneError, match="decoder stalled"):
        renderer.draw(surface, 1)
    renderer.release()
    assert renderers.pool.discarded == 1  # a stalled handle is not trusted again


async def test_audio_is_off_by_default(factory: FakeMpvFactory) -> None:
    renderer = make(factory)(context())
    await renderer.prepare(video_item(H264, audio=True), ZONE)
    assert factory.outputs[0].opened[0]["audio"] is False
    renderer.release()


async def test_one_zone_at_most_owns_audio(factory: FakeMpvFactory) -> None:
    renderers = make(factory, audio=True, volume=40)
    left, right = renderers(context("left")), renderers(context("right"))
    await left.prepare(video_item(H264, audio=True), ZONE)
    await right.prepare(video_item(H264, audio=True), ZONE)
    assert (left.owns_audio, right.owns_audio) == (True, False)
    assert fake_of(left).opened[-1]["volume"] == 40
    assert fake_of(right).opened[-1]["audio"] is False
    successor = renderers(context("left"))  # the owner's next item keeps the sound
    await successor.prepare(video_item(H264, item_id="v2", audio=True), ZONE)
    assert successor.owns_audio
    left.release()
    successor.release()
    later = renderers(context("right"))
    await later.prepare(video_item(H264, item_id="v3", audio=True), ZONE)
    assert later.owns_audio  # free again once the owner let go
    right.release()
    later.release()


async def test_loop_and_fit_reach_the_output(factory: FakeMpvFactory) -> None:
    renderer = make(factory)(context())
    item = video_item(SHORT, duration_ms=3000, loop=True, fit="cover")
    await renderer.prepare(item, ZONE)
    opened = factory.outputs[0].opened[0]
    assert (opened["loop"], opened["fit"], opened["path"]) == (True, "cover", str(SHORT))
    renderer.release()


async def test_unmounting_a_zone_releases_the_media_player_instance(
    factory: FakeMpvFactory,
) -> None:
    renderers = make(factory, spare_handles=0)
    renderer = renderers(context())
    await renderer.prepare(video_item(H264), ZONE)
    renderer.start(0)
    renderer.stop()
    renderer.release()
    renderer.release()  # idempotent
    assert renderers.close()
    assert factory.outputs[0].closed
    assert renderer.draw(pygame.Surface(ZONE), 0) is False


async def test_mid_section_interruption_cleans_up_a_prepared_video(
    factory: FakeMpvFactory,
) -> None:
    # New content arrives while the next video waits, loaded and paused: it never plays.
    renderers = make(factory, spare_handles=1)
    playing, prepared = renderers(context()), renderers(context())
    await playing.prepare(video_item(H264), ZONE)
    await prepared.prepare(video_item(H264, item_id="v2"), ZONE)
    playing.start(0)
    for renderer in (playing, prepared):
        renderer.stop()
        renderer.release()
    assert renderers.pool.kept == 1  # one kept warm (spare_handles=1) ...
    assert renderers.close()
    assert all(fake.closed for fake in factory.outputs)  # ... and every handle closed at the end
    assert all(fake.listener is None for fake in factory.outputs)


async def test_a_released_handle_is_reused_for_the_next_item(factory: FakeMpvFactory) -> None:
    renderers = make(factory)
    for index in range(5):
        renderer = renderers(context())
        await renderer.prepare(video_item(H264, item_id=f"v{index}"), ZONE)
        renderer.start(0)
        renderer.release()
    assert renderers.close()  # waits for the last unload
    assert len(factory.outputs) == 1 and factory.outputs[0].unloads == 5


def test_video_items_get_this_renderer_from_the_registry(factory: FakeMpvFactory) -> None:
    renderers = configure_video(VideoConfig(), output_factory=factory)
    renderer = create_renderer("video", context())
    assert isinstance(renderer, VideoRenderer) and renderer._pool is renderers.pool
    configure_video(VideoConfig())  # leave the default (libmpv) registration behind


async def test_a_video_without_duration_announces_when_it_will_end(
    factory: FakeMpvFactory,
) -> None:
    renderers = make(factory)
    endless, timed = renderers(context()), renderers(context())
    await endless.prepare(video_item(H264), ZONE)
    await timed.prepare(video_item(H264, item_id="v2", duration_ms=900), ZONE)
    before_start = endless.expected_end_ns
    endless.start(1_000)
    timed.start(1_000)
    assert before_start is None  # not started: unknown
    assert endless.expected_end_ns == 1_000 + 2_000_000_000  # the fake's 2 s length
    assert timed.expected_end_ns is None  # its deadline ends it
    assert endless.opaque is True and endless.prerender is False
    endless.release()
    timed.release()


async def test_a_video_ends_once_its_last_frame_had_its_time(factory: FakeMpvFactory) -> None:
    # mpv says "end of file" a frame or two late; the position reports predict it exactly.
    renderer = make(factory)(context())
    await renderer.prepare(video_item(H264), ZONE)
    fake = fake_of(renderer)
    assert fake.listener is not None
    fake.listener(VideoEvent(VideoEventKind.READY, 1, duration_s=0.2))  # a 0.2 s file
    await settle()
    renderer.start(0)
    started = time.monotonic_ns()
    fake.report_position(0.04, started)  # early on: not trusted to end anything
    await asyncio.sleep(0.25)
    assert not has_ended(renderer)
    next_change = renderer.next_change_ns(0)
    assert next_change is not None and next_change <= 1  # the predicted end is already due
    fake.report_position(0.16, started + 100_000_000)  # last frame, shown 60 ms late
    assert renderer.expected_end_ns == pytest.approx(140_000_000, abs=2_000_000)
    assert has_ended(renderer)  # 0.2 s of video, started 60 ms late, ended by now
    renderer.release()


async def test_the_first_frame_keeps_its_full_frame_time_before_playback_goes_on(
    factory: FakeMpvFactory,
) -> None:
    renderers = make(factory)
    first, second = renderers(context()), renderers(context())
    for renderer in (first, second):
        await renderer.prepare(video_item(H264), ZONE)
        listener = fake_of(renderer).listener
        assert listener is not None
        listener(VideoEvent(VideoEventKind.READY, 1, duration_s=2.0, frame_s=0.04))
    await settle()
    first.start(0)
    second.start(0)
    assert first.draw(pygame.Surface(ZONE), 0)  # frame 0 is up at once ...
    assert not fake_of(first).playing  # ... and mpv is let go only a frame later
    second.stop()  # left the screen within that frame: never unpaused
    await asyncio.sleep(0.1)
    assert fake_of(first).playing and not fake_of(second).playing
    first.release()
    second.release()


async def test_playback_is_let_go_early_by_the_unpause_latency_but_frame_1_waits_its_turn(
    factory: FakeMpvFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zones import _video_renderer as _video

    latency = _video._UnpauseLatency()
    latency.ns = 30_000_000  # mpv measured to need 30 ms from unpause to a rendered frame
    monkeypatch.setattr(_video, "_unpause_latency", latency)
    renderer = make(factory)(context())
    await renderer.prepare(video_item(H264), ZONE)
    listener = fake_of(renderer).listener
    assert listener is not None
    listener(VideoEvent(VideoEventKind.READY, 1, duration_s=2.0, frame_s=0.1))
    await settle()
    loop = asyncio.get_running_loop()
    surface = pygame.Surface(ZONE)
    started = loop.time()
    renderer.start(0)
    timer = renderer._unpause_later
    assert timer is not None
    assert timer.when() - started == pytest.approx(0.07, abs=0.005), "100 ms frame, 30 ms early"
    assert renderer.draw(surface, 0), "frame 0 at once"
    frame0 = surface.get_at((0, 0))
    timer.cancel()
    renderer._unpause()  # mpv let go: frame 1 is rendered at once...
    assert fake_of(renderer).playing
    assert renderer.draw(surface, 1) is False, "...but frame 0 keeps its 100 ms"
    assert surface.get_at((0, 0)) == frame0
    wake = renderer.next_change_ns(0)
    assert wake is not None and 0 < wake <= 100_000_001, "the loop comes back when it is due"
    await asyncio.sleep(0.11)
    assert renderer.draw(surface, 2) is True
    assert surface.get_at((0, 0)) != frame0, "frame 1 once its time has come"
    assert latency.ns < 30_000_000, "the estimate follows what was measured (near 0 here)"
    renderer.release()
