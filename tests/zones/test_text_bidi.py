"""Right-to-left and mixed text in the text zone: real rendering with the bundled fonts.

Pixels are checked, not strings: shaped Arabic is joined (fewer, wider connected shapes than
its isolated letters), the first word of a right-to-left line is at the right, numbers inside
Arabic keep their digit order, and a right-to-left ticker brings its first words in first.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pygame
import pytest

from core import ZoneError
from protocol import ClockItem, TextItem
from zones import ClockRenderer, RenderContext, TextRenderer, font, wrap
from zones._bidi import paragraph_level, resolve_levels, visual_runs
from zones._fonts import Weight
from zones._shaping import paragraph, render_text, runs_width, text_size
from zones._text import _SEGMENT_PX, _ticker_runs

S = 1_000_000_000
WHITE = pygame.Color("white")
HELLO_WORLD_AR = "مرحبا بالعالم"


def context() -> RenderContext:
    def no_assets(sha: str) -> Path:
        raise ZoneError(f"no asset {sha}")

    return RenderContext(
        zone_id="z",
        asset_path=no_assets,
        timezone="UTC",
        wall_time=lambda ns: dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


async def drawn(item: TextItem, size: tuple[int, int], at_s: float = 0) -> pygame.Surface:
    renderer = TextRenderer(context())
    await renderer.prepare(item, size)
    renderer.start(0)
    surface = pygame.Surface(size, pygame.SRCALPHA)
    renderer.draw(surface, int(at_s * S))
    return surface


def ink_segments(surface: pygame.Surface, min_gap: int) -> list[tuple[int, int]]:
    """Horizontal extents of ink, pieces closer than ``min_gap`` columns merged (a word)."""
    rects = sorted(pygame.mask.from_surface(surface, 64).get_bounding_rects(), key=lambda r: r.x)
    segments: list[tuple[int, int]] = []
    for rect in rects:
        if segments and rect.x - segments[-1][1] < min_gap:
            segments[-1] = (segments[-1][0], max(segments[-1][1], rect.right))
        else:
            segments.append((rect.x, rect.right))
    return segments


def positions_of(needle: pygame.Surface, haystack: pygame.Surface) -> list[int]:
    """Every x where ``needle`` appears pixel for pixel in the top rows of ``haystack``."""
    width, height = needle.get_size()
    wanted = pygame.image.tobytes(needle, "RGBA")
    return [
        x
        for x in range(haystack.get_width() - width + 1)
        if pygame.image.tobytes(haystack.subsurface((x, 0, width, height)), "RGBA") == wanted
    ]


def test_paragraph_direction_is_that_of_the_first_strong_character() -> None:
    assert paragraph_level("123 שלום abc") == 1
    assert paragraph_level("«abc» שלום") == 0
    assert paragraph_level("\u2067abc\u2069 مرحبا") == 1, "an isolate's content does not count"
    assert paragraph_level("2026 !") is None
    assert paragraph("2026 !").rtl is False, "no strong character: left-to-right"


def test_numbers_in_arabic_keep_their_order_and_neighbours_theirs() -> None:
    text = "العدد 2024 كبير"
    levels = resolve_levels(text, 1)
    assert levels == [1] * 6 + [2] * 4 + [1] * 5
    runs = visual_runs(levels)
    assert [text[start:end] for start, end, _ in runs] == [" كبير", "2024", "العدد "]
    assert resolve_levels("\u05d0 1,000.5 $", 1)[2:9] == [2] * 7, "one number with its separators"
    ltr = "Price: שקל 12.50 only"
    assert visual_runs(resolve_levels(ltr, 0))[0][1] == ltr.index("שקל")


def test_shaped_arabic_is_joined_and_narrower_than_its_isolated_letters() -> None:
    face, arabic = font(48), font(48, script="Arab")  # the line's face, its Arabic variant
    shaped = render_text(HELLO_WORLD_AR, face, WHITE)
    isolated = sum(arabic.size(char)[0] for char in HELLO_WORLD_AR)  # one letter at a time
    assert shaped.get_width() < isolated * 0.8, (shaped.get_width(), isolated)
    # سلم: three dual-joining letters without dots: one stroke when joined, three when not.
    joined = pygame.mask.from_surface(render_text("سلم", face, WHITE), 64)
    apart = pygame.mask.from_surface(arabic.render("س ل م", True, WHITE), 64)
    assert len(joined.connected_components()) == 1
    assert len(apart.connected_components()) == 3


def test_latin_text_renders_exactly_as_before() -> None:
    face = font(30)
    plain = face.render("Doors open at 9:00 · Café", True, WHITE)
    shaped = render_text("Doors open at 9:00 · Café", face, WHITE)
    assert pygame.image.tobytes(plain, "RGBA") == pygame.image.tobytes(shaped, "RGBA")


def test_the_first_word_of_a_right_to_left_line_is_at_the_right() -> None:
    face = font(40)
    # Words of س (joined, no dots: one stroke each), a long first word and a short second.
    line = render_text("سسسسسسسس سس", face, WHITE)
    words = ink_segments(line, face.size(" ")[0] // 2)
    assert len(words) == 2
    right, left = words[1], words[0]
    assert right[1] - right[0] > 2 * (left[1] - left[0]), "the long first word is on the right"


def test_digits_inside_arabic_read_left_to_right_between_their_words() -> None:
    face = font(40)
    line = render_text("العدد 2024 كبير", face, WHITE)
    found = positions_of(face.render("2024", True, WHITE), line)
    assert len(found) == 1, "2024 appears as 2024 (not 4202)"
    first_word = face.size("العدد")[0]
    assert 0 < found[0] < line.get_width() - first_word, "between the two words"


async def test_a_hebrew_line_is_right_aligned_when_asked_and_centred_by_default() -> None:
    size = (800, 100)
    text = "שלום עולם"
    right = await drawn(TextItem(id="t", type="text", text=text, align="right"), size)
    assert right.get_bounding_rect().right >= size[0] - 3
    assert right.get_bounding_rect().x > 100
    centred = await drawn(TextItem(id="t", type="text", text=text, font_size=40), size)
    bounds = centred.get_bounding_rect()
    assert abs((bounds.x + bounds.right) / 2 - size[0] / 2) <= 3


async def test_wrapped_right_to_left_lines_keep_the_word_order() -> None:
    words = ["سسسسسسسس", "سس", "سسسسسسسسس", "سس", "سسسسسسسسس", "سس"]
    text = " ".join(words)
    face = font(30)
    width = max(text_size(" ".join(words[i : i + 2]), face)[0] for i in (0, 2, 4)) + 10
    lines = wrap(text, face, width)
    assert lines == [" ".join(words[i : i + 2]) for i in (0, 2, 4)]
    item = TextItem(id="t", type="text", text=text, font_size=30, align="right")
    block = await drawn(item, (width, 3 * face.get_linesize()))
    for row in range(3):
        strip = block.subsurface((0, row * face.get_linesize(), width, face.get_linesize()))
        left, right = ink_segments(strip, face.size(" ")[0] // 2)
        assert right[1] >= width - 3, "right-aligned"
        assert right[1] - right[0] > 3 * (left[1] - left[0]), f"line {row}: long word first"


async def test_auto_size_measures_shaped_arabic() -> None:
    size = (300, 200)  # one word, narrow zone: the width limits the size
    surface = await drawn(TextItem(id="t", type="text", text="بالعالم"), size)
    bounds = surface.get_bounding_rect()
    assert bounds.w > size[0] * 0.85, "the joined word fills the zone's width"
    assert bounds.right <= size[0]


async def test_a_right_to_left_ticker_enters_from_the_left_first_words_first() -> None:
    text = "חדשות היום: מחיר 12.50 שקל"
    size = (300, 50)
    item = TextItem(id="t", type="text", text=text, scroll="left", speed_px_s=100)
    assert (await drawn(item, size)).get_bounding_rect().w == 0, "starts outside the zone"
    surface = await drawn(item, size, at_s=1.5)  # 150 px in
    bounds = surface.get_bounding_rect()
    assert bounds.x <= 2 and bounds.right <= 150, "entered at the left edge, moving right"
    strip = render_text(text, font(int(size[1] * 0.7)), WHITE)
    top = (size[1] - strip.get_height()) // 2
    shown = surface.subsurface((0, top, 150, strip.get_height()))
    tail = strip.subsurface((strip.get_width() - 150, 0, 150, strip.get_height()))
    assert pygame.image.tobytes(shown, "RGBA") == pygame.image.tobytes(tail, "RGBA")
    leaving = await drawn(item, size, at_s=(strip.get_width() + size[0] - 30) / 100)
    bounds = leaving.get_bounding_rect()
    assert bounds.w > 0 and bounds.x >= size[0] - 30, "the last words leave at the right edge"


@pytest.mark.parametrize("text", ["مرحبا بالعالم " * 300, "שלום " * 700 + "abc def " * 300])
def test_a_long_right_to_left_ticker_is_cut_in_order(text: str) -> None:
    face = font(40)
    par = paragraph(" ".join(text.split()))
    runs = _ticker_runs(par, face)
    covered = sorted((run.start, run.end) for run in runs)
    assert covered[0][0] == 0 and covered[-1][1] == len(par.text)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered)), "no gap"
    assert all(runs_width(par, [run], face) <= _SEGMENT_PX * 1.01 for run in runs)
    rtl = [run for run in runs if run.level % 2]
    assert [run.start for run in rtl] == sorted((run.start for run in rtl), reverse=True)
    assert runs[-1].start == 0, "the first words are at the right end"


@pytest.mark.parametrize("weight", ["regular", "bold"])
def test_urdu_persian_and_kurdish_letters_have_glyphs(weight: Weight) -> None:
    face = font(40, weight)
    missing = {
        pygame.image.tobytes(
            font(40, weight, script=script).render("\U000f0000", True, WHITE), "RGBA"
        )
        for script in (None, "Arab")
    }
    for char in "ہۂۃےۓ۔ڈٹڑںگچپژکیۆێڵڕݐ":
        rendered = pygame.image.tobytes(render_text(char, face, WHITE), "RGBA")
        assert rendered not in missing, f"U+{ord(char):04X} is a box"


def test_arabic_punctuation_next_to_latin_punctuation_is_not_a_box() -> None:
    face = font(40)
    line = render_text("(مثال) 50%", face, WHITE)
    for char in "()%":
        assert positions_of(face.render(char, True, WHITE), line), f"{char} drawn by DejaVu"


async def test_a_clock_with_an_arabic_literal_is_shaped_and_fits() -> None:
    renderer = ClockRenderer(context())
    size = (400, 80)
    await renderer.prepare(ClockItem(id="c", type="clock", format="الساعة %H:%M"), size)
    renderer.start(0)
    surface = pygame.Surface(size, pygame.SRCALPHA)
    assert renderer.draw(surface, 0)
    bounds = surface.get_bounding_rect()
    assert bounds.x > 2 and bounds.right < size[0] - 2, "measured and drawn alike: not cut"
    assert bounds.w > size[0] * 0.8
