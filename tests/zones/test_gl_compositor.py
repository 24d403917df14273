"""The GL path against the software path: the same scenes, frames read back with glReadPixels.

Headless on SDL's offscreen driver with EGL (Mesa llvmpipe here, the GPU on a device): every
test opens a real OpenGL context; nothing is mocked.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pygame
import pytest
from PIL import Image

from core import DisplayConfig, PlayerError
from protocol import ImageItem, Item, TextItem, Transition
from zones import (
    Compositor,
    GLCompositor,
    GLOffscreen,
    GLTarget,
    GLWindow,
    ImageRenderer,
    OffscreenDisplay,
    RenderContext,
    Renderer,
    Scene,
    ScreenDisplay,
    TextRenderer,
    ZoneView,
    compositor_for,
    offscreen_display,
    open_display,
)
from zones import _gl as g
from zones._gl_draw import program_of

from .gl_support import TOLERANCE, difference, rgb

pytestmark = pytest.mark.usefixtures("gl")

S = 1_000_000_000
MS = 1_000_000
SIZE = (320, 180)
ONE, TWO = "1" * 64, "2" * 64


def _photo(path: Path, size: tuple[int, int], tint: tuple[int, int, int]) -> None:
    """A gradient picture (decodes like a photo, every pixel different)."""
    gradient = Image.linear_gradient("L").resize(size)
    bands = [gradient.point(lambda v, t=t: (v * t) // 255) for t in tint]
    Image.merge("RGB", bands).save(path)


@pytest.fixture
def assets(tmp_path: Path) -> Callable[[str], Path]:
    files = {ONE: tmp_path / "one.png", TWO: tmp_path / "two.png"}
    _photo(files[ONE], (400, 300), (40, 200, 240))
    _photo(files[TWO], (300, 400), (250, 120, 30))
    return lambda sha: files[sha]


def _context(assets: Callable[[str], Path]) -> RenderContext:
    noon = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    return RenderContext(zone_id="z", asset_path=assets, wall_time=lambda ns: noon)


async def _image(
    context: RenderContext, asset: str, size: tuple[int, int], fit: str = "contain"
) -> Renderer:
    renderer = ImageRenderer(context)
    item = ImageItem(id=asset, type="image", asset=asset, duration_ms=1000, fit=fit)
    await renderer.prepare(item, size)
    return renderer


async def _text(context: RenderContext, text: str, size: tuple[int, int]) -> Renderer:
    renderer = TextRenderer(context)
    await renderer.prepare(TextItem(id="t", type="text", text=text), size)
    return renderer


def _scene() -> Scene:
    """Overlapping zones: a photo with bars (contain), a transparent text over it, an opaque
    photo (cover) and a strip, on a coloured background."""
    scene = Scene("layout", SIZE, "#203050")
    scene.add_zone(ZoneView("photo", pygame.Rect(10, 10, 200, 120), 0))
    scene.add_zone(ZoneView("caption", pygame.Rect(20, 80, 260, 60), 2))
    scene.add_zone(ZoneView("cover", pygame.Rect(220, 20, 90, 140), 1))
    return scene


async def _fill(scene: Scene, context: RenderContext) -> None:
    scene.zone("photo").show(await _image(context, ONE, (200, 120)), 0)
    scene.zone("caption").show(await _text(context, "Bienvenue, مرحبا", (260, 60)), 0)
    scene.zone("cover").show(await _image(context, TWO, (90, 140), "cover"), 0)


async def test_a_gl_frame_equals_the_software_frame(assets: Callable[[str], Path]) -> None:
    context = _context(assets)
    frames = []
    for display in (OffscreenDisplay(SIZE), GLOffscreen(SIZE)):
        compositor = compositor_for(display)
        scene = _scene()
        await _fill(scene, context)
        compositor.present(scene)
        assert compositor.compose(0) is True
        frames.append(compositor.frame())
        display.close()
    software, gl = frames
    assert software is not None and gl is not None
    assert gl.get_size() == SIZE
    assert difference(software, gl) <= TOLERANCE
    assert rgb(gl, 300, 175) == (0x20, 0x30, 0x50), "the layout background"


async def test_the_gl_path_is_chosen_for_gl_displays_and_says_which_gpu() -> None:
    display = GLOffscreen(SIZE)
    compositor = compositor_for(display)
    assert isinstance(compositor, GLCompositor)
    assert compositor.gl is display.context
    info = display.info
    assert info.renderer and info.version
    assert info.software == ("llvmpipe" in info.renderer.lower()), info.describe()
    assert not isinstance(compositor_for(OffscreenDisplay(SIZE)), GLCompositor)
    display.close()


@pytest.mark.parametrize("kind", ["fade", "crossfade"])
async def test_fades_blend_in_the_shader_like_software_and_move_one_way(kind: str) -> None:
    """Red gives way to a blue picture over 1 s: each sampled frame equals software's, and
    the red channel only falls while the blue only rises (for a fade: falls to the
    background over the first half, then the picture rises)."""
    size = (160, 90)
    steps = [n * 100 * MS for n in range(11)]
    runs: list[list[pygame.Surface]] = []
    for display in (OffscreenDisplay(size), GLOffscreen(size)):
        compositor = compositor_for(display)
        scene = Scene("fade", size, "#000000")
        view = scene.add_zone(ZoneView("z", pygame.Rect(0, 0, *size)))
        red = pygame.Surface(size)
        red.fill((220, 20, 20))
        view.show(_Picture(red), 0)
        compositor.present(scene)
        compositor.compose(0)
        blue = pygame.Surface(size)
        blue.fill((0, 40, 230))
        view.show(_Picture(blue), S, Transition(type=kind, duration_ms=1000))
        frames = []
        for step in steps:
            assert compositor.compose(S + step) is True, "every frame of a fade is new"
            frame = compositor.frame()
            assert frame is not None
            frames.append(frame)
        runs.append(frames)
        display.close()
    for software, gl in zip(*runs, strict=True):
        assert difference(software, gl) <= TOLERANCE
    reds = [rgb(frame, 80, 45)[0] for frame in runs[1]]
    blues = [rgb(frame, 80, 45)[2] for frame in runs[1]]
    assert reds[0] == 220 and blues[-1] == 230
    assert reds == sorted(reds, reverse=True), reds
    if kind == "crossfade":
        assert blues == sorted(blues), blues
    else:
        half = len(blues) // 2
        assert blues[: half + 1] == sorted(blues[: half + 1], reverse=True), blues
        assert blues[half:] == sorted(blues[half:]), blues
        assert rgb(runs[1][half], 80, 45) == (0, 0, 0), "the dip shows the background"


@pytest.mark.parametrize("rotation", [90, 180, 270])
async def test_a_rotated_screen_matches_the_software_display(
    rotation: int, assets: Callable[[str], Path]
) -> None:
    """A 320x180 layout on a panel mounted turned (physical 180x320 or 320x180): the
    physical pixels of the GL framebuffer equal the software display's screen."""
    context = _context(assets)
    physical = (180, 320) if rotation in (90, 270) else (320, 180)
    config = DisplayConfig(
        width=physical[0],
        height=physical[1],
        rotation=rotation,
        fullscreen=False,
        driver="dummy",
        renderer="software",
    )
    screen = ScreenDisplay(config)
    software = Compositor(screen)
    scene = _scene()
    await _fill(scene, context)
    software.present(scene)
    software.compose(0)
    surface = pygame.display.get_surface()
    assert surface is not None
    expected = surface.copy()
    screen.close()

    display = GLOffscreen(physical, rotation)  # type: ignore[arg-type]
    assert display.size == (320, 180)
    compositor = compositor_for(display)
    scene = _scene()
    await _fill(scene, context)
    compositor.present(scene)
    compositor.compose(0)
    assert difference(display.read(), expected) <= TOLERANCE
    display.close()


