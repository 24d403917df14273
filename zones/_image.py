"""Image zones: decoded once off the frame loop, EXIF orientation applied, fitted to the zone."""

from __future__ import annotations

import asyncio
import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pygame
from PIL import Image, ImageOps, UnidentifiedImageError

from core import SignageError, ZoneError
from protocol import ImageItem, Item
from zones._api import RenderContext, Size, register_renderer
from zones._geometry import Fit, fit_box

_DECODED_CACHE = 8  # fitted pictures (<= 8 MB each); a short playlist decodes each image once
_decode_lock = threading.Lock()


@dataclass(frozen=True)
class Picture:
    """A decoded picture, already fitted: paste ``surface`` at ``offset`` in the zone."""

    surface: pygame.Surface
    offset: tuple[int, int]


Crop = tuple[float, float, float, float] | None  # (x, y, w, h) fractions of the picture
_Key = tuple[Path, int, Size, Fit, Crop]  # file, its mtime, zone size, fit, the zone's tile
_decoded: OrderedDict[_Key, Picture] = OrderedDict()  # least recently used first


def decode_image(path: Path, size: Size, fit: Fit, crop: Crop = None) -> Picture:
    """The picture at ``path`` (its ``crop`` tile) fitted into ``size``; runs in a thread."""
    key = (path, path.stat().st_mtime_ns, size, fit, crop)
    with _decode_lock:  # bounds peak memory: one full-resolution decode at a time
        picture = _lookup(key)
        if picture is None:
            picture = _decoded[key] = _decode(path, size, fit, crop)
            while len(_decoded) > _DECODED_CACHE:
                _decoded.popitem(last=False)
        return picture


def cached_image(path: Path, size: Size, fit: Fit, crop: Crop = None) -> Picture | None:
    """The fitted picture if it is already decoded, at once: never waits, never decodes.

    A playlist shows the same pictures every cycle; taking them from the cache on the event
    loop saves a round trip through a worker thread per item (``decode_image`` does the rest).
    """
    if not _decode_lock.acquire(blocking=False):
        return None  # a decode is running: the caller goes through a thread
    try:
        return _lookup((path, path.stat().st_mtime_ns, size, fit, crop))
    finally:
        _decode_lock.release()


def _lookup(key: _Key) -> Picture | None:
    picture = _decoded.get(key)
    if picture is not None:
        _decoded.move_to_end(key)
    return picture


def crop_box(picture: Size, crop: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """The pixels of ``picture`` that the fractions ``(x, y, w, h)`` name, at least one."""
    width, height = picture
    x, y, w, h = crop
    left, top = min(width - 1, round(x * width)), min(height - 1, round(y * height))
    right = max(left + 1, min(width, round((x + w) * width)))
    bottom = max(top + 1, min(height, round((y + h) * height)))
    return left, top, right, bottom


def _decode(path: Path, size: Size, fit: Fit, crop: Crop = None) -> Picture:
    # A tile is a part of the picture: decode enough pixels for that part to fill the zone.
    tile_w, tile_h = (1.0, 1.0) if crop is None else (crop[2], crop[3])
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as opened:
            # JPEG can decode at 1/2, 1/4, 1/8 scale directly: far cheaper for big photos.
            opened.draft("RGB", (math.ceil(size[0] * 2 / tile_w), math.ceil(size[1] * 2 / tile_h)))
            picture = ImageOps.exif_transpose(opened)
            has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            picture = picture.convert("RGBA" if has_alpha else "RGB")
    if crop is not None:
        picture = picture.crop(crop_box(picture.size, crop))
    x, y, w, h = fit_box(picture.size, size, fit)
    picture = picture.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    # Crop what "cover" pushes outside the zone, so only visible pixels are kept.
    visible = (max(0, -x), max(0, -y), min(w, size[0] - x), min(h, size[1] - y))
    picture = picture.crop(visible)
    # An opaque picture stays opaque: copying it is a memcpy, blending RGBA is ten times slower.
    mode: Literal["RGB", "RGBA"] = "RGBA" if has_alpha else "RGB"
    surface = pygame.image.frombytes(picture.tobytes(), picture.size, mode)
    if mode == "RGB":
        # Once, here, into the zones' own 32-bit format: every later paste is then a plain
        # copy instead of a 24-to-32-bit conversion (a third of a switch's cost in a sim run).
        converted = pygame.Surface(surface.get_size())
        converted.blit(surface, (0, 0))
        surface = converted
    return Picture(surface, (max(0, x), max(0, y)))


class ImageRenderer:
    prerender = True  # start/draw before the deadline are invisible: the switch is a blit

    def __init__(self, context: RenderContext) -> None:
        self._context = context
        self._picture: Picture | None = None
        self._size: Size = (0, 0)
        self._painted = False

    @property
    def opaque(self) -> bool:
        """True when the picture fills the zone without transparency (cover, stretch...)."""
        picture = self._picture
        return (
            picture is not None
            and picture.offset == (0, 0)
            and picture.surface.get_size() == self._size
            and not picture.surface.get_flags() & pygame.SRCALPHA
        )

    @property
    def surface(self) -> pygame.Surface | None:
        """The picture itself when it fills the zone: the compositor composes from it directly
        (see zones._api), which saves copying it at every switch."""
        return self._picture.surface if self.opaque and self._picture is not None else None

    async def prepare(self, item: Item, size: Size) -> None:
        self._size = size
        if not isinstance(item, ImageItem):
            raise ZoneError(f"not an image item: {item.type}", zone=self._context.zone_id)
        try:
            path = self._context.asset_path(item.asset)
            crop = self._context.crop
            self._picture = cached_image(path, size, item.fit, crop) or await asyncio.to_thread(
                decode_image, path, size, item.fit, crop
            )
        except ZoneError:
            raise
        except (
            OSError,
            SyntaxError,
            ValueError,
            UnidentifiedImageError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
            SignageError,
        ) as exc:
            raise ZoneError(
                f"cannot show image {item.asset[:12]}: {exc}",
                zone=self._context.zone_id,
                item=item.id,
            ) from exc

    def start(self, at_ns: int) -> None:
        self._painted = False

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        if self._painted or self._picture is None:
            return False
        if surface is self._picture.surface:  # lent to the compositor: nothing to copy
            self._painted = True
            return True
        if not self.opaque:  # the picture covers every pixel otherwise: no fill to pay for
            surface.fill((0, 0, 0, 0))  # contain: transparent bars show the layout background
        surface.blit(self._picture.surface, self._picture.offset)
        self._painted = True
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        return None

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        """A still picture has nothing running to stop."""

    def release(self) -> None:
        self._picture = None


register_renderer("image", ImageRenderer)
