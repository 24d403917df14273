"""The bundled fonts (DejaVu Sans: Latin, Greek, Cyrillic, Arabic, Hebrew, symbols...).

pygame's built-in font lacks most non-Latin glyphs; a signage screen must not show boxes.
Font objects are cached by (weight, size): creating one parses the TTF.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import pygame

FONT_DIR = Path(__file__).parent / "fonts"
FONT_FILES = {"regular": FONT_DIR / "DejaVuSans.ttf", "bold": FONT_DIR / "DejaVuSans-Bold.ttf"}
Weight = Literal["regular", "bold"]


@functools.lru_cache(maxsize=64)
def font(size: int, weight: Weight = "regular") -> pygame.font.Font:
    if not pygame.font.get_init():
        pygame.font.init()
    return pygame.font.Font(str(FONT_FILES[weight]), max(1, size))


def parse_colour(value: str | None) -> pygame.Color | None:
    """'#rrggbb' to a Color; None stays None (transparent)."""
    return None if value is None else pygame.Color(value)
