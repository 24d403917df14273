"""Image, text and clock renderers, the geometry they use and the IDLE screens."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pygame
import pytest

from core import ZoneError
from protocol import ClockItem, ImageItem, TextItem
from zones import (
    ClockRenderer,
    ImageRenderer,
    NoContentScreen,
    PairingScreen,
    RenderContext,
    TextRenderer,
    create_renderer,
    fit_box,
    font,
    register_renderer,
    registered_types,
    rotate_box,
    wrap,
)
from zones._clock import change_period_s

DATA = Path(__file__).parent.parent / "data"
S = 1_000_000_000
NOON = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.UTC)
SHA = {
    "a" * 64: DATA / "red.png",
    "b" * 64: DATA / "exif-rotate-90.jpg",
    "c" * 64: DATA / "broken.jpg",
}


def context(wall: dt.datetime = NOON) -> RenderContext:
    def path(sha: str) -> Path:
        if sha not in SHA:
            raise ZoneError(f"unknown asset {sha}")
        return SHA[sha]

    return RenderContext(
        zone_id="z",
        asset_path=path,
        timezone="Europe/Paris",
        wall_time=lambda ns: wall + dt.timedelta(microseconds=ns // 1000),
    )


def rgb(surface: pygame.Surface, x: int, y: int) -> tuple[int, int, int, int]:
    c = surface.get_at((x, y))
    return c.r, c.g, c.b, c.a


@pytest.mark.parametrize(
    ("fit", "box"),
    [("contain", (0, 25, 100, 50)), ("cover", (-50, 0, 200, 100)), ("stretch", (0, 0, 100, 100))],
)
def test_fit_box(fit: str, box: tuple[int, int, int, int]) -> None:
    assert fit_box((200, 100), (100, 100), fit) == box  # type: ignore[arg-type]


def test_fit_box_refuses_an_empty_picture() -> None:
    with pytest.raises(ValueError, match="empty"):
        fit_box((0, 10), (10, 10), "contain")


@pytest.mark.parametrize(
    ("rotation", "box"),
    [
        (0, (10, 20, 30, 40)),
        (90, (40, 10, 40, 30)),
        (180, (60, 40, 30, 40)),
        (270, (20, 60, 40, 30)),
    ],
)
def test_rotate_box_turns_clockwise(rotation: int, box: tuple[int, int, int, int]) -> None:
    assert rotate_box((10, 20, 30, 40), (100, 100), rotation) == box  # type: ignore[arg-type]


async def test_image_is_fitted_with_exif_orientation_applied() -> None:
    renderer = ImageRenderer(context())
    item = ImageItem(id="i", type="image", asset="b" * 64, fit="contain")
    await renderer.prepare(item, (40, 40))
    surface = pygame.Surface((40, 40), pygame.SRCALPHA)
    renderer.start(0)
    assert renderer.draw(surface, 0) is True
    assert renderer.draw(surface, 5 * S) is False, "a still picture is painted once"
    # Stored landscape with orientation 6: shown portrait 20x40, green on top, bars transparent.
    top, bottom = rgb(surface, 20, 8), rgb(surface, 20, 32)
    assert top[1] > 150 and top[0] < 60, top
    assert bottom[:3] == (255, 255, 255) or min(bottom[:3]) > 230
    assert rgb(surface, 3, 20)[3] == 0, "contain leaves transparent bars"
    assert renderer.next_change_ns(0) is None
    renderer.release()


async def test_image_cover_fills_the_zone() -> None:
    renderer = ImageRenderer(context())
    await renderer.prepare(ImageItem(id="i", type="image", asset="a" * 64, fit="cover"), (10, 40))
    surface = pygame.Surface((10, 40), pygame.SRCALPHA)
    renderer.start(0)
    renderer.draw(surface, 0)
    assert {rgb(surface, x, y) for x in (0, 9) for y in (0, 39)} == {(220, 30, 30, 255)}


async def test_broken_image_is_a_zone_error() -> None:
    renderer = ImageRenderer(context())
    with pytest.raises(ZoneError, match="cannot show image") as caught:
        await renderer.prepare(ImageItem(id="bad", type="image", asset="c" * 64), (10, 10))
    assert caught.value.item == "bad" and caught.value.zone == "z"


async def test_missing_asset_is_a_zone_error() -> None:
    renderer = ImageRenderer(context())
    with pytest.raises(ZoneError, match="unknown asset"):
        await renderer.prepare(ImageItem(id="x", type="image", asset="d" * 64), (10, 10))


def test_wrap_keeps_lines_within_the_width() -> None:
    face = font(20)
    lines = wrap("the quick brown fox jumps over the lazy dog " * 3, face, 150)
    assert len(lines) > 3
    assert all(face.size(line)[0] <= 150 for line in lines)
    long_word = wrap("x" * 80, face, 100)
    assert len(long_word) > 1 and "".join(long_word) == "x" * 80


async def test_text_auto_size_fills_the_zone() -> None:
    small, large = TextRenderer(context()), TextRenderer(context())
    item = TextItem(id="t", type="text", text="Welcome", color="#ff0000")
    await small.prepare(item, (100, 30))
    await large.prepare(item, (400, 120))
    surfaces = [pygame.Surface(size, pygame.SRCALPHA) for size in ((100, 30), (400, 120))]
    for renderer, surface in zip((small, large), surfaces, strict=True):
        renderer.start(0)
        assert renderer.draw(surface, 0) is True
        bounds = surface.get_bounding_rect()
        assert bounds.w > surface.get_width() * 0.6, "the text grows to the zone"
    assert small.draw(surfaces[0], S) is False, "static text is painted once"


async def test_text_renders_non_latin_glyphs() -> None:
    renderer = TextRenderer(context())
    await renderer.prepare(TextItem(id="t", type="text", text="Ж", font_size=40), (60, 60))
    surface = pygame.Surface((60, 60), pygame.SRCALPHA)
    renderer.start(0)
    renderer.draw(surface, 0)
    notdef = font(40).render("\uffff", True, (255, 255, 255))
    glyph = font(40).render("Ж", True, (255, 255, 255))
    assert pygame.image.tobytes(glyph, "RGBA") != pygame.image.tobytes(notdef, "RGBA")
    assert surface.get_bounding_rect().w > 10


async def test_ticker_position_is_a_function_of_media_time() -> None:
    renderer = TextRenderer(context())
    item = TextItem(id="t", type="text", text="NEWS " * 5, scroll="left", speed_px_s=100)
    await renderer.prepare(item, (200, 40))
    renderer.start(10 * S)
    surface = pygame.Surface((200, 40), pygame.SRCALPHA)
    renderer.draw(surface, 10 * S)
    assert surface.get_bounding_rect().w == 0, "the text enters from the right edge"
    renderer.draw(surface, 11 * S)  # one second later: 100 px in, however many frames ran
    bounds = surface.get_bounding_rect()
    assert 95 <= bounds.w <= 101 and bounds.right == 200
    assert renderer.draw(surface, 11 * S + 1_000_000) is False, "under one pixel: no redraw"
    next_change = renderer.next_change_ns(11 * S)
    assert next_change == 11 * S + 10_000_000


async def test_text_on_an_opaque_background_is_opaque_and_laid_out_once() -> None:
    shown = []
    for background in ("#102030", None):
        renderer = TextRenderer(context())
        item = TextItem(id="t", type="text", text="Tonight at 8", background=background)
        await renderer.prepare(item, (400, 100))
        shown.append(renderer)
    assert [r.opaque for r in shown] == [True, False]
    again = TextRenderer(context())
    await again.prepare(TextItem(id="t2", type="text", text="Tonight at 8"), (400, 100))
    assert again._pieces[0][1] is shown[1]._pieces[0][1], "same text and size: rendered once"
    surface = pygame.Surface((400, 100))  # what the compositor gives an opaque renderer
    shown[0].start(0)
    assert shown[0].draw(surface, 0)
    assert surface.get_at((0, 0))[:3] == (0x10, 0x20, 0x30)


async def test_clock_redraws_on_the_second_in_its_time_zone() -> None:
    renderer = ClockRenderer(context(NOON + dt.timedelta(microseconds=250_000)))
    item = ClockItem(id="c", type="clock", format="%H:%M:%S", timezone="Asia/Tokyo")
    await renderer.prepare(item, (300, 80))
    assert renderer.text_at(0) == "21:00:00"
    renderer.start(0)
    surface = pygame.Surface((300, 80), pygame.SRCALPHA)
    assert renderer.draw(surface, 0) is True
    assert renderer.draw(surface, 500_000_000) is False
    assert renderer.next_change_ns(0) == 750_000_000, "the next wall-clock second"
    assert renderer.draw(surface, 750_000_000) is True
    assert renderer.text_at(750_000_000) == "21:00:01"
    assert surface.get_bounding_rect().w < 300


async def test_clock_with_minutes_asks_to_be_redrawn_at_the_next_minute() -> None:
    # 12:00:20.25 UTC: a "%H:%M" clock changes at 12:01:00, 39.75 s later, not every second.
    renderer = ClockRenderer(context(NOON + dt.timedelta(seconds=20, microseconds=250_000)))
    await renderer.prepare(ClockItem(id="c", type="clock", format="%H:%M"), (100, 40))
    renderer.start(0)
    assert renderer.next_change_ns(0) == 39_750_000_000
    assert renderer.text_at(39_750_000_000 - 1) == "13:00"
    assert renderer.text_at(39_750_000_000) == "13:01"


async def test_clock_on_a_half_hour_offset_wakes_on_quarter_hours() -> None:
    # India (+05:30): "%H" changes on the half hour of UTC; quarter hours of UTC cover that.
    renderer = ClockRenderer(context(NOON + dt.timedelta(minutes=20)))
    item = ClockItem(id="c", type="clock", format="%A %H h", timezone="Asia/Kolkata")
    await renderer.prepare(item, (300, 40))
    renderer.start(0)
    wake = renderer.next_change_ns(0)
    assert wake == 10 * 60 * S, "12:30 UTC, when it becomes 18:00 in India"
    assert renderer.text_at(wake - 1) != renderer.text_at(wake)


@pytest.mark.parametrize(
    ("format_", "period"),
    [
        ("%H:%M:%S", 1),
        ("%H:%M", 60),
        ("%-I:%M %p", 60),
        ("%R", 60),
        ("%a %d %b", 900),
        ("%H h", 900),
        ("%Y-%m-%d %Z", 900),
        ("100%% %H", 900),
        ("%T", 1),
        ("%X", 1),
        ("%c", 1),
        ("%r", 1),
        ("%s", 1),
        ("%H:%M:%Q", 1),  # unknown directive: seconds, to be safe
        ("%H:%M %", 1),  # a dangling % as well
        ("%OM", 60),
        ("plain text", 900),
    ],
)
def test_clock_change_period_follows_the_finest_directive(format_: str, period: int) -> None:
    assert change_period_s(format_) == period


async def test_clock_uses_the_manifest_time_zone_by_default() -> None:
    renderer = ClockRenderer(context())
    await renderer.prepare(ClockItem(id="c", type="clock", format="%H:%M"), (100, 40))
    assert renderer.text_at(0) == "13:00"  # Europe/Paris in November


def test_unknown_item_type_is_a_zone_error() -> None:
    with pytest.raises(ZoneError, match="no renderer for item type 'web'"):
        create_renderer("web", context())


def test_registering_a_renderer() -> None:
    register_renderer("test-only", ImageRenderer)
    assert "test-only" in registered_types()
    assert isinstance(create_renderer("test-only", context()), ImageRenderer)


async def test_pairing_screen_counts_down_each_second(tmp_path: Path) -> None:
    expires = NOON + dt.timedelta(minutes=4, seconds=12)
    screen = PairingScreen(
        context(),
        code="483920",
        server_url="http://s:8080",
        device_name="lobby",
        expires_at=expires,
    )
    await screen.prepare(None, (1920, 1080))
    surface = pygame.Surface((1920, 1080))
    screen.start(0)
    assert screen.draw(surface, 0) is True
    assert screen.draw(surface, 400_000_000) is False
    assert screen.next_change_ns(0) == S
    assert screen.draw(surface, S) is True
    # The digits are huge: the code row spans well over a quarter of the screen height.
    code_row = pygame.Rect(0, 300, 1920, 330)
    bright = [
        y
        for y in range(code_row.top, code_row.bottom, 4)
        if any(surface.get_at((x, y)).r > 240 for x in range(300, 1620, 6))
    ]
    assert (max(bright) - min(bright)) > 0.15 * 1080
    pygame.image.save(surface, str(tmp_path / "pairing.png"))


async def test_no_content_screen_renders_title() -> None:
    screen = NoContentScreen(context(), footer="lobby")
    await screen.prepare(None, (640, 360))
    surface = pygame.Surface((640, 360))
    screen.start(0)
    assert screen.draw(surface, 0) is True
    assert screen.next_change_ns(0) is None
    title_band = [surface.get_at((x, 202)).r for x in range(100, 540)]
    assert max(title_band) > 200, "white title text across the middle"


async def test_image_filling_the_zone_is_opaque_and_letterboxed_one_is_not() -> None:
    cover, contain = ImageRenderer(context()), ImageRenderer(context())
    await cover.prepare(ImageItem(id="i", type="image", asset="a" * 64, fit="cover"), (40, 40))
    await contain.prepare(ImageItem(id="i", type="image", asset="a" * 64), (40, 40))
    assert cover.opaque is True
    assert contain.opaque is False


async def test_text_scrolls_up_at_its_speed() -> None:
    renderer = TextRenderer(context())
    item = TextItem(id="t", type="text", text="line\n" * 6, scroll="up", speed_px_s=50)
    await renderer.prepare(item, (100, 60))
    renderer.start(0)
    surface = pygame.Surface((100, 60), pygame.SRCALPHA)
    renderer.draw(surface, 0)
    assert surface.get_bounding_rect().h == 0, "enters from the bottom edge"
    renderer.draw(surface, S)
    bounds = surface.get_bounding_rect()
    assert 9 <= bounds.top <= 13, "50 px up after one second"
    assert bounds.bottom > 50


async def test_a_picture_filling_its_zone_is_lent_to_the_compositor_and_never_drawn_over() -> None:
    from zones import ZoneView

    photo = ImageRenderer(context())
    await photo.prepare(ImageItem(id="i", type="image", asset="a" * 64, fit="cover"), (10, 40))
    lent = photo.surface
    assert lent is not None and lent.get_bitsize() == 32, "converted once to the zones' format"
    view = ZoneView("z", pygame.Rect(0, 0, 10, 40))
    view.show(photo, 0)
    assert view.update(0) == pygame.Rect(0, 0, 10, 40)
    assert view.current is not None and view.current.surface is lent, "composed without a copy"
    note = TextRenderer(context())
    await note.prepare(TextItem(id="t", type="text", text="x", background="#0000ff"), (10, 40))
    still = note.surface
    assert still is not None
    view.show(note, S)  # the photo leaves: its surface must not become the next item's
    view.update(S)
    assert view.current is not None and view.current.surface is still
    ticker = TextRenderer(context())  # opaque too, but it draws: it gets a surface to draw in
    item = TextItem(id="k", type="text", text="news", scroll="left", background="#00ff00")
    await ticker.prepare(item, (10, 40))
    assert ticker.opaque and ticker.surface is None
    view.show(ticker, 2 * S)
    view.update(2 * S)
    assert view.current is not None and view.current.surface not in (lent, still)
    letterboxed = ImageRenderer(context())
    await letterboxed.prepare(ImageItem(id="c", type="image", asset="a" * 64), (10, 40))
    assert letterboxed.surface is None, "not opaque: drawn into a surface of the zone's"
    assert {rgb(lent, x, y) for x in (0, 9) for y in (0, 39)} == {(220, 30, 30, 255)}
    assert rgb(still, 5, 1) == (0, 0, 255, 255), "the cached frames are intact"
    view.clear()


async def test_a_picture_decoded_once_is_taken_from_the_cache_without_a_thread(
    tmp_path: Path,
) -> None:
    import os
    import shutil

    from zones import _image

    copy = tmp_path / "red.png"
    shutil.copy(DATA / "red.png", copy)
    assert _image.cached_image(copy, (10, 40), "cover") is None, "never decoded"
    picture = await asyncio.to_thread(_image.decode_image, copy, (10, 40), "cover")
    assert _image.cached_image(copy, (10, 40), "cover") is picture
    assert _image.cached_image(copy, (20, 40), "cover") is None, "another size is another fit"
    with _image._cache_lock:  # the cache being updated elsewhere: no waiting on the loop
        assert _image.cached_image(copy, (10, 40), "cover") is None
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert _image.cached_image(copy, (10, 40), "cover") is None, "a changed file is decoded again"
