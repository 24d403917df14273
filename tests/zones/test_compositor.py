"""The compositor headless with the real pygame display (SDL dummy driver): pixels, not mocks."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pygame
import pytest

from core import DisplayConfig, ZoneError
from protocol import Item, Transition
from zones import (
    Compositor,
    DisplayWrapper,
    OffscreenDisplay,
    Scene,
    ScreenDisplay,
    ZoneView,
    png_bytes,
)

S = 1_000_000_000
RED, BLUE, GREEN = (200, 0, 0), (0, 0, 200), (0, 200, 0)


class Solid:
    """A renderer painting one colour; counts what the compositor asks of it."""

    def __init__(self, colour: tuple[int, int, int], *, fail_at: int | None = None) -> None:
        self.colour = colour
        self.draws = 0
        self.painted = False
        self.stopped = self.released = False
        self.fail_at = fail_at

    async def prepare(self, item: Item, size: tuple[int, int]) -> None:
        return None

    def start(self, at_ns: int) -> None:
        self.painted = False

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        self.draws += 1
        if self.fail_at is not None and now_ns >= self.fail_at:
            raise ZoneError("decoder crashed")
        if self.painted:
            return False
        surface.fill(self.colour)
        self.painted = True
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        return None

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        self.stopped = True

    def release(self) -> None:
        self.released = True


@pytest.fixture
def screen() -> Iterator[ScreenDisplay]:
    display = ScreenDisplay(DisplayConfig(width=160, height=90, fullscreen=False, driver="dummy"))
    yield display
    display.close()


def surface() -> pygame.Surface:
    screen = pygame.display.get_surface()
    assert screen is not None
    return screen


def pixel(x: int, y: int) -> tuple[int, int, int]:
    c = surface().get_at((x, y))
    return c.r, c.g, c.b


def scene_with(*zones: tuple[str, pygame.Rect, int], size: tuple[int, int] = (160, 90)) -> Scene:
    scene = Scene("l", size, "#101010")
    for zone_id, rect, z in zones:
        scene.add_zone(ZoneView(zone_id, rect, z))
    return scene


def test_zones_compose_in_z_order_on_the_real_display(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(
        ("top", pygame.Rect(40, 20, 80, 50), 5), ("under", pygame.Rect(0, 0, 100, 90), 0)
    )
    scene.zone("under").show(Solid(RED), 0)
    scene.zone("top").show(Solid(BLUE), 0)
    compositor.present(scene)
    assert compositor.compose(0) is True
    assert pixel(10, 10) == RED
    assert pixel(60, 40) == BLUE, "the higher z wins where zones overlap"
    assert pixel(140, 80) == (16, 16, 16), "the layout background where no zone is"
    assert screen.frames == 1


def test_nothing_changed_nothing_presented(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    scene.zone("a").show(Solid(RED), 0)
    compositor.present(scene)
    compositor.compose(0)
    assert [compositor.compose(n * S) for n in range(1, 6)] == [False] * 5
    assert screen.frames == 1
    assert compositor.next_change_ns(S) is None


def test_only_the_changed_zone_is_redrawn(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(
        ("left", pygame.Rect(0, 0, 80, 90), 0), ("right", pygame.Rect(80, 0, 80, 90), 0)
    )
    scene.zone("left").show(Solid(RED), 0)
    scene.zone("right").show(Solid(BLUE), 0)
    compositor.present(scene)
    compositor.compose(0)
    surface().fill((1, 2, 3), pygame.Rect(0, 0, 80, 90))  # mark the left half
    scene.zone("right").show(Solid(GREEN), S)
    assert compositor.compose(S) is True
    assert pixel(100, 40) == GREEN
    assert pixel(10, 40) == (1, 2, 3), "the unchanged zone was not redrawn"


def test_crossfade_blends_then_releases_the_outgoing(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    old, new = Solid(RED), Solid(BLUE)
    scene.zone("a").show(old, 0)
    compositor.present(scene)
    compositor.compose(0)
    scene.zone("a").show(new, 10 * S, Transition(type="crossfade", duration_ms=1000))
    assert old.stopped and not old.released
    compositor.compose(10 * S + S // 2)
    r, _, b = pixel(80, 45)
    assert 80 < r < 120 and 80 < b < 120, (r, b)
    assert compositor.next_change_ns(10 * S + S // 2) == 10 * S + S // 2 + compositor.frame_ns
    compositor.compose(11 * S)
    assert pixel(80, 45) == BLUE
    assert old.released


@pytest.mark.parametrize("opaque", [False, True])
def test_blending_leaves_the_layers_as_they_were(screen: ScreenDisplay, opaque: bool) -> None:
    class Layer(Solid):
        pass

    Layer.opaque = opaque  # type: ignore[attr-defined]
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    view = scene.zone("a")
    view.show(Layer(RED), 0)
    compositor.present(scene)
    compositor.compose(0)
    view.show(Layer(BLUE), S, Transition(type="crossfade", duration_ms=1000))
    assert view.current is not None
    flags = view.current.surface.get_flags() & pygame.SRCALPHA
    for step in (S // 4, S // 2, 3 * S // 4):
        compositor.compose(S + step)
        r, _, b = pixel(80, 45)
        share = step / S
        assert abs(b - 200 * share) < 12 and abs(r - 200 * (1 - share)) < 12, (step, r, b)
        # The blend borrows the surface's own alpha and gives it back: no copy, no lost mode.
        assert view.current.surface.get_alpha() == (None if opaque else 255)
        assert view.current.surface.get_flags() & pygame.SRCALPHA == flags
    compositor.compose(2 * S)
    assert pixel(80, 45) == BLUE


def test_fade_goes_through_the_background(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    scene.zone("a").show(Solid(RED), 0)
    compositor.present(scene)
    compositor.compose(0)
    scene.zone("a").show(Solid(BLUE), S, Transition(type="fade", duration_ms=1000))
    compositor.compose(S + S // 2)
    assert pixel(80, 45) == (16, 16, 16), "half way: the background"
    compositor.compose(S + S // 4)
    r, _, b = pixel(80, 45)
    assert r > 90 and b < 40


def test_cut_releases_the_previous_renderer_at_once() -> None:
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    old = Solid(RED)
    scene.zone("a").show(old, 0)
    scene.zone("a").show(Solid(BLUE), 0, Transition(type="cut"))
    assert old.stopped and old.released


def test_new_scene_replaces_the_old_only_on_its_first_full_frame(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    first = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    old = Solid(RED)
    first.zone("a").show(old, 0)
    compositor.present(first)
    compositor.compose(0)
    second = scene_with(("b", pygame.Rect(0, 0, 160, 90), 0))
    second.zone("b").show(Solid(BLUE), S)
    compositor.present(second)
    assert pixel(80, 45) == RED and not old.released, "the old frame holds until then"
    compositor.compose(S)
    assert pixel(80, 45) == BLUE
    assert old.released


def test_released_scene_keeps_its_last_frame(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    renderer = Solid(GREEN)
    scene.zone("a").show(renderer, 0)
    compositor.present(scene)
    compositor.compose(0)
    compositor.release_active()
    assert renderer.released
    assert compositor.compose(S) is False
    assert pixel(80, 45) == GREEN
    frame = compositor.frame()
    assert frame is not None and tuple(frame.get_at((5, 5)))[:3] == GREEN


def test_draw_error_goes_to_the_zone_handler(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    errors: list[str] = []
    scene.zone("a").on_error = lambda view, renderer, exc: errors.append(str(exc))
    scene.zone("a").show(Solid(RED, fail_at=S), 0)
    compositor.present(scene)
    compositor.compose(0)
    assert compositor.compose(S) is False
    assert errors == ["decoder crashed"]
    assert pixel(80, 45) == RED


def test_canvas_is_scaled_and_letterboxed_onto_the_screen(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 40, 40), 0), size=(40, 40))  # square on 16:9
    scene.zone("a").show(Solid(RED), 0)
    compositor.present(scene)
    compositor.compose(0)
    assert pixel(80, 45) == RED
    assert pixel(10, 45) == (0, 0, 0), "black bars left and right"
    assert pixel(150, 45) == (0, 0, 0)


@pytest.mark.parametrize(
    ("rotation", "top_left_red_at"),
    [(0, (5, 5)), (90, (155, 5)), (180, (155, 85)), (270, (5, 85))],
)
def test_rotation_turns_the_picture_clockwise(
    rotation: int, top_left_red_at: tuple[int, int]
) -> None:
    config = DisplayConfig(
        width=160, height=90, fullscreen=False, driver="dummy", rotation=rotation
    )
    display = ScreenDisplay(config)
    try:
        assert surface().get_size() == (160, 90), "the panel's own mode"
        portrait = rotation in (90, 270)
        assert display.size == ((90, 160) if portrait else (160, 90))
        compositor = Compositor(display)
        w, h = display.size
        scene = scene_with(("a", pygame.Rect(0, 0, w // 4, h // 4), 0), size=(w, h))
        scene.zone("a").show(Solid(RED), 0)
        compositor.present(scene)
        compositor.compose(0)
        assert pixel(*top_left_red_at) == RED
        assert pixel(80, 45) == (16, 16, 16)
    finally:
        display.close()


async def test_screenshot_is_png_of_the_canvas() -> None:
    compositor = Compositor(OffscreenDisplay((32, 18)))
    scene = scene_with(("a", pygame.Rect(0, 0, 32, 18), 0), size=(32, 18))
    scene.zone("a").show(Solid(BLUE), 0)
    with pytest.raises(ZoneError, match="nothing has been presented"):
        await compositor.screenshot()
    compositor.present(scene)
    compositor.compose(0)
    png = await compositor.screenshot()
    picture = pygame.image.load(io.BytesIO(png), "x.png")
    assert tuple(picture.get_at((16, 9)))[:3] == BLUE


def test_identify_overlay_comes_and_goes() -> None:
    display = OffscreenDisplay((160, 90))
    compositor = Compositor(display)
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    scene.zone("a").show(Solid(RED), 0)
    compositor.present(scene)
    compositor.compose(0)
    compositor.identify("lobby", 2 * S)
    assert compositor.compose(S) is True
    assert tuple(scene.canvas.get_at((2, 88)))[:3] == (255, 196, 0)
    assert compositor.next_change_ns(S) == 2 * S
    assert compositor.compose(2 * S) is True
    assert tuple(scene.canvas.get_at((2, 88)))[:3] == RED
    assert compositor.compose(3 * S) is False


def test_opaque_renderer_gets_a_surface_without_alpha() -> None:
    class Opaque(Solid):
        opaque = True

    view = ZoneView("a", pygame.Rect(0, 0, 16, 9))
    view.show(Opaque(RED), 0)
    assert view.current is not None
    assert not view.current.surface.get_flags() & pygame.SRCALPHA
    view.show(Solid(BLUE), 1)
    assert view.current.surface.get_flags() & pygame.SRCALPHA


class Prerendered(Solid):
    prerender = True


def test_staged_renderer_is_painted_before_its_deadline(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
    scene.zone("a").show(Solid(RED), 0)
    compositor.present(scene)
    compositor.compose(0)
    staged = Prerendered(BLUE)
    scene.zone("a").stage(staged, 5 * S)
    assert staged.draws == 1 and pixel(80, 45) == RED, "painted off screen only"
    scene.zone("a").show(staged, 5 * S)
    assert compositor.compose(5 * S) is True
    assert pixel(80, 45) == BLUE
    assert staged.draws == 2, "the switch itself only blits (draw reports no change)"


def test_renderer_without_prerender_is_not_started_early() -> None:
    view = ZoneView("a", pygame.Rect(0, 0, 16, 9))
    video_like = Solid(RED)
    view.stage(video_like, 5 * S)
    assert video_like.draws == 0


def test_transparent_pixels_show_the_background_or_the_zone_beneath(
    screen: ScreenDisplay,
) -> None:
    class HalfTransparent(Solid):
        def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
            if self.painted:
                return False
            surface.fill((0, 0, 0, 0))
            surface.fill((*GREEN, 255), pygame.Rect(0, 0, surface.get_width() // 2, 90))
            self.painted = True
            return True

    compositor = Compositor(screen)
    scene = scene_with(
        ("low", pygame.Rect(80, 0, 80, 90), 0),
        ("alone", pygame.Rect(0, 0, 80, 90), 1),
        ("over", pygame.Rect(80, 0, 80, 90), 2),
    )
    scene.zone("low").show(Solid(RED), 0)
    scene.zone("alone").show(HalfTransparent(GREEN), 0)
    scene.zone("over").show(HalfTransparent(GREEN), 0)
    assert scene.zone("alone").backdrop is not None and scene.zone("over").backdrop is None
    compositor.present(scene)
    compositor.compose(0)
    assert pixel(10, 45) == GREEN and pixel(70, 45) == (16, 16, 16)
    assert pixel(90, 45) == GREEN and pixel(150, 45) == RED


def test_window_close_or_escape_is_a_quit_request(screen: ScreenDisplay) -> None:
    assert screen.quit_requested() is False
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
    assert screen.quit_requested() is True
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert screen.quit_requested() is True
    assert screen.quit_requested() is False, "the queue was drained"


class Square(Solid):
    """Paints its colour once, then on each later draw a 10x10 square, reported as ``damage``."""

    def __init__(self, colour: tuple[int, int, int], square: tuple[int, int, int]) -> None:
        super().__init__(colour)
        self.square = square
        self.damage: tuple[int, int, int, int] | None = None

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        if not self.painted:
            self.damage = None
            return super().draw(surface, now_ns)
        if now_ns < S:
            return False
        self.damage = (5, 5, 10, 10)
        surface.fill(self.square, pygame.Rect(self.damage))
        return True


def test_a_damage_rectangle_limits_what_is_redrawn_and_presented(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(20, 10, 100, 60), 0))
    scene.zone("a").show(Square(RED, GREEN), 0)
    compositor.present(scene)
    compositor.compose(0)
    surface().fill((1, 2, 3), pygame.Rect(20, 10, 100, 60))  # mark what is on screen
    assert scene.compose(S) == [pygame.Rect(25, 15, 10, 10)], "only the damage, on the canvas"
    compositor.display.present(scene.canvas, [pygame.Rect(25, 15, 10, 10)])
    assert pixel(30, 20) == GREEN
    assert pixel(60, 40) == (1, 2, 3), "the rest of the zone was not presented again"
    assert scene.canvas.get_at((60, 40))[:3] == RED


async def test_clock_seconds_repaint_only_the_text_and_match_a_full_redraw() -> None:
    import datetime as dt

    from protocol import ClockItem
    from zones import ClockRenderer, RenderContext

    noon = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)

    def context() -> RenderContext:
        return RenderContext(
            zone_id="c",
            asset_path=lambda sha: pytest.fail("no assets"),
            wall_time=lambda ns: noon + dt.timedelta(microseconds=ns // 1000),
        )

    item = ClockItem(id="c", type="clock", format="%M:%-S", color="#ffcc00")
    zone = pygame.Rect(40, 0, 120, 90)
    scene = scene_with(("c", zone, 0))
    clock = ClockRenderer(context())
    await clock.prepare(item, zone.size)
    scene.zone("c").show(clock, 0)
    scene.compose(0)
    for second in (1, 10, 59, 60):  # "00:1", "00:10", "00:59", "01:0": the text narrows too
        rects = scene.compose(second * S)
        assert len(rects) == 1 and zone.contains(rects[0])
        assert rects[0].h < zone.h, "a line of text, not the zone"
        fresh = scene_with(("c", zone, 0))
        full = ClockRenderer(context())
        await full.prepare(item, zone.size)
        fresh.zone("c").show(full, second * S)
        fresh.compose(second * S)
        assert pygame.image.tobytes(scene.canvas, "RGB") == pygame.image.tobytes(
            fresh.canvas, "RGB"
        ), f"at {second} s the repaint equals a full redraw (no trace of the old digits)"


def test_touching_pages_reads_each_page_once_and_leaves_the_surface_unlocked() -> None:
    from zones._memory import PAGE, touch_pages

    canvas = pygame.Surface((1920, 1080))
    assert touch_pages(canvas) == -(-1920 * 1080 * 4 // PAGE)
    band = pygame.Rect(0, 100, 1920, 10)  # ten rows of 7680 bytes
    assert touch_pages(canvas, band) == -(-(9 * 7680 + 7680) // PAGE)
    assert touch_pages(canvas, pygame.Rect(5000, 0, 10, 10)) == 0, "outside: nothing"
    assert touch_pages(canvas.subsurface(pygame.Rect(0, 0, 10, 10))) == 0, "no view: skipped"
    assert not canvas.get_locked()
    canvas.blit(pygame.Surface((10, 10)), (0, 0))  # would raise on a locked surface


def test_warming_a_switch_changes_no_pixel_and_locks_nothing(screen: ScreenDisplay) -> None:
    compositor = Compositor(screen)
    scene = scene_with(("a", pygame.Rect(0, 0, 80, 90), 0), ("b", pygame.Rect(80, 0, 80, 90), 0))
    scene.zone("a").show(Solid(RED), 0)
    scene.zone("b").show(Solid(BLUE), 0)
    compositor.present(scene)
    compositor.compose(0)
    staged = Solid(GREEN)
    staged.prerender = True  # type: ignore[attr-defined]
    scene.zone("a").stage(staged, S)
    before = pygame.image.tobytes(surface(), "RGB")
    compositor.warm(["a", "missing"])
    assert pygame.image.tobytes(surface(), "RGB") == before
    assert not scene.canvas.get_locked() and not surface().get_locked()
    scene.zone("a").show(staged, S)
    assert compositor.compose(S) is True
    assert pixel(10, 10) == GREEN and pixel(100, 10) == BLUE


class _Watching(DisplayWrapper):
    """A display that wraps another and looks at each frame (as the simulator's does)."""

    def __init__(self, inner: OffscreenDisplay) -> None:
        super().__init__(inner)
        self.warmed: list[list[pygame.Rect]] = []
        self.presented = 0

    def present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        super().present(canvas, rects)
        self.presented += 1


class _Recording(OffscreenDisplay):
    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__(size)
        self.warmed: list[list[pygame.Rect]] = []

    def warm(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        self.warmed.append(list(rects))


class _ForgetsToWarm:
    """A wrapper written before ``warm`` was part of the Display contract."""

    size = (160, 90)
    frames = 0

    def present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        """Presents, and nothing else."""

    def close(self) -> None:
        """Nothing to close."""


def test_every_display_is_warmed_before_a_switch_wrapped_or_not() -> None:
    scene = scene_with(("a", pygame.Rect(0, 0, 80, 90), 0), ("b", pygame.Rect(80, 0, 80, 90), 0))
    scene.zone("a").show(Solid(RED), 0)
    screen = _Recording((160, 90))
    display = _Watching(screen)  # overrides present() only: warm() reaches the screen
    compositor = Compositor(display)
    compositor.present(scene)
    compositor.compose(0)
    compositor.warm(["a"])
    assert display.presented == 1 and screen.warmed == [[pygame.Rect(0, 0, 80, 90)]]
    # A display without warm() is refused by mypy (the ignore below is checked: mypy reports
    # an unneeded one) and fails loudly here; it used to be skipped without a word.
    careless = Compositor(_ForgetsToWarm())  # type: ignore[arg-type]
    careless.present(scene)
    careless.compose(S)
    with pytest.raises(AttributeError, match="warm"):
        careless.warm(["a"])


class Half(Solid):
    """Paints its left half; the right half stays transparent (the layout shows through)."""

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        if self.painted:
            return False
        surface.fill((0, 0, 0, 0))
        surface.fill(self.colour, pygame.Rect(0, 0, surface.get_width() // 2, surface.get_height()))
        self.painted = True
        return True


@pytest.mark.parametrize("kind", ["crossfade", "fade"])
def test_fade_frames_repaint_what_the_outgoing_item_does_not_cover(kind: str) -> None:
    class Opaque(Solid):
        opaque = True

    for outgoing, covered in ((Opaque(RED), True), (Half(RED), False)):
        scene = scene_with(("a", pygame.Rect(0, 0, 160, 90), 0))
        view = scene.zone("a")
        view.show(outgoing, 0)
        scene.compose(0)
        view.show(Opaque(BLUE), S, Transition(type=kind, duration_ms=1000))
        scene.canvas.fill((1, 2, 3))  # stale pixels: a frame must not show any of them
        scene.compose(S)  # the first frame: the outgoing item in full
        assert scene.canvas.get_at((40, 45))[:3] == RED
        right = scene.canvas.get_at((120, 45))[:3]
        assert right == (RED if covered else (16, 16, 16)), (kind, covered, right)
        scene.canvas.fill((1, 2, 3))
        scene.compose(S + S // 4)  # a quarter in
        r, g, b = scene.canvas.get_at((120, 45))[:3]
        assert g != 2 or covered, "the background was painted under a transparent item"
        if kind == "crossfade" and not covered:
            assert 10 <= r <= 14 and 58 <= b <= 66, (r, g, b)  # background 3/4 + blue 1/4
        scene.release()


def _noisy_frame() -> pygame.Surface:
    frame = pygame.Surface((1920, 1080))
    for x in range(0, 1920, 5):
        frame.fill(((x * 7) % 256, (x * 13) % 256, (x * 29) % 256), (x, 0, 3, 1080))
        frame.fill(((x * 3) % 256, 40, 90), (0, x % 1080, 1920, 2))
    return frame


def _turns_taken_by_others(encode: Callable[[], object]) -> int:
    """How often this thread got to run while ``encode`` ran on another one."""
    worker = threading.Thread(target=encode)
    worker.start()
    turns = 0
    while worker.is_alive():
        turns += 1
        time.sleep(0.001)
    worker.join()
    return turns


def test_encoding_a_frame_as_png_leaves_the_gil_to_the_event_loop() -> None:
    frame = _noisy_frame()
    encoded: list[bytes] = []
    turns = _turns_taken_by_others(lambda: encoded.append(png_bytes(frame)))
    # pygame.image.save kept the GIL for the whole ~150 ms: the loop got one or two turns.
    assert turns >= 10, turns
    decoded = pygame.image.load(io.BytesIO(encoded[0]))
    assert decoded.get_size() == (1920, 1080)
    assert decoded.get_at((3, 0)) == frame.get_at((3, 0))
    assert not frame.get_locked()
