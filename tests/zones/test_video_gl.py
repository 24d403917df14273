"""Video on the GL path: mpv's OpenGL render API drawing into the compositor's framebuffers.

Headless on SDL's offscreen driver with EGL (Mesa llvmpipe here, the GPU on a device): real
libmpv on the committed clips, real OpenGL, frames read back with glReadPixels and compared
with the software path's frame of the same clip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import mpv
import pygame
import pytest

from core import VideoConfig, ZoneError
from protocol import Transition
from tests.fakes.fake_mpv import FakeGLMpvFactory, FakeMpvFactory
from tests.media import QUADRANTS, MediaMaker
from tests.zones._video_support import CLIPS, H264, HEVC, ODD, SHORT, VP9, asset_path, video_item
from zones import (
    Compositor,
    GLContext,
    GLOffscreen,
    GLTarget,
    OffscreenDisplay,
    RenderContext,
    Scene,
    ZoneView,
    compositor_for,
)
from zones._gl_draw import Framebuffer
from zones._mpv import VideoEvent, VideoEventKind
from zones._mpv_gl import GLMpvOutput, hwdec_for, outputs_of
from zones._video import VideoRenderer, VideoRenderers

from .gl_support import TOLERANCE, difference, difference_stats, rgb
from .test_video_rotation import CORNERS, _colour_name, _reference

pytestmark = pytest.mark.usefixtures("gl")

S = 1_000_000_000
MS = 1_000_000
HD = CLIPS / "h264_1920x1080_1s.mp4"
UHD = CLIPS / "h264_3840x2160_1s.mp4"
HD_READY = CLIPS / "h264_1280x720_1s.mp4"


def _context(gl: GLContext | None, zone: str = "v") -> RenderContext:
    return RenderContext(zone_id=zone, asset_path=asset_path, gl=gl)


async def _first_frame_composed(
    display: OffscreenDisplay | GLOffscreen, clip: Path, size: tuple[int, int]
) -> pygame.Surface:
    """The clip's first frame in a zone of ``size`` beside a picture zone, composed on the
    display's path and read back."""
    compositor = compositor_for(display)
    renderers = VideoRenderers(VideoConfig())
    renderer = renderers(_context(compositor.gl))
    await renderer.prepare(video_item(clip), size)
    canvas = (size[0] + 40, size[1])
    scene = Scene("s", canvas, "#203040")
    view = scene.add_zone(ZoneView("v", pygame.Rect((0, 0), size)))
    side = scene.add_zone(ZoneView("side", pygame.Rect(size[0], 0, 40, size[1])))
    compositor.present(scene)
    view.show(renderer, 0)
    side.show(_Still((250, 120, 30), (40, size[1])), 0)
    assert compositor.compose(0)
    frame = compositor.frame()
    assert frame is not None
    renderer.release()
    renderers.close()
    display.close()
    return frame