async def test_a_smaller_canvas_is_scaled_and_letterboxed_on_the_gpu(
    assets: Callable[[str], Path],
) -> None:
    """A 4:3 layout on a 16:9 screen twice its size: black bars left and right, the picture
    scaled (bilinear on the GPU, smoothscale in software: compared on a smooth gradient)."""
    context = _context(assets)
    frames = []
    for renderer in ("software", "gl"):
        if renderer == "software":
            config = DisplayConfig(width=320, height=180, fullscreen=False, driver="dummy")
            display: ScreenDisplay | GLOffscreen = ScreenDisplay(config)
        else:
            display = GLOffscreen((320, 180))
        compositor = compositor_for(display)
        scene = Scene("small", (120, 90), "#000000")
        view = scene.add_zone(ZoneView("z", pygame.Rect(0, 0, 120, 90)))
        view.show(await _image(context, ONE, (120, 90), "stretch"), 0)
        compositor.present(scene)
        compositor.compose(0)
        if isinstance(display, GLOffscreen):
            frames.append(display.read())
        else:
            surface = pygame.display.get_surface()
            assert surface is not None
            frames.append(surface.copy())
        display.close()
    software, gl = frames
    assert rgb(gl, 5, 90) == (0, 0, 0) and rgb(gl, 315, 90) == (0, 0, 0), "pillar-box bars"
    assert rgb(gl, 160, 90) != (0, 0, 0)
    assert difference(software.subsurface(50, 10, 220, 160), gl.subsurface(50, 10, 220, 160)) <= 12


