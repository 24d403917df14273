"""The text zone's bidi algorithm against python-bidi (the Rust unicode-bidi crate, all of UAX #9).

zones._bidi computes embedding levels because a run is shaped in its own direction; python-bidi
only returns the reordered string. The visual order of what we draw must be that string, for any
mix of Latin, Hebrew, Arabic, both kinds of digits, brackets, separators and marks. Explicit
embeddings, overrides and isolates are not generated: the zone does not support them (see
docs/player.md, Known limits).
"""

from __future__ import annotations

import unicodedata

import pygame
from bidi import get_display
from bidi.mirror import MIRRORED
from hypothesis import given, settings
from hypothesis import strategies as st

from zones import font
from zones._bidi import BRACKET_PAIRS, OPENING_BRACKETS, bracket_pairs, resolve_levels
from zones._shaping import line_runs, paragraph, render_text

WHITE = pygame.Color("white")
ZERO_WIDTH_BN = "\u200c\u200d"  # ZWNJ, ZWJ: removed by X9, placed as each implementation likes

ALPHABET = (
    "abcXYZ"  # L
    "שלוםאב"  # R
    "مرحباب"  # AL
    "01239"  # EN
    "٠١٢٣"  # AN (Arabic-Indic digits)
    "۱۲"  # EN (Extended Arabic-Indic digits, European numbers by class)
    "()[]{}<>«»"  # brackets (< > and « » are mirrored but not paired)
    "\u2329\u3009\uff3b\uff3d"  # 〈 pairs with its canonical equivalent 〉; fullwidth brackets
    ".,:/-+%$#!\u2212\u060c\u066b"  # separators and terminators: CS, ES, ET, Arabic ones
    "    \u00a0\t"  # WS, S
    "\u0301\u05b0\u064e"  # NSM: Latin, Hebrew and Arabic marks
    "\u200e\u200f\u061c" + ZERO_WIDTH_BN  # LRM, RLM, ALM
)


def visual(text: str) -> str:
    """``text`` as one line in the order the text zone draws it, left to right."""
    par = paragraph(text)
    pieces = []
    for run in line_runs(par, 0, len(text)):
        piece = text[run.start : run.end]
        pieces.append(piece[::-1] if run.level % 2 else piece)  # HarfBuzz reverses RTL runs
    return "".join(pieces)


def visible(text: str) -> str:
    return "".join(char for char in text if char not in ZERO_WIDTH_BN)


@settings(max_examples=1500, deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=1, max_size=40))
def test_visual_order_is_that_of_the_full_algorithm(text: str) -> None:
    # get_display does not mirror (L4): HarfBuzz does that for us, so strings compare as they are.
    assert visible(visual(text)) == visible(get_display(text)), [hex(ord(c)) for c in text]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["(", ")", "[", "]", "a", "ש", "1", " "]), min_size=120))
def test_deeply_nested_brackets_stop_pairing_where_the_algorithm_does(chars: list[str]) -> None:
    text = "".join(chars)
    assert visual(text) == get_display(text)


def test_a_bracket_pair_takes_the_direction_of_its_content() -> None:
    # N0, UAX #9's own examples with Hebrew for the strong right-to-left letters.
    assert resolve_levels("אב(גד[&ef]!)gh", 1) == [1] * 7 + [2, 2] + [1] * 3 + [2, 2]
    text = "smith (fabrikam مرحبا) שלום"
    levels = resolve_levels(text, 0)
    assert levels[text.index(")")] == 0, "the closing bracket stays with its left-to-right pair"
    assert bracket_pairs("a(b[c)d]e)", ["ON"] * 10) == [(1, 5)], "a ] crossing a pair is ignored"
    nested = "א " + "(" * 70 + "a" + ")" * 70 + " b"  # BD16 gives up at the 64th open bracket
    assert bracket_pairs(nested, ["ON"] * len(nested)) == []
    assert visual(nested) == get_display(nested)


def test_a_latin_word_with_brackets_in_hebrew_is_drawn_whole() -> None:
    # Before N0 the final ")" took the paragraph's direction and was drawn, mirrored, at the far
    # left: "(book(s שלום".
    face = font(40)
    line = render_text("שלום book(s)", face, WHITE)
    word = pygame.image.tobytes(face.render("book(s)", True, WHITE), "RGBA")
    width, height = face.size("book(s)")
    assert any(
        pygame.image.tobytes(line.subsurface((x, 0, width, height)), "RGBA") == word
        for x in range(line.get_width() - width + 1)
    ), "book(s) reads left to right, brackets included"


def test_the_bracket_table_is_the_unicode_one() -> None:
    """Bidi_Paired_Bracket: every Ps/Pe character with Bidi_Mirrored, paired with its mirror."""
    expected = {
        chr(code)
        for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Ps", "Pe") and unicodedata.mirrored(chr(code))
    }
    assert set(BRACKET_PAIRS) == expected, f"Unicode {unicodedata.unidata_version}: new brackets"
    pairs = list(zip(BRACKET_PAIRS[::2], BRACKET_PAIRS[1::2], strict=True))
    assert all(unicodedata.category(o) + unicodedata.category(c) == "PsPe" for o, c in pairs)
    # python-bidi's mirror table predates the four brackets of Unicode 14 (U+2E55-U+2E5C).
    assert all(MIRRORED.get(opening, closing) == closing for opening, closing in pairs)
    assert OPENING_BRACKETS["\u3008"] == "\u3009" and "\u2329" not in OPENING_BRACKETS
