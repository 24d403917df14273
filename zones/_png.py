"""PNG encoding of a frame that leaves the GIL to the event loop.

``pygame.image.save`` keeps the GIL for the whole encoding (100 to 200 ms for a full-HD frame
here): on a worker thread it still stalls the event loop for that long (measured with
``player.LoopStallProbe``: a screenshot, or each frame the simulator saves, held the loop
~100 ms). Pillow's encoder releases the GIL while it compresses; the surface's pixels are
handed over without a copy.
"""

from __future__ import annotations

import io

import pygame
from PIL import Image


def png_bytes(surface: pygame.Surface, *, compress_level: int = 6) -> bytes:
    """``surface`` (32-bit, as composed) as PNG. Blocks: call it in a thread."""
    if surface.get_bytesize() != 4:
        surface = surface.convert(32, 0)
    masks = surface.get_masks()[:3]
    raw = "BGRX" if masks == (0xFF0000, 0x00FF00, 0x0000FF) else "RGBX"
    pixels = surface.get_buffer()  # locks the surface until released
    try:
        picture = Image.frombuffer(
            "RGBX", surface.get_size(), pixels, "raw", raw, surface.get_pitch(), 1
        ).convert("RGB")
    finally:
        del pixels
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=compress_level)
    return out.getvalue()