class _Picture:
    """A renderer lending a finished picture (like a photo that fills its zone)."""

    opaque = True

    def __init__(self, surface: pygame.Surface) -> None:
        self.surface = surface
        self.draws = 0

    async def prepare(self, item: Item, size: tuple[int, int]) -> None:
        return None

    def start(self, at_ns: int) -> None:
        self.draws = 0

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        self.draws += 1
        return self.draws == 1

    def next_change_ns(self, now_ns: int) -> int | None:
        return None

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        return None

    def release(self) -> None:
        return None


class _Ticks:
    """Repaints a 10x4 box each frame and reports it as its damage."""

    def __init__(self) -> None:
        self.count = 0
        self.damage: tuple[int, int, int, int] | None = None

    async def prepare(self, item: Item, size: tuple[int, int]) -> None:
        return None

    def start(self, at_ns: int) -> None:
        self.count = 0

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        self.count += 1
        if self.count == 1:
            surface.fill((0, 0, 0, 0))
            self.damage = None
        else:
            self.damage = (5, 5, 10, 4)
        surface.fill((self.count % 256, 100, 100, 255), pygame.Rect(5, 5, 10, 4))
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        return now_ns + MS

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        return None

    def release(self) -> None:
        return None


async def test_only_damaged_rectangles_are_uploaded() -> None:
    display = GLOffscreen((100, 50))
    compositor = GLCompositor(display)
    scene = Scene("ticks", (100, 50))
    view = scene.add_zone(ZoneView("z", pygame.Rect(0, 0, 100, 50)))
    view.show(_Ticks(), 0)
    compositor.present(scene)
    compositor.compose(0)
    assert compositor.uploaded_pixels == 100 * 50, "the first frame uploads the whole layer"
    for n in range(1, 6):
        compositor.compose(n * MS)
    assert compositor.uploaded_pixels == 100 * 50 + 5 * 10 * 4, "then only the damage"
    frame = compositor.frame()
    assert frame is not None and rgb(frame, 6, 6) == (6, 100, 100)
    display.close()


async def test_a_lent_picture_is_uploaded_once_and_nothing_unchanged_is_presented() -> None:
    display = GLOffscreen((64, 64))
    compositor = GLCompositor(display)
    scene = Scene("slides", (64, 64))
    view = scene.add_zone(ZoneView("z", pygame.Rect(0, 0, 64, 64)))
    pictures = [pygame.Surface((64, 64)) for _ in range(2)]
    pictures[0].fill((200, 10, 10))
    pictures[1].fill((10, 10, 200))
    for n in range(6):  # the slideshow cycles; its pictures are cached by the renderer
        view.show(_Picture(pictures[n % 2]), n * S)
        if n == 0:
            compositor.present(scene)
        assert compositor.compose(n * S) is True
        assert compositor.compose(n * S + MS) is False, "nothing changed: no swap"
        frame = compositor.frame()
        assert frame is not None and rgb(frame, 30, 30) == ((200, 10, 10), (10, 10, 200))[n % 2]
    assert compositor.uploaded_pixels == 2 * 64 * 64
    assert display.frames == 6
    display.close()


