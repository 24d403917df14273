"""Where composed frames go: a real screen (pygame window/KMS), or an offscreen surface.

The compositor composes into a canvas the size of the layout; a display maps it onto the
physical screen (uniform scale, letterbox bars, rotation) and updates only the rectangles that
changed. The offscreen display serves tests and the simulator, which runs several players in
one process (pygame has a single window).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol

import pygame

from core import DisplayConfig, PlayerError
from zones._geometry import Rotation, rotate_box, rotated_size
from zones._memory import touch_pages

Size = tuple[int, int]
_HEADLESS_DRIVERS = {"dummy", "offscreen"}
_HEADLESS_SIZE = (1920, 1080)


class Display(Protocol):
    """Where the compositor presents.

    ``warm`` is part of the contract, not an extra: the compositor calls it before every
    frame that switches an item, whatever the display is, so a switch frame's copy runs warm.
    A display that wraps another forwards it (``DisplayWrapper`` does); one with nothing to
    warm implements it as a no-op. (It used to be optional and looked up by name: a wrapper
    that did not forward it silently lost the warm-up and its switches ran late.)"""

    @property
    def size(self) -> Size:
        """The logical size content is composed for (after rotation)."""
        ...

    @property
    def frames(self) -> int:
        """How many frames were presented."""
        ...

    def present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None: ...

    def warm(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        """Touch the memory the next ``present`` of ``rects`` writes (see zones._memory)."""
        ...

    def close(self) -> None: ...


class DisplayWrapper:
    """A display in front of another (a frame watch, a recorder): everything goes to ``inner``.

    A wrapper subclasses this and overrides only what it changes (usually ``present``, calling
    ``super().present`` first); the rest of the contract, ``warm`` included, is forwarded, so a
    wrapper cannot lose it.
    """

    def __init__(self, inner: Display) -> None:
        self.inner = inner

    @property
    def size(self) -> Size:
        return self.inner.size

    @property
    def frames(self) -> int:
        return self.inner.frames

    def present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        self.inner.present(canvas, rects)

    def warm(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        self.inner.warm(canvas, rects)

    def close(self) -> None:
        self.inner.close()


class OffscreenDisplay:
    """Keeps the last presented canvas; nothing reaches a screen."""

    def __init__(self, size: Size = _HEADLESS_SIZE) -> None:
        self._size = size
        self._frames = 0
        self.last: pygame.Surface | None = None

    @property
    def size(self) -> Size:
        return self._size

    @property
    def frames(self) -> int:
        return self._frames

    def present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        self.last = canvas
        self._frames += 1

    def warm(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        """Nothing to warm: presenting keeps a reference."""

    def close(self) -> None:
        self.last = None


def init_video(config: DisplayConfig) -> str:
    """SDL's video subsystem on the configured driver (``display.driver``); its name."""
    if config.driver:
        os.environ["SDL_VIDEODRIVER"] = config.driver
    try:
        pygame.display.init()
    except pygame.error as exc:
        raise PlayerError(f"cannot open the display: {exc}") from exc
    return pygame.display.get_driver()


class ScreenDisplay:
    """A pygame window (fullscreen on a kiosk), honouring the configured size and rotation."""

    def __init__(self, config: DisplayConfig) -> None:
        driver = init_video(config)
        if driver == "x11":
            # SDL 2 otherwise presents a window surface through its 2D renderer (OpenGL):
            # the whole window is uploaded and drawn per update (~13 ms for a 16x16 update
            # under Xvfb with llvmpipe). Plain X11 (MIT-SHM) sends only the changed rects.
            os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
        physical = self._physical_size(config, driver)
        flags = pygame.FULLSCREEN if config.fullscreen and driver not in _HEADLESS_DRIVERS else 0
        try:
            self._screen = pygame.display.set_mode(physical, flags)
        except pygame.error as exc:
            raise PlayerError(f"cannot set display mode {physical}: {exc}") from exc
        pygame.display.set_caption("signage")
        if config.hide_cursor:
            pygame.mouse.set_visible(False)
        self._rotation: Rotation = config.rotation
        self._size = rotated_size(physical, config.rotation)
        self._canvas_size: Size | None = None
        self._frames = 0

    @staticmethod
    def _physical_size(config: DisplayConfig, driver: str) -> Size:
        """The screen's own mode (width x height as the panel scans out, before rotation)."""
        if config.width and config.height:
            return config.width, config.height
        if driver in _HEADLESS_DRIVERS:
            return _HEADLESS_SIZE
        sizes = pygame.display.get_desktop_sizes()
        return sizes[0] if sizes else _HEADLESS_SIZE

    @property
    def size(self) -> Size:
        return self._size

    @property
    def frames(self) -> int:
        return self._frames

    def _placement(self, canvas_size: Size, rect: pygame.Rect) -> tuple[pygame.Rect, Size]:
        """Where a canvas rectangle lands on the screen, and its size before rotation."""
        cw, ch = canvas_size
        lw, lh = self._size
        scale = min(lw / cw, lh / ch)
        ox, oy = (lw - cw * scale) / 2, (lh - ch * scale) / 2
        x0, y0 = math.floor(ox + rect.x * scale), math.floor(oy + rect.y * scale)
        x1, y1 = math.ceil(ox + rect.right * scale), math.ceil(oy + rect.bottom * scale)
        box = rotate_box((x0, y0, x1 - x0, y1 - y0), self._size, self._rotation)
        return pygame.Rect(box), (x1 - x0, y1 - y0)

    def present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        if canvas.get_size() != self._canvas_size:
            # A new canvas size: repaint the letterbox bars and everything else.
            self._canvas_size = canvas.get_size()
            self._screen.fill((0, 0, 0))
            rects = [canvas.get_rect()]
        updated = []
        for rect in rects:
            rect = rect.clip(canvas.get_rect())
            if rect.w <= 0 or rect.h <= 0:
                continue
            box, scaled = self._placement(canvas.get_size(), rect)
            piece = canvas.subsurface(rect)
            if scaled != rect.size:
                piece = pygame.transform.smoothscale(piece, scaled)
            if self._rotation:
                piece = pygame.transform.rotate(piece, -self._rotation)
            self._screen.blit(piece, box.topleft)
            updated.append(box)
        pygame.display.update(updated)
        self._frames += 1

    def warm(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        """Touch the screen memory the next ``present`` of ``rects`` writes (zones._memory)."""
        if canvas.get_size() != self._canvas_size:
            return  # that present repaints everything anyway
        for rect in rects:
            touch_pages(self._screen, self._placement(canvas.get_size(), rect)[0])

    def quit_requested(self) -> bool:
        """Drain the window's event queue; True when it was closed or Escape pressed."""
        return quit_requested()

    def close(self) -> None:
        pygame.display.quit()


def quit_requested() -> bool:
    """Drain a window's event queue (a desktop marks silent windows as hung); True when the
    window was closed or Escape pressed."""
    quit_seen = False
    for event in pygame.event.get():
        if event.type == pygame.QUIT or (
            event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
        ):
            quit_seen = True
    return quit_seen
