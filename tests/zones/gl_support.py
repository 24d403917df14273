"""Comparing frames of the two presentation paths (the ``gl`` fixture is in tests/conftest.py)."""

from __future__ import annotations

import pygame
from PIL import Image, ImageChops

TOLERANCE = 3  # per channel: rounding of blends differs between pygame and the GPU


def image_of(surface: pygame.Surface) -> Image.Image:
    return Image.frombytes("RGB", surface.get_size(), pygame.image.tobytes(surface, "RGB"))


def difference(a: pygame.Surface, b: pygame.Surface) -> int:
    """The largest per-channel difference between two frames of the same size."""
    assert a.get_size() == b.get_size()
    extrema = ImageChops.difference(image_of(a), image_of(b)).getextrema()
    return max(high for _low, high in extrema)  # type: ignore[misc]


def rgb(surface: pygame.Surface, x: int, y: int) -> tuple[int, int, int]:
    colour = surface.get_at((x, y))
    return colour.r, colour.g, colour.b