class _GLBand:
    """A renderer that draws with OpenGL (the ``draw_gl`` hook): its framebuffer cleared to
    green with a red band over the top quarter; software draws the same into a surface."""

    opaque = True

    def __init__(self) -> None:
        self.painted = False
        self.presented_count = 0
        self.targets: list[GLTarget] = []
        self.context: g.GLContext | None = None

    async def prepare(self, item: Item, size: tuple[int, int]) -> None:
        return None

    def start(self, at_ns: int) -> None:
        self.painted = False

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        if self.painted:
            return False
        surface.fill((0, 200, 0))
        surface.fill((200, 0, 0), pygame.Rect(0, 0, surface.get_width(), surface.get_height() // 4))
        self.painted = True
        return True

    def draw_gl(self, target: GLTarget, now_ns: int) -> bool:
        if self.painted:
            return False
        assert g.GLContext.current is not None
        gl = g.GLContext.current.gl
        self.targets.append(target)
        w, h = target.size
        gl.glBindFramebuffer(g.FRAMEBUFFER, target.framebuffer)
        gl.glViewport(0, 0, w, h)
        gl.glDisable(g.BLEND)  # the compositor must set its own state again
        gl.glClearColor(0.0, 200 / 255, 0.0, 1.0)
        gl.glClear(g.COLOR_BUFFER_BIT)
        gl.glEnable(g.SCISSOR_TEST)
        gl.glScissor(0, 0, w, h // 4)  # row 0 is the top of the zone
        gl.glClearColor(200 / 255, 0.0, 0.0, 1.0)
        gl.glClear(g.COLOR_BUFFER_BIT)
        self.painted = True
        return True

    def presented(self) -> None:
        self.presented_count += 1

    def next_change_ns(self, now_ns: int) -> int | None:
        return None

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        return None

    def release(self) -> None:
        return None


async def test_a_renderer_draws_into_a_framebuffer_the_compositor_gives_it() -> None:
    """The hook GL video uses: ``draw_gl`` into a zone-sized framebuffer, ``presented`` after
    the swap; the frame equals the software path's, where the renderer's ``draw`` is used."""
    frames = []
    band = _GLBand()
    for display in (OffscreenDisplay(SIZE), GLOffscreen(SIZE)):
        compositor = compositor_for(display)
        scene = Scene("gl", SIZE, "#000040")
        view = scene.add_zone(ZoneView("video", pygame.Rect(40, 20, 200, 100), 1))
        scene.add_zone(ZoneView("under", pygame.Rect(0, 0, 80, 80), 0)).show(
            _Picture(_filled((64, 64, 64), (80, 80))),
            0,
        )
        band = _GLBand()
        view.show(band, 0)
        compositor.present(scene)
        assert compositor.compose(0)
        frames.append(compositor.frame())
        display.close()
    software, gl = frames
    assert software is not None and gl is not None
    assert difference(software, gl) == 0
    assert rgb(gl, 100, 25) == (200, 0, 0) and rgb(gl, 100, 100) == (0, 200, 0)
    assert [t.size for t in band.targets] == [(200, 100)]
    assert band.presented_count == 1


def _filled(colour: tuple[int, int, int], size: tuple[int, int]) -> pygame.Surface:
    surface = pygame.Surface(size)
    surface.fill(colour)
    return surface


async def test_warming_uploads_the_staged_item_before_its_deadline(
    assets: Callable[[str], Path],
) -> None:
    context = _context(assets)
    display = GLOffscreen(SIZE)
    compositor = GLCompositor(display)
    scene = Scene("warm", SIZE)
    view = scene.add_zone(ZoneView("z", pygame.Rect(0, 0, 200, 120)))
    view.show(await _image(context, ONE, (200, 120)), 0)
    compositor.present(scene)
    compositor.compose(0)
    before = compositor.uploaded_pixels
    view.stage(await _image(context, TWO, (200, 120)), S)
    compositor.warm(["z"])
    assert compositor.uploaded_pixels == before + 200 * 120, "uploaded ahead of the deadline"
    staged = view.staged
    assert staged is not None
    view.show(staged.renderer, S)
    compositor.compose(S)
    assert compositor.uploaded_pixels == before + 200 * 120, "the switch frame only draws"
    display.close()


async def test_the_identify_banner_is_drawn_over_everything(assets: Callable[[str], Path]) -> None:
    frames = []
    for display in (OffscreenDisplay(SIZE), GLOffscreen(SIZE)):
        compositor = compositor_for(display)
        scene = _scene()
        await _fill(scene, _context(assets))
        compositor.present(scene)
        compositor.compose(0)
        compositor.identify("Lobby left", 2 * S)
        assert compositor.compose(S)
        frames.append(compositor.frame())
        display.close()
    assert frames[0] is not None and frames[1] is not None
    assert difference(frames[0], frames[1]) <= TOLERANCE
    assert rgb(frames[1], 2, 178) == (255, 196, 0)


async def test_screenshots_and_frame_listeners_work_on_the_gl_path(
    assets: Callable[[str], Path],
) -> None:
    display = GLOffscreen(SIZE)
    compositor = compositor_for(display)
    seen: list[pygame.Surface] = []
    changed: list[list[pygame.Rect]] = []

    def listen(frame: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        seen.append(frame)
        changed.append(list(rects))

    compositor.add_frame_listener(listen)
    scene = _scene()
    await _fill(scene, _context(assets))
    compositor.present(scene)
    compositor.compose(0)
    png = await compositor.screenshot()
    assert png.startswith(b"\x89PNG")
    picture = pygame.image.load(__import__("io").BytesIO(png))
    frame = compositor.frame()
    assert frame is not None and len(seen) == 1
    assert difference(picture, frame) == 0 and difference(seen[0], frame) == 0
    assert pygame.Rect((0, 0), SIZE) in changed[0], "a new scene changes everything"
    display.close()


async def test_several_players_share_one_context_with_a_framebuffer_each(
    assets: Callable[[str], Path],
) -> None:
    """The simulator's case: pygame has one window, each device draws into its own
    framebuffer of the one context."""
    first, second = GLOffscreen(SIZE), GLOffscreen((160, 90))
    assert first.context is second.context
    red, blue = GLCompositor(first), GLCompositor(second)
    for compositor, colour, size in ((red, (200, 0, 0), SIZE), (blue, (0, 0, 200), (160, 90))):
        scene = Scene("s", size)
        scene.add_zone(ZoneView("z", pygame.Rect((0, 0), size))).show(
            _Picture(_filled(colour, size)),
            0,
        )
        compositor.present(scene)
        compositor.compose(0)
    assert rgb(first.read(), 10, 10) == (200, 0, 0)
    assert rgb(second.read(), 10, 10) == (0, 0, 200)
    first.close()
    context = second.context
    assert not context.closed, "the context lives while a display uses it"
    second.close()
    assert vars(context)["closed"], "closed with its last display"
    assert not pygame.display.get_init()


async def test_opengl_es_2_uploads_without_row_length(assets: Callable[[str], Path]) -> None:
    """An ES 2.0 context (a Pi 3's VC4) has no GL_UNPACK_ROW_LENGTH and speaks GLSL ES 1.00:
    the same frame comes out with whole-row and packed-copy uploads."""
    import dataclasses

    display = GLOffscreen(SIZE)
    context = display.context
    context.info = dataclasses.replace(context.info, major=2, minor=0)
    context.resources.clear()
    assert context.info.glsl_version == "100" and not context.info.row_length
    compositor = compositor_for(display)
    scene = _scene()
    await _fill(scene, _context(assets))
    scene.add_zone(ZoneView("ticks", pygame.Rect(0, 150, 100, 20), 5)).show(_Ticks(), 0)
    compositor.present(scene)
    compositor.compose(0)
    compositor.compose(MS)  # a damaged sub-rectangle: a packed copy goes up
    gl = compositor.frame()
    assert isinstance(program_of(context), object)
    display.close()

    software = Compositor(OffscreenDisplay(SIZE))
    scene = _scene()
    await _fill(scene, _context(assets))
    scene.add_zone(ZoneView("ticks", pygame.Rect(0, 150, 100, 20), 5)).show(_Ticks(), 0)
    software.present(scene)
    software.compose(0)
    software.compose(MS)
    expected = software.frame()
    assert gl is not None and expected is not None
    assert difference(gl, expected) <= TOLERANCE


def test_auto_falls_back_to_software_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    config = DisplayConfig(width=64, height=64, fullscreen=False, driver="dummy", renderer="auto")
    display = open_display(config)
    assert isinstance(display, ScreenDisplay)
    display.close()
    assert any("no GL" in str(getattr(r, "fields", "")) for r in caplog.records)
    with pytest.raises(PlayerError, match="dummy video driver has no OpenGL"):
        open_display(config.model_copy(update={"renderer": "gl"}))
    pygame.display.quit()


def test_auto_takes_gl_only_when_a_gpu_draws_it(caplog: pytest.LogCaptureFixture) -> None:
    """llvmpipe (no GPU) draws on the CPU, slower than the software path: auto passes it over
    with the reason; a hardware renderer would be taken."""
    caplog.set_level(logging.INFO)
    probe = GLOffscreen((16, 16))
    software_rasteriser = probe.info.software
    probe.close()
    config = DisplayConfig(width=128, height=72, fullscreen=False, driver="offscreen")
    display = open_display(config)
    assert isinstance(display, ScreenDisplay if software_rasteriser else GLWindow)
    display.close()
    if software_rasteriser:
        reasons = [str(getattr(r, "fields", {}).get("reason")) for r in caplog.records]
        assert "software rasteriser" in reasons


def test_a_gl_window_on_the_offscreen_driver_swaps_with_vsync_asked() -> None:
    config = DisplayConfig(
        width=128, height=72, fullscreen=False, driver="offscreen", renderer="gl"
    )
    window = open_display(config)
    assert isinstance(window, GLWindow)
    assert window.driver == "offscreen" and window.size == (128, 72)
    assert window.context.vsync, "swap interval 1 was accepted"
    compositor = compositor_for(window)
    scene = Scene("w", (64, 36), "#ff0000")
    compositor.present(scene)
    assert compositor.compose(0) and window.frames == 1
    frame = compositor.frame()
    assert frame is not None and frame.get_size() == (64, 36) and rgb(frame, 3, 3) == (255, 0, 0)
    window.close()


def test_gl_offscreen_displays_follow_the_renderer_choice() -> None:
    assert isinstance(offscreen_display(SIZE, "software"), OffscreenDisplay)
    display = offscreen_display(SIZE, "gl")
    assert isinstance(display, GLOffscreen)
    software_rasteriser = display.info.software
    display.close()
    auto = offscreen_display(SIZE, "auto")
    assert isinstance(auto, OffscreenDisplay if software_rasteriser else GLOffscreen)
    auto.close()


def test_the_gl_binding_reads_the_driver_strings() -> None:
    display = GLOffscreen((16, 16))
    gl = display.context.gl
    size = ctypes.c_int()
    gl.glGetIntegerv(g.MAX_TEXTURE_SIZE, ctypes.byref(size))
    assert size.value >= 2048
    assert display.context.get_proc_address(b"glClear") != 0
    display.close()


async def test_the_player_hands_its_renderers_the_gl_context() -> None:
    from core import Settings
    from player import DirectoryAssets, Player, VirtualClock
    from protocol import Manifest

    manifest = Manifest.model_validate(
        {"version": 1, "assets": [], "playlists": [], "layouts": [], "schedule": []}
    )
    for display in (GLOffscreen((64, 36)), OffscreenDisplay((64, 36))):
        player = Player(
            Settings(), clock=VirtualClock(), assets=DirectoryAssets(Path()), display=display
        )
        await player.start()
        assert player.compositor is not None
        context = player._context_for(manifest)("main")
        expected = display.context if isinstance(display, GLOffscreen) else None
        assert context.gl is expected
        assert player.compositor.gl is expected
        await player.stop()
        display.close()


async def test_released_layers_give_their_textures_back() -> None:
    """Each switch to a new item needs a texture; the outgoing item's comes back once it is
    released and serves the next one (before the fix, finalizers appended to a list the
    compositor had already swapped out, and a photo slideshow leaked 5.5 MB of GPU memory
    per switch). Textures of sizes no longer shown are deleted once the pool is full."""
    import gc

    display = GLOffscreen((64, 36))
    compositor = GLCompositor(display)
    scene = Scene("s", (64, 36))
    view = scene.add_zone(ZoneView("z", pygame.Rect(0, 0, 64, 36)))
    compositor.present(scene)
    for n in range(20):
        view.show(_Ticks(), n * S)
        compositor.compose(n * S)
        gc.collect()
    assert compositor.textures.created <= 3, "reused, not made anew per switch"
    assert len(compositor._textures) <= 2
    for n in range(20, 40):  # zones of ever new sizes: the pool keeps a few, deletes the rest
        scene = Scene("s", (64, 36))
        scene.add_zone(ZoneView("z", pygame.Rect(0, 0, n, 36))).show(_Ticks(), n * S)
        compositor.present(scene)
        compositor.compose(n * S)
        gc.collect()
    assert display.context.freed >= 10
    display.close()