class _Still:
    """A picture zone beside the video: its texture goes up after mpv drew (GL state)."""

    opaque = True
    prerender = False

    def __init__(self, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
        self.surface = pygame.Surface(size)
        self.surface.fill(colour)

    async def prepare(self, item: object, size: tuple[int, int]) -> None: ...

    def start(self, at_ns: int) -> None: ...

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        return None

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None: ...

    def release(self) -> None: ...


@pytest.mark.parametrize(
    ("clip", "size"),
    [
        (H264, (320, 180)),
        (HEVC, (320, 180)),
        (VP9, (320, 180)),
        (HD_READY, (1280, 720)),
        (HD, (640, 360)),  # scaled down
        (ODD, (641, 359)),  # odd sizes, scaled
        (UHD, (960, 540)),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else "x".join(map(str, value)),
)
async def test_the_gl_path_draws_the_frame_the_software_path_draws(
    clip: Path, size: tuple[int, int]
) -> None:
    software = await _first_frame_composed(OffscreenDisplay((size[0] + 40, size[1])), clip, size)
    gl = await _first_frame_composed(GLOffscreen((size[0] + 40, size[1])), clip, size)
    mean, p99, peak = difference_stats(software, gl)
    # Both paths convert BT.601/709 to RGB from the same decoded frame; at 1:1 only rounding
    # and chroma interpolation differ. Scaled, swscale's bicubic and the GPU's bilinear
    # filter agree on flat areas and part at sharp edges (testsrc2 is full of them).
    if clip in (H264, HEVC, VP9, HD_READY):
        assert peak <= 8 and mean <= 1.0, (mean, p99, peak)
    else:
        assert mean <= 2.0 and p99 <= 32, (mean, p99, peak)
    # The picture zone drawn after mpv is exact: mpv's GL state did not leak into it.
    assert rgb(gl, size[0] + 20, size[1] // 2) == (250, 120, 30)
    assert rgb(software, size[0] + 20, size[1] // 2) == (250, 120, 30)


async def _gl_first_frame(
    context: GLContext, clip: Path, size: tuple[int, int], fit: str
) -> pygame.Surface:
    """The clip's paused first frame drawn by a GL output into a framebuffer, read back."""
    output = await asyncio.to_thread(GLMpvOutput, context)
    output.attach()
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[VideoEvent] = asyncio.Queue()

    def listen(event: VideoEvent) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    output.listener = listen
    output.set_size(size)
    load = await asyncio.to_thread(
        output.open,
        str(clip),
        fit=fit,  # type: ignore[arg-type]
        loop=False,
        audio=False,
        volume=0,
    )
    while (event := await asyncio.wait_for(events.get(), 10)).kind is not VideoEventKind.READY:
        assert event.kind is not VideoEventKind.ERROR, event.detail
    assert event.load == load
    output.request_frame()
    while (await asyncio.wait_for(events.get(), 10)).kind is not VideoEventKind.FRAME:
        pass
    target = Framebuffer.create(context, size)
    try:
        assert output.show(GLTarget(target.name, target.texture.name, size)) is not None
        return target.read()
    finally:
        target.delete()
        output.close()


@pytest.mark.parametrize("degrees", [90, 180, 270])
async def test_a_rotated_clip_shows_upright_on_the_gl_path(
    media: MediaMaker, tmp_path: Path, degrees: int
) -> None:
    clip = media(f"rotated_{degrees}.mp4")
    reference = _reference(clip, tmp_path)
    wanted = []
    for fx, fy in CORNERS:
        pixel = reference.getpixel((int(fx * reference.width), int(fy * reference.height)))
        assert isinstance(pixel, tuple)
        wanted.append(_colour_name(pixel))
    assert wanted != list(QUADRANTS), "the clip must carry a rotation (ffmpeg turns it)"
    display = GLOffscreen((16, 16))
    frame = await _gl_first_frame(display.context, clip, (200, 200), "stretch")
    got = [_colour_name(frame.get_at((int(fx * 200), int(fy * 200)))[:3]) for fx, fy in CORNERS]
    assert got == wanted
    # A portrait picture in a landscape zone: letterboxed as a portrait, as in software.
    frame = await _gl_first_frame(display.context, media("rotated_90.mp4"), (320, 180), "contain")
    lit = [x for x in range(320) if max(frame.get_at((x, 90))[:3]) > 24]
    assert 90 <= len(lit) <= 110 and rgb(frame, 10, 90) == (0, 0, 0)
    display.close()


async def test_the_next_clip_is_drawn_into_its_own_framebuffer_before_its_deadline() -> None:
    """Gapless on the GL path: the incoming clip's paused first frame is drawn into its
    layer's framebuffer when it is staged; the switch frame only composes (mpv draws nothing
    in it) and shows exactly that picture, the software path's within tolerance."""
    size = (320, 180)
    software = await _first_frame_composed(OffscreenDisplay((360, 180)), VP9, size)
    display = GLOffscreen(size)
    compositor = compositor_for(display)
    renderers = VideoRenderers(VideoConfig())
    context = _context(compositor.gl)
    first, second = renderers(context), renderers(context)
    await first.prepare(video_item(H264), size)
    await second.prepare(video_item(VP9, item_id="v2"), size)
    scene = Scene("s", size)
    view = scene.add_zone(ZoneView("v", pygame.Rect((0, 0), size)))
    compositor.present(scene)
    now = time.monotonic_ns()
    view.show(first, now)
    assert compositor.compose(now)
    due = now + 200 * MS
    view.stage(second, due)
    staged = view.staged
    output = second._gl_output
    assert staged is not None and staged.target is not None and isinstance(output, GLMpvOutput)
    assert output.renders == 1 and staged.target != view.current.target  # type: ignore[union-attr]
    view.show(second, due)
    assert compositor.compose(due)
    assert output.renders == 1, "the switch frame reuses what was drawn ahead"
    frame = compositor.frame()
    assert frame is not None
    mean, _p99, peak = difference_stats(software.subsurface((0, 0, *size)), frame)
    assert peak <= 8 and mean <= 1.0
    first.release()
    second.release()
    renderers.close()
    display.close()


async def test_a_playing_clip_is_drawn_by_mpv_and_each_swap_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_render, real_swap = mpv.MpvRenderContext.render, mpv.MpvRenderContext.report_swap

    def render(self: mpv.MpvRenderContext, **kwargs: object) -> None:
        calls.append("draw" if "opengl_fbo" in kwargs else "skip")
        real_render(self, **kwargs)

    def report_swap(self: mpv.MpvRenderContext) -> None:
        calls.append("swap")
        real_swap(self)

    monkeypatch.setattr(mpv.MpvRenderContext, "render", render)
    monkeypatch.setattr(mpv.MpvRenderContext, "report_swap", report_swap)
    display = GLOffscreen((320, 180))
    compositor = compositor_for(display)
    renderers = VideoRenderers(VideoConfig())
    renderer = renderers(_context(compositor.gl))
    await renderer.prepare(video_item(H264), (320, 180))
    scene = Scene("s", (320, 180))
    view = scene.add_zone(ZoneView("v", pygame.Rect(0, 0, 320, 180)))
    compositor.present(scene)
    view.show(renderer, time.monotonic_ns())
    pictures = set()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # a frame loop stand-in, woken every 5 ms
        if compositor.compose(time.monotonic_ns()):
            frame = compositor.frame()
            assert frame is not None
            pictures.add(frame.get_at((160, 150))[:3] + frame.get_at((300, 20))[:3])
        await asyncio.sleep(0.005)
    draws = calls.count("draw")
    assert renderer.frames_painted >= 8 and draws >= 8, (renderer.frames_painted, calls)
    assert len(pictures) >= 5, "testsrc2 changes every frame"
    # Every frame mpv handed over and the compositor drew was followed by a reported swap.
    after_draws = [calls[i + 1 : i + 3] for i, call in enumerate(calls) if call == "draw"]
    assert all("swap" in following for following in after_draws[:-1]), calls
    renderer.release()
    renderers.close()
    display.close()


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[VideoRenderers, FakeGLMpvFactory, RenderContext]]:
    display = GLOffscreen((320, 180))
    factory = FakeGLMpvFactory()
    config = VideoConfig(stall_s=0.2, command_timeout_s=0.3)
    renderers = VideoRenderers(config, gl_output_factory=factory)
    yield renderers, factory, _context(display.context)
    factory.unhang_all()
    renderers.close()
    display.close()


def _target(context: RenderContext) -> GLTarget:
    assert context.gl is not None
    framebuffer = Framebuffer.create(context.gl, (320, 180))
    return GLTarget(framebuffer.name, framebuffer.texture.name, (320, 180))


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_crashed_handle_on_the_gl_path_is_discarded_and_replaced(
    fakes: tuple[VideoRenderers, FakeGLMpvFactory, RenderContext],
) -> None:
    renderers, factory, context = fakes
    target = _target(context)
    renderer = renderers(context)
    await renderer.prepare(video_item(H264), (320, 180))
    assert factory.outputs[0].attached, "attached on the loop before loading"
    renderer.start(0)
    assert renderer.draw_gl(target, 0)
    assert factory.outputs[0].targets == [target]
    factory.outputs[0].trigger_crash()
    await asyncio.sleep(0.05)  # the event crosses to the loop
    with pytest.raises(ZoneError, match="lost") as caught:
        renderer.draw_gl(target, 0)
    assert caught.value.zone == "v"
    renderer.release()
    pool = renderers.pool_for(context.gl)
    assert pool.discarded == 1
    await _until(lambda: factory.outputs[0].closed)
    replacement = renderers(context)
    await replacement.prepare(video_item(VP9, item_id="v2"), (320, 180))
    replacement.start(0)
    assert replacement.draw_gl(target, 0)
    assert len(factory.outputs) == 2 and factory.outputs[1].attached
    replacement.release()


async def test_a_stalled_decoder_on_the_gl_path_is_skipped(
    fakes: tuple[VideoRenderers, FakeGLMpvFactory, RenderContext],
) -> None:
    renderers, factory, context = fakes
    target = _target(context)
    renderer = renderers(context)
    await renderer.prepare(video_item(H264), (320, 180))
    renderer.start(0)
    assert renderer.draw_gl(target, 0)
    factory.outputs[0].stalled = True
    with pytest.raises(ZoneError, match="stalled"):
        for _ in range(100):
            renderer.draw_gl(target, 0)
            await asyncio.sleep(0.01)
    renderer.release()
    assert renderers.pool_for(context.gl).discarded == 1


async def test_a_hung_handle_on_the_gl_path_is_abandoned_within_the_timeout(
    fakes: tuple[VideoRenderers, FakeGLMpvFactory, RenderContext],
) -> None:
    renderers, factory, context = fakes
    factory.hang = True
    renderer = renderers(context)
    started = time.monotonic()
    with pytest.raises(ZoneError, match="did not answer"):
        await renderer.prepare(video_item(H264), (320, 180))
    assert time.monotonic() - started < 2.0
    factory.hang = False
    replacement = renderers(context)
    await replacement.prepare(video_item(VP9, item_id="v2"), (320, 180))
    assert len(factory.outputs) == 2
    replacement.release()


async def test_the_compositor_reports_its_swaps_to_the_video(
    fakes: tuple[VideoRenderers, FakeGLMpvFactory, RenderContext],
) -> None:
    renderers, factory, context = fakes
    assert context.gl is not None
    display = GLOffscreen((320, 180))
    compositor = compositor_for(display)
    scene = Scene("s", (320, 180))
    view = scene.add_zone(ZoneView("v", pygame.Rect(0, 0, 320, 180)))
    compositor.present(scene)
    renderer = renderers(_context(compositor.gl))
    await renderer.prepare(video_item(H264), (320, 180))
    view.show(renderer, 0)
    for n in range(3):
        assert compositor.compose(n * 40 * MS)
    output = factory.outputs[0]
    assert output.presented_count == 3 and len(output.targets) == 3
    frame = compositor.frame()
    assert frame is not None and rgb(frame, 10, 10)[2] == 200  # the fake's colour, drawn by GL
    renderer.release()
    display.close()


async def test_a_killed_handle_on_the_gl_path_is_freed_on_the_loop_and_replaced() -> None:
    display = GLOffscreen((320, 180))
    renderers = VideoRenderers(VideoConfig())
    context = _context(display.context)
    target = _target(context)
    renderer = renderers(context)
    await renderer.prepare(video_item(H264), (320, 180))
    renderer.start(time.monotonic_ns())
    assert renderer.draw_gl(target, 0)
    output = renderer._gl_output
    assert isinstance(output, GLMpvOutput)
    output._player.command("quit")  # what a crashed core looks like to a client

    def fails() -> bool:
        try:
            renderer.draw_gl(target, 0)
        except ZoneError:
            return True
        return False

    await _until(fails)
    renderer.release()
    await _until(lambda: output._state == "freed")  # freed on the loop, by the close thread
    assert output not in outputs_of(display.context)
    replacement = renderers(context)
    await replacement.prepare(video_item(VP9, item_id="v2"), (320, 180))
    replacement.start(time.monotonic_ns())
    assert replacement.draw_gl(target, 0)
    pool = renderers.pool_for(context.gl)
    assert (pool.created, pool.discarded) == (2, 1)
    replacement.release()
    renderers.close()
    display.close()


async def test_closing_the_gl_context_frees_every_mpv_renderer_in_it() -> None:
    """A display closing with a clip playing and another kept loaded for a rewind: mpv drops
    its video outputs and the render contexts are freed while the context still exists."""
    display = GLOffscreen((320, 180))
    renderers = VideoRenderers(VideoConfig())
    context = _context(display.context)
    target = _target(context)
    kept = renderers(context)
    await kept.prepare(video_item(SHORT), (320, 180))
    kept.start(time.monotonic_ns())
    assert kept.draw_gl(target, 0)
    playing = renderers(context)
    await playing.prepare(video_item(VP9, item_id="v2"), (320, 180))
    kept.release()  # healthy: kept loaded in its handle for the next occurrence
    playing.start(time.monotonic_ns())
    assert playing.draw_gl(target, 0)
    outputs = list(outputs_of(display.context))
    assert len(outputs) == 2
    started = time.monotonic()
    display.close()  # its last user: the context closes
    assert time.monotonic() - started < 3.0
    assert [output._state for output in outputs] == ["freed", "freed"]
    playing.release()  # after the context: given back to a closed pool, closed
    await asyncio.sleep(0.1)


async def test_a_video_renderer_without_gl_draws_in_software() -> None:
    """The same renderer class on the software path: no GL output, ``draw`` into a surface."""
    renderers = VideoRenderers(VideoConfig())
    renderer: VideoRenderer = renderers(_context(None))
    await renderer.prepare(video_item(H264), (320, 180))
    assert renderer._gl_output is None
    renderer.start(0)
    surface = pygame.Surface((320, 180))
    assert renderer.draw(surface, 0)
    assert difference(surface, surface) == 0 and TOLERANCE >= 0
    renderer.release()
    renderers.close()
    compositor: Compositor = compositor_for(OffscreenDisplay((4, 4)))
    assert compositor.gl is None


async def test_hardware_decoding_follows_the_config_and_is_off_on_a_software_rasteriser() -> None:
    display = GLOffscreen((16, 16))
    context = display.context
    assert context.info.software, "llvmpipe here: the automatic modes decode in software"
    assert [hwdec_for(mode, context) for mode in ("auto-safe", "auto", "auto-copy")] == ["no"] * 3
    assert hwdec_for("vaapi", context) == "vaapi", "a named decoder is tried as configured"
    automatic = await asyncio.to_thread(GLMpvOutput, context, hwdec="auto-safe")
    renderers = VideoRenderers(VideoConfig(hwdec="vaapi-copy"))  # as the player configures it
    named = await asyncio.to_thread(renderers._mpv_gl_factory, context)
    assert isinstance(named, GLMpvOutput)
    try:
        assert automatic._player.hwdec == "no"
        assert automatic._player["gpu-hwdec-interop"] == "no", "nothing probed for nothing"
        assert named._player.hwdec == "vaapi-copy"
        assert named._player["gpu-hwdec-interop"] != "no"
    finally:
        automatic.close()
        named.close()
        renderers.close()
    display.close()


@pytest.mark.parametrize("into_video", [True, False], ids=["picture→video", "video→picture"])
async def test_a_video_zone_crossfades_in_the_shader_like_software(into_video: bool) -> None:
    """A crossfade between a picture and a video: on the GL path the video's framebuffer is
    blended by the compositor's shader; each sampled frame matches the software path's and
    moves one way. (Fake outputs: a flat colour per frame, blue 200, so the blend is exact.)"""
    size = (160, 90)
    steps = [n * 100 * MS for n in range(11)]
    runs: list[list[tuple[int, int]]] = []
    for display in (OffscreenDisplay(size), GLOffscreen(size)):
        compositor = compositor_for(display)
        renderers = VideoRenderers(
            VideoConfig(), output_factory=FakeMpvFactory(), gl_output_factory=FakeGLMpvFactory()
        )
        video = renderers(_context(compositor.gl))
        await video.prepare(video_item(H264), size)
        assert (video._gl_output is not None) == (compositor.gl is not None)
        picture = _Still((220, 20, 20), size)
        first, second = (picture, video) if into_video else (video, picture)
        scene = Scene("s", size, "#000000")
        view = scene.add_zone(ZoneView("v", pygame.Rect((0, 0), size)))
        compositor.present(scene)
        view.show(first, 0)
        assert compositor.compose(0)
        view.show(second, S, Transition(type="crossfade", duration_ms=1000))
        samples = []
        for step in steps:
            assert compositor.compose(S + step), "every frame of a fade is new"
            frame = compositor.frame()
            assert frame is not None
            red, _green, blue = rgb(frame, 80, 45)
            samples.append((red, blue))
        runs.append(samples)
        video.release()
        renderers.close()
        display.close()
    software, gl = runs
    for (sr, sb), (gr, gb) in zip(software, gl, strict=True):
        assert abs(sr - gr) <= 2 and abs(sb - gb) <= 2, (software, gl)
    reds, blues = [r for r, _ in gl], [b for _, b in gl]
    if into_video:
        assert (reds[0], blues[-1]) == (220, 200)
        assert reds == sorted(reds, reverse=True) and blues == sorted(blues), gl
    else:
        assert (blues[0], reds[-1]) == (200, 220)
        assert blues == sorted(blues, reverse=True) and reds == sorted(reds), gl
