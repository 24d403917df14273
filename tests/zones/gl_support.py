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


def difference_stats(a: pygame.Surface, b: pygame.Surface) -> tuple[float, int, int]:
    """Mean, 99th percentile and largest per-channel difference between two frames (scalers
    differ between paths: they agree on average and disagree at sharp edges)."""
    assert a.get_size() == b.get_size()
    diff = ImageChops.difference(image_of(a), image_of(b))
    histogram = [0] * 256
    for channel in diff.split():
        for value, count in enumerate(channel.histogram()):
            histogram[value] += count
    total = sum(histogram)
    mean = sum(value * count for value, count in enumerate(histogram)) / total
    seen, p99 = 0, 0
    for value, count in enumerate(histogram):
        seen += count
        if seen >= 0.99 * total:
            p99 = value
            break
    peak = max(value for value, count in enumerate(histogram) if count)
    return mean, p99, peak
