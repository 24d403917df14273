"""Image zones: decoded once off the frame loop, EXIF orientation applied, fitted to the zone."""

from __future__ import annotations

import asyncio
import functools
import threading
import warnings
from pathlib import Path

import pygame
from PIL import Image, ImageOps, UnidentifiedImageError

from core import SignageError, ZoneError
from sync import ImageItem, Item
from zones._api import RenderContext, Size, register_renderer
from zones._geometry import Fit, fit_box

_DECODED_CACHE = 16  # zone-sized surfaces; a playlist cycling a few images decodes each once
_decode_lock = threading.Lock()


def decode_image(path: Path, size: Size, fit: Fit) -> pygame.Surface:
    """The picture at ``path`` fitted into ``size`` with transparent bars; runs in a thread."""
    with _decode_lock:  # bounds peak memory: one full-resolution decode at a time
        return _decode_cached(path, path.stat().st_mtime_ns, size, fit)


@functools.lru_cache(maxsize=_DECODED_CACHE)
def _decode_cached(path: Path, mtime_ns: int, size: Size, fit: Fit) -> pygame.Surface:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as opened:
            # JPEG can decode at 1/2, 1/4, 1/8 scale directly: far cheaper for big photos.
            opened.draft("RGB", (size[0] * 2, size[1] * 2))
            picture = ImageOps.exif_transpose(opened)
            picture = picture.convert("RGBA")
    x, y, w, h = fit_box(picture.size, size, fit)
    picture = picture.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    zone = Image.new("RGBA", size, (0, 0, 0, 0))
    zone.paste(picture, (x, y))
    return pygame.image.frombytes(zone.tobytes(), size, "RGBA")


class ImageRenderer:
    def __init__(self, context: RenderContext) -> None:
        self._context = context
        self._picture: pygame.Surface | None = None
        self._painted = False

    async def prepare(self, item: Item, size: Size) -> None:
        if not isinstance(item, ImageItem):
            raise ZoneError(f"not an image item: {item.type}", zone=self._context.zone_id)
        try:
            path = self._context.asset_path(item.asset)
            self._picture = await asyncio.to_thread(decode_image, path, size, item.fit)
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
        surface.fill((0, 0, 0, 0))
        surface.blit(self._picture, (0, 0))
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
