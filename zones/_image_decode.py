"""Decoding a picture straight to the size it is shown at, with memory bounded by its size.

This runs in the decoder process (``zones._image_worker``), never in the player's. The work:

1. Open the file and read its size from the header; refuse it when it exceeds the megapixel
   ceiling (``image.max_megapixels``) before a pixel is decoded.
2. Work out the fitted size (fit, EXIF orientation) and ask the decoder for no more than that:
   JPEG decodes at 1/2, 1/4 or 1/8 scale directly (``draft``). PNG, GIF, WebP and the rest can
   only be decoded whole: they are, in their own compact mode (a palette or grey picture keeps
   one byte per pixel), and converted to RGB(A) and resampled strip by strip, so the 3-4 bytes
   per pixel of a full-size colour copy never exist at once. A 9,400 x 9,400 palette PNG costs
   ~90 MB here instead of over 1 GB.
3. Apply the EXIF orientation to the fitted result (a few megabytes, not the source), crop
   what ``cover`` pushes outside the zone, and return raw pixels.

With a ``crop`` (a video wall's tile: fractions of the upright picture) the tile is what is
fitted: the picture is decoded at the size that makes its tile the fitted size, and the tile
is cut out of it.

Animated files (GIF, APNG, WebP) show their first frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from zones._geometry import Fit, fit_box

_ORIENTATION_TAG = 0x0112
# EXIF orientation -> what turns the stored picture upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TRANSPOSED = {5, 6, 7, 8}  # orientations that swap width and height
_STRIP_PIXELS = 4_000_000  # source pixels converted to RGB(A) at once (~16 MB)
_COMPACT_MODES = {"1", "L", "P", "LA", "PA", "I;16", "I;16L", "I;16B"}
Crop = tuple[float, float, float, float] | None  # (x, y, w, h) fractions of the upright picture


class ImageTooLarge(ValueError):
    """More pixels than the configured ceiling."""


@dataclass(frozen=True)
class DecodedPicture:
    """Fitted pixels (``mode`` RGB or RGBA, row after row), to paste at ``offset``."""

    mode: Literal["RGB", "RGBA"]
    size: tuple[int, int]
    data: bytes
    offset: tuple[int, int]
    source_size: tuple[int, int]  # the file's own pixels (before orientation)
    format: str


def decode_fitted(
    path: str, size: tuple[int, int], fit: Fit, max_pixels: int, crop: Crop = None
) -> DecodedPicture:
    """The picture at ``path`` (its ``crop`` tile) fitted into a zone of ``size``; raises for
    any bad file."""
    Image.MAX_IMAGE_PIXELS = None  # our own ceiling below, with a clearer message
    with Image.open(path) as opened:
        width, height = opened.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"{width}x{height} is {width * height / 1e6:.1f} megapixels, above the limit "
                f"of {max_pixels / 1e6:g} (image.max_megapixels)"
            )
        orientation = opened.getexif().get(_ORIENTATION_TAG, 1)
        transposed = orientation in _TRANSPOSED
        shown = (height, width) if transposed else (width, height)
        tile_w, tile_h = (1.0, 1.0) if crop is None else (crop[2], crop[3])
        tile = (max(1, round(shown[0] * tile_w)), max(1, round(shown[1] * tile_h)))
        x, y, w, h = fit_box(tile, size, fit)
        # The whole picture at the scale that makes its tile w x h.
        whole = (max(w, round(w / tile_w)), max(h, round(h / tile_h)))
        stored_target = (whole[1], whole[0]) if transposed else whole
        # JPEG: decode at the smallest DCT scale that still covers the target.
        opened.draft("RGB", stored_target)
        has_alpha = opened.mode in ("RGBA", "LA", "PA") or "transparency" in opened.info
        mode: Literal["RGB", "RGBA"] = "RGBA" if has_alpha else "RGB"
        picture = _resample(opened, stored_target, mode)
        format_name = opened.format or "unknown"
    upright = _UPRIGHT.get(orientation)
    if upright is not None:  # on the fitted picture: a few megabytes, not the source
        picture = picture.transpose(upright)
    if crop is not None:
        left = min(round(crop[0] * whole[0]), whole[0] - w)
        top = min(round(crop[1] * whole[1]), whole[1] - h)
        picture = picture.crop((left, top, left + w, top + h))
    # Crop what "cover" pushes outside the zone, so only visible pixels are kept.
    visible = (max(0, -x), max(0, -y), min(w, size[0] - x), min(h, size[1] - y))
    picture = picture.crop(visible)
    return DecodedPicture(
        mode, picture.size, picture.tobytes(), (max(0, x), max(0, y)), (width, height), format_name
    )


def _resample(opened: Image.Image, target: tuple[int, int], mode: str) -> Image.Image:
    """``opened`` (decoded as it must be) resized to ``target`` in ``mode``, strip by strip
    when the source is large and compact, so its colour conversion never exists whole."""
    opened.load()
    source = opened
    if source.mode not in _COMPACT_MODES or source.width * source.height <= _STRIP_PIXELS:
        converted = source if source.mode == mode else source.convert(mode)
        if converted.size == target:
            return converted
        return converted.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    scale = min(source.width / target[0], source.height / target[1])
    # Box-average first, LANCZOS the last factor of 2 or more (Pillow's reducing_gap=2.0).
    factor = int(scale / 2)
    if factor >= 2:
        return _reduced_in_strips(source, mode, factor).resize(target, Image.Resampling.LANCZOS)
    return _lanczos_in_strips(source, target, mode)


def _reduced_in_strips(source: Image.Image, mode: str, factor: int) -> Image.Image:
    """``source`` converted to ``mode`` and box-averaged ``factor`` times smaller, a band of
    rows at a time (bands start on multiples of ``factor``: the result is the whole picture's
    reduction)."""
    width, height = source.size
    reduced = Image.new(mode, (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, _STRIP_PIXELS // (width * factor))
    for top in range(0, height, rows):
        strip = source.crop((0, top, width, min(height, top + rows))).convert(mode)
        reduced.paste(strip.reduce(factor), (0, top // factor))
    return reduced


def _lanczos_in_strips(source: Image.Image, target: tuple[int, int], mode: str) -> Image.Image:
    """``source`` resized to ``target`` with LANCZOS, converting a band of rows at a time
    (for scales too small to box-average first)."""
    tw, th = target
    out = Image.new(mode, target)
    scale_y = source.height / th
    # LANCZOS reads 3 source pixels (times the scale) either side of each output pixel.
    margin = math.ceil(3 * max(scale_y, 1.0)) + 1
    rows_per_strip = max(1, int(_STRIP_PIXELS / source.width / scale_y))
    for top in range(0, th, rows_per_strip):
        bottom = min(th, top + rows_per_strip)
        src_top, src_bottom = top * scale_y, bottom * scale_y
        first = max(0, math.floor(src_top) - margin)
        last = min(source.height, math.ceil(src_bottom) + margin)
        strip = source.crop((0, first, source.width, last)).convert(mode)
        box = (0.0, src_top - first, float(source.width), src_bottom - first)
        out.paste(strip.resize((tw, bottom - top), Image.Resampling.LANCZOS, box=box), (0, top))
    return out
