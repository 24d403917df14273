"""The bundled fonts: DejaVu Sans (Latin, Greek, Cyrillic, Hebrew, Armenian, Georgian, symbols...)
and Noto Sans Arabic for every run of Arabic script.

pygame's built-in font lacks most non-Latin glyphs; a signage screen must not show boxes.
DejaVu Sans has the core Arabic letters but not Urdu's (ہ ے ۔), Kurdish, Pashto, Sindhi or the
African extensions; Noto Sans Arabic has all of them and sits well next to DejaVu (same x-height),
so Arabic is always set in it, and a playlist does not change its Arabic typeface from one item
to the next. Licences: zones/fonts/LICENSE.txt (DejaVu), LICENSE-NotoSansArabic.txt (OFL 1.1).
Font objects are cached by (weight, size, direction, script): creating one parses the TTF, and a
face is never reconfigured after creation, so one shared by the clock and a text zone cannot
change under the other's feet.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import pygame

FONT_DIR = Path(__file__).parent / "fonts"
FONT_FILES = {"regular": FONT_DIR / "DejaVuSans.ttf", "bold": FONT_DIR / "DejaVuSans-Bold.ttf"}
ARABIC_FONT_FILES = {
    "regular": FONT_DIR / "NotoSansArabic-Regular.ttf",
    "bold": FONT_DIR / "NotoSansArabic-Bold.ttf",
}
Weight = Literal["regular", "bold"]
Direction = Literal["ltr", "rtl"]


class Face(pygame.font.Font):
    """A bundled font at one size, weight and shaping setup.

    ``direction`` and ``script`` (ISO 15924, e.g. "Arab") go to HarfBuzz through SDL_ttf: an
    Arabic run needs both to get its joined letter forms, and "Arab" picks Noto Sans Arabic.
    The text zone shapes each run of one direction and script with the matching variant (see
    zones._shaping); ``points`` and ``weight`` let it find the variants of a face it was given.
    """

    def __init__(
        self, size: int, weight: Weight, direction: Direction = "ltr", script: str | None = None
    ) -> None:
        files = ARABIC_FONT_FILES if script == "Arab" else FONT_FILES
        super().__init__(str(files[weight]), size)
        self.points = size
        self.weight: Weight = weight
        if direction == "rtl":
            self.set_direction(pygame.DIRECTION_RTL)
        if script is not None:
            self.set_script(script)


@functools.lru_cache(maxsize=128)
def font(
    size: int,
    weight: Weight = "regular",
    *,
    direction: Direction = "ltr",
    script: str | None = None,
) -> Face:
    if not pygame.font.get_init():
        pygame.font.init()
    return Face(max(1, size), weight, direction, script)


def parse_colour(value: str | None) -> pygame.Color | None:
    """'#rrggbb' to a Color; None stays None (transparent)."""
    return None if value is None else pygame.Color(value)
