"""Image zones: decoded at the size they are shown, in a child process, fitted to the zone.

Decoding runs in the image decoder process (``zones._image_worker``; memory and crashes stay
there), at the fitted size (``zones._image_decode``); this module turns the fitted pixels into
a pygame Surface, off the frame loop, and keeps the last few for the next cycle of a playlist.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pygame

from core import ImageConfig, ZoneError
from protocol import ImageItem, Item
from zones._api import RenderContext, Size, register_renderer, renderer_config
from zones._geometry import Fit
from zones._image_worker import shared_decoder

log = logging.getLogger(__name__)

_DECODED_CACHE = 8  # fitted pictures (<= 8 MB each); a short playlist decodes each image once
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Picture:
    """A decoded picture, already fitted: paste ``surface`` at ``offset`` in the zone."""

    surface: pygame.Surface
    offset: tuple[int, int]


Crop = tuple[float, float, float, float] | None  # (x, y, w, h) fractions of the picture
_Key = tuple[Path, int, Size, Fit, Crop]  # file, its mtime, zone size, fit, the zone's tile
_decoded: OrderedDict[_Key, Picture] = OrderedDict()  # least recently used first


def _config() -> ImageConfig:
    config = renderer_config("image")
    return config if isinstance(config, ImageConfig) else ImageConfig()


def start_image_decoder() -> None:
    """Start the decoder process ahead of the first picture. Blocks: run it in a thread."""
    try:
        shared_decoder(_config().decode_timeout_s).start()
    except OSError as exc:  # the first picture tries again, and reports it
        log.warning("the image decoder process did not start: %s", exc)


def decode_image(path: Path, size: Size, fit: Fit, crop: Crop = None) -> Picture:
    """The picture at ``path`` (its ``crop`` tile) fitted into ``size``. Blocks: run it in a
    thread.

    ZoneError (without zone or item: the caller knows them) for any file that cannot be shown.
    """
    key = (path, path.stat().st_mtime_ns, size, fit, crop)
    with _cache_lock:
        picture = _lookup(key)
    if picture is not None:
        return picture
    config = _config()
    decoder = shared_decoder(config.decode_timeout_s)
    decoded = decoder.decode(path, size, fit, int(config.max_megapixels * 1_000_000), crop)
    surface = pygame.image.frombytes(decoded.data, decoded.size, decoded.mode)
    if decoded.mode == "RGB":
        # Once, here, into the zones' own 32-bit format: every later paste is then a plain
        # copy instead of a 24-to-32-bit conversion (a third of a switch's cost in a sim run).
        converted = pygame.Surface(surface.get_size())
        converted.blit(surface, (0, 0))
        surface = converted
    picture = Picture(surface, decoded.offset)
    with _cache_lock:
        _decoded[key] = picture
        _decoded.move_to_end(key)
        while len(_decoded) > _DECODED_CACHE:
            _decoded.popitem(last=False)
    return picture


def cached_image(path: Path, size: Size, fit: Fit, crop: Crop = None) -> Picture | None:
    """The fitted picture if it is already decoded, at once: never waits, never decodes.

    A playlist shows the same pictures every cycle; taking them from the cache on the event
    loop saves a round trip through a worker thread per item (``decode_image`` does the rest).
    """
    if not _cache_lock.acquire(blocking=False):
        return None  # another thread is updating the cache: the caller goes through a thread
    try:
        return _lookup((path, path.stat().st_mtime_ns, size, fit, crop))
    finally:
        _cache_lock.release()


def _lookup(key: _Key) -> Picture | None:
    picture = _decoded.get(key)
    if picture is not None:
        _decoded.move_to_end(key)
    return picture


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
        except ZoneError as exc:
            if exc.zone is not None:  # already says where (e.g. from asset_path)
                raise
            raise self._error(item, str(exc)) from exc
        except (OSError, ValueError, pygame.error) as exc:  # the file vanished, a bad size
            raise self._error(item, str(exc)) from exc

    def _error(self, item: ImageItem, reason: str) -> ZoneError:
        return ZoneError(
            f"cannot show image {item.asset[:12]}: {reason}",
            zone=self._context.zone_id,
            item=item.id,
        )

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
