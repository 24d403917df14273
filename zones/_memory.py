"""Touching a surface's memory ahead of a deadline, so the copy at the deadline runs warm.

After the process has slept, the first write or read of each 4 KiB page of a large surface can
cost far more than the copy itself: caches and TLBs are cold, and under some hypervisors each
page of a sleeping guest costs a trap on first touch again (measured on the development VM: a
1440x960 fill takes 0.4 ms warm and 28 ms after a 1 s sleep; reading one byte per page first
brings it back to under 1 ms). Reading one byte of every page of what a switch will copy,
a few milliseconds before the deadline, moves that cost ahead of the deadline instead of adding
it to the switch's lateness. The work is the same; only when it happens changes.
"""

from __future__ import annotations

import pygame

PAGE = 4096


def touch_pages(surface: pygame.Surface, rect: pygame.Rect | None = None) -> int:
    """Read one byte in every page holding the pixels of ``rect`` (default: all of them).

    Returns the number of pages read (0 when the surface's memory cannot be viewed, e.g. a
    subsurface or a hardware surface: warming is an optimisation, never a requirement).
    """
    area = surface.get_rect() if rect is None else rect.clip(surface.get_rect())
    if area.w <= 0 or area.h <= 0:
        return 0
    pitch, depth = surface.get_pitch(), surface.get_bytesize()
    start = area.y * pitch + area.x * depth
    end = (area.bottom - 1) * pitch + area.right * depth
    try:
        proxy = surface.get_view("1")  # locks the surface until the proxy is gone
    except (ValueError, pygame.error):
        return 0
    try:
        with memoryview(proxy) as pixels, pixels.cast("B") as raw:  # type: ignore[arg-type]
            return len(bytes(raw[start:end:PAGE]))
    finally:
        del proxy
