"""Wrapping and auto-size: the fast paths give the answers of the slow, exact ones."""

from __future__ import annotations

import pytest

from zones import fit_font_size, font
from zones._shaping import line_width
from zones._wrap import MIN_SIZE, wrap_lines

TEXTS = [
    "Welcome to the spring exhibition, level 2",
    "هذا نص عربي طويل يجب أن يلتف على عدة أسطر مع الحفاظ على ترتيب الكلمات في كل سطر",
    "שלום עולם, מחיר ₪ 12.50 היום בלבד\nOpening hours 9:00-17:00",
    "اردو: یہ ہے پاکستان۔ Café 2026 (مثال)",
]
SIZES = [(1920, 200), (600, 400), (300, 1000), (90, 40)]


def fits(text: str, size: tuple[int, int], points: int) -> bool:
    face = font(points)
    lines = wrap_lines(text, face, size[0])
    return len(lines) * face.get_linesize() <= size[1] and all(
        line_width(par, start, end, face) <= size[0] for par, start, end in lines
    )


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("size", SIZES)
def test_auto_size_is_the_largest_size_that_fits(text: str, size: tuple[int, int]) -> None:
    points = fit_font_size(text, size)
    assert points == MIN_SIZE or fits(text, size, points)
    assert not fits(text, size, points + 1), "one point larger must not fit"


@pytest.mark.parametrize("text", TEXTS)
def test_wrapped_lines_fit_and_keep_every_word(text: str) -> None:
    face = font(28)
    for width in (260, 400, 700):  # wider than any word: no word is cut
        lines = wrap_lines(text, face, width)
        assert all(
            end - start <= 1 or line_width(par, start, end, face) <= width
            for par, start, end in lines
        )
        words = [par.text[start:end] for par, start, end in lines]
        assert " ".join(words).split() == text.split()
