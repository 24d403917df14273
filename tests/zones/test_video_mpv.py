"""MpvOutput on real libmpv (headless: software render API, no audio device)."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import mpv
import pygame
import pytest

from core import ZoneError
from tests.zones._video_support import AUDIO, AUDIO_ONLY, CORRUPT, H264, HEVC, ODD, SHORT, VP9, ZONE
from zones._mpv import (
    MpvOutput,
    VideoEvent,
    VideoEventKind,
    VideoOutputLost,
    map_mpv_errors,
)


class Recorder:
    """Collects an output's events (they arrive on mpv's and the render thread) and counts
    the frames rendered (the output renders on its own thread)."""

    def __init__(self, output: MpvOutput) -> None:
        self.output = output
        self.events: queue.Queue[VideoEvent] = queue.Queue()
        self.frames = 0
        output.listener = self.events.put

    def next(self, timeout_s: float) -> VideoEvent | None:
        try:
            event = self.events.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if event.kind is VideoEventKind.FRAME:
            self.frames += 1
        return event

    def first_frame(self, load: int) -> pygame.Surface:
        """Ask for the current picture and wait until it is in the front surface: a copy."""
        self.output.request_frame()
        self.wait(load, VideoEventKind.FRAME)
        with self.output.front() as frame:
            assert frame is not None
            return frame.copy()

    def wait(self, load: int, *kinds: VideoEventKind, timeout_s: float = 10.0) -> VideoEvent:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            event = self.next(left)
            if event is not None and event.load == load and event.kind in kinds:
                return event
        raise AssertionError(f"no {kinds} for load {load} within {timeout_s} s")


@pytest.fixture
def output() -> Iterator[MpvOutput]:
    out = MpvOutput()
    out.set_size(ZONE)
    yield out
    out.close()


def _open(output: MpvOutput, path: Path, **options: object) -> int:
    kwargs: dict[str, object] = {"fit": "contain", "loop": False, "audio": False, "volume": 100}
    kwargs.update(options)
    return output.open(str(path), **kwargs)  # type: ignore[arg-type]


def _lit(surface: pygame.Surface) -> int:
    """How many of a 16x9 grid of sample points are not black."""
    w, h = surface.get_size()
    points = [(w * (2 * i + 1) // 32, h * (2 * j + 1) // 18) for i in range(16) for j in range(9)]
    return sum(1 for p in points if surface.get_at(p)[:3] != (0, 0, 0))


@pytest.mark.parametrize(
    ("clip", "size"),
    [(H264, ZONE), (VP9, ZONE), (HEVC, ZONE), (ODD, (1279, 719)), (ODD, (641, 359))],
    ids=["h264", "vp9", "hevc", "odd-1279x719", "odd-into-odd-zone"],
)
def test_each_decoder_and_size_renders_a_first_frame_while_paused(
    clip: Path, size: tuple[int, int]
) -> None:
    out = MpvOutput()
    try:
        out.set_size(size)
        events = Recorder(out)
        load = _open(out, clip, fit="stretch")
        events.wait(load, VideoEventKind.READY)
        frame = events.first_frame(load)
        assert frame.get_size() == size
        # testsrc2 is colour bars end to end: a stretched frame lights every sample point.
        assert _lit(frame) >= 16 * 9 - 2
    finally:
        out.close()


def test_corrupt_file_reports_an_error_with_mpv_reason(output: MpvOutput) -> None:
    events = Recorder(output)
    load = _open(output, CORRUPT)
    event = events.wait(load, VideoEventKind.ERROR, VideoEventKind.READY)
    assert event.kind is VideoEventKind.ERROR
    assert "unrecognized file format" in event.detail


def test_unsupported_file_reports_an_error(output: MpvOutput, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-video.mp4"
    bogus.write_bytes(b"this is a text file, not a video\n" * 100)
    events = Recorder(output)
    load = _open(output, bogus)
    assert (
        events.wait(load, VideoEventKind.ERROR, VideoEventKind.READY).kind is VideoEventKind.ERROR
    )


@pytest.mark.parametrize("audio", [True, False])
def test_file_without_a_video_stream_is_an_error(output: MpvOutput, audio: bool) -> None:
    events = Recorder(output)
    load = _open(output, AUDIO_ONLY, audio=audio)
    event = events.wait(load, VideoEventKind.ERROR, VideoEventKind.READY)
    assert event.kind is VideoEventKind.ERROR
    expected = "no playable video stream" if audio else "No video or audio streams selected"
    assert expected in event.detail


def test_missing_file_is_an_error(output: MpvOutput) -> None:
    events = Recorder(output)
    load = _open(output, Path("/nonexistent/clip.mp4"))
    event = events.wait(load, VideoEventKind.ERROR, VideoEventKind.READY)
    assert event.kind is VideoEventKind.ERROR


def test_plays_to_the_end_and_keeps_the_last_frame(output: MpvOutput) -> None:
    events = Recorder(output)
    load = _open(output, SHORT)
    events.wait(load, VideoEventKind.READY)
    events.first_frame(load)
    events.frames = 0
    output.play()
    events.wait(load, VideoEventKind.ENDED)
    assert events.frames >= 5  # 10 frames in the clip; the exact count depends on timing
    with output.front() as frame:
        assert frame is not None and _lit(frame) > 100  # last frame, not black


def test_events_of_an_earlier_file_carry_its_load_number(output: MpvOutput) -> None:
    events = Recorder(output)
    first = _open(output, CORRUPT)
    second = _open(output, H264)  # replaces the first before it could fail
    assert second != first
    events.wait(second, VideoEventKind.READY)
    while (event := events.next(0.05)) is not None:
        assert event.load in (first, second)


def test_audio_is_off_unless_asked_and_volume_is_applied() -> None:
    out = MpvOutput(audio_output="null")
    try:
        out.set_size(ZONE)
        events = Recorder(out)
        load = _open(out, AUDIO, audio=True, volume=30)
        events.wait(load, VideoEventKind.READY)
        player = out._player
        assert player.aid is not False and player.mute is False and player.volume == 30
        load = _open(out, AUDIO, audio=False, volume=30)
        events.wait(load, VideoEventKind.READY)
        assert player.aid is False and player.mute is True
    finally:
        out.close()


def test_close_frees_the_render_context_before_terminating_the_handle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_free, real_terminate = mpv.MpvRenderContext.free, mpv.MPV.terminate

    def free(self: mpv.MpvRenderContext) -> None:
        calls.append("free render context")
        real_free(self)

    def terminate(self: mpv.MPV) -> None:
        calls.append("terminate handle")
        real_terminate(self)

    monkeypatch.setattr(mpv.MpvRenderContext, "free", free)
    monkeypatch.setattr(mpv.MPV, "terminate", terminate)
    out = MpvOutput()
    out.set_size(ZONE)
    out.close()
    out.close()  # idempotent
    assert calls == ["free render context", "terminate handle"]
    assert out.latest is None
    out.request_frame()  # harmless after close


def test_a_core_that_shuts_down_is_reported_lost(output: MpvOutput) -> None:
    events = Recorder(output)
    output._player.command("quit")  # what a crashed core looks like to a client
    assert events.wait(0, VideoEventKind.LOST).detail == "mpv core shut down"
    with pytest.raises(VideoOutputLost):
        output.play()


def test_map_mpv_errors_translates_libmpv_exceptions() -> None:
    with (
        pytest.raises(ZoneError, match="loading x: Invalid value") as caught,
        map_mpv_errors("loading x", zone="main", item="v1"),
    ):
        raise ValueError("Invalid value for mpv parameter", -4)
    assert caught.value.zone == "main" and caught.value.item == "v1"
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(VideoOutputLost), map_mpv_errors("playing"):
        raise mpv.ShutdownError("libmpv core has been shutdown")
    with pytest.raises(KeyError), map_mpv_errors("not an mpv error"):
        raise KeyError("left alone")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_switching_many_files_and_handles_does_not_leak_descriptors() -> None:
    out = MpvOutput()
    out.set_size(ZONE)
    events = Recorder(out)
    for _ in range(5):  # warm-up: decoder threads and libraries settle
        events.wait(_open(out, SHORT), VideoEventKind.READY)
    baseline = _open_fds()
    for i in range(40):
        load = _open(out, SHORT if i % 2 else H264)
        events.wait(load, VideoEventKind.READY)
        events.first_frame(load)
    assert _open_fds() <= baseline
    out.close()
    for _ in range(10):
        extra = MpvOutput()
        extra.set_size(ZONE)
        extra.close()
    assert _open_fds() <= baseline


def test_a_file_loads_right_after_unloading_a_failed_one(output: MpvOutput) -> None:
    # unload() and open() must reach mpv in order: a "stop" overtaking the next "loadfile"
    # would silently drop the new file (it happened when unload went through another client).
    events = Recorder(output)
    for _ in range(5):
        events.wait(_open(output, CORRUPT), VideoEventKind.ERROR)
        output.unload()
        events.wait(_open(output, SHORT), VideoEventKind.READY)


def test_glibc_is_told_to_keep_few_arenas_once() -> None:
    # mpv's per-file threads would otherwise each leave an arena behind (RSS creep over
    # thousands of switches; `signage bench video` measures it).
    from zones import _mpv

    first = _mpv._glibc_malloc()
    assert first is not None  # the development and kiosk systems use glibc
    assert _mpv._glibc_malloc() is first


def test_ready_tells_the_clip_length_and_frame_duration(output: MpvOutput) -> None:
    events = Recorder(output)
    ready = events.wait(_open(output, H264), VideoEventKind.READY)  # 2 s at 25 frames/s
    assert ready.duration_s == pytest.approx(2.0, abs=0.05)
    assert ready.frame_s == pytest.approx(1 / 25)
