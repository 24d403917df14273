"""Displays of the GL path: a pygame ``OPENGL`` window, or a framebuffer in a shared context.

``GLWindow`` is the screen: KMSDRM on a Pi without X, X11 or Wayland on a desktop, SDL's
``offscreen`` driver (EGL, no display) headless; double-buffered, swap interval 1 (vsync).
``GLOffscreen`` is a framebuffer object of the process's one context (pygame has a single
window, so several players in one process, as in the simulator, each draw into their own
framebuffer of a hidden window's context).

Both are ``Display``s: the software compositor can present a canvas through them (the canvas
goes up as a texture, damaged rectangles only), but ``zones.compositor_for`` gives them the GL
compositor, which draws every zone as a texture of its own.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Sequence

import pygame

from core import DisplayConfig, PlayerError
from zones._display import init_video, quit_requested
from zones._geometry import Rotation, rotated_size
from zones._gl import GLContext, GLInfo
from zones._gl_draw import (
    Framebuffer,
    QuadProgram,
    Texture,
    byte_order,
    exact,
    program_of,
    transform,
)

log = logging.getLogger(__name__)

Size = tuple[int, int]
_HEADLESS_DRIVERS = {"dummy", "offscreen"}
_HEADLESS_SIZE = (1920, 1080)


class GLScreen:
    """What the GL compositor draws into: a framebuffer of ``physical`` pixels in a context."""

    framebuffer = 0
    flip_y = True

    def __init__(self, context: GLContext, physical: Size, rotation: Rotation) -> None:
        self.context = context
        self.physical = physical
        self.rotation: Rotation = rotation
        self._size = rotated_size(physical, rotation)
        self._frames = 0
        self._canvas: Texture | None = None
        context.users += 1

    @property
    def size(self) -> Size:
        """The logical size content is composed for (after rotation)."""
        return self._size

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def info(self) -> GLInfo:
        return self.context.info

    def begin(self, canvas: Size) -> QuadProgram:
        """Bind this screen and map ``canvas`` pixels onto it; the program to draw with."""
        program = program_of(self.context)
        matrix = transform(canvas, self.physical, self.rotation, flip_y=self.flip_y)
        one_to_one = exact(canvas, self.physical, self.rotation)
        program.begin(self.framebuffer, self.physical, matrix, exact=one_to_one)
        program.clear((0.0, 0.0, 0.0, 1.0))  # letterbox bars
        return program

    def swap(self) -> None:
        """Show what was drawn. The frame counts as presented when this returns."""
        self._frames += 1

    def present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        """Show a canvas composed in software: its changed rectangles go up, the GPU scales,
        rotates and letterboxes it (the software compositor on a GL screen)."""
        texture = self._canvas
        if texture is None or texture.size != canvas.get_size():
            if texture is not None:
                texture.delete()
            texture = self._canvas = Texture(self.context, canvas.get_size())
            rects = [canvas.get_rect()]
        for rect in rects:
            texture.upload(canvas, rect)
        program = self.begin(canvas.get_size())
        program.draw(
            texture.name, (0, 0, *canvas.get_size()), swizzle=byte_order(canvas) is not False
        )
        self.swap()

    def warm(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        """Nothing to touch: ``present`` reads the canvas rows the scene has just warmed and
        writes into GPU memory, which is not the process's to warm."""

    def close(self) -> None:
        if self._canvas is not None:
            self._canvas.delete()
            self._canvas = None
        self.context.users -= 1
        if self.context.users <= 0 and not self.context.closed:
            self.context.close()
            pygame.display.quit()


class GLWindow(GLScreen):
    """A pygame ``OPENGL | DOUBLEBUF`` window (fullscreen on a kiosk) with vsync."""

    def __init__(self, config: DisplayConfig) -> None:
        driver = init_video(config)
        if driver == "dummy":
            raise PlayerError("SDL's dummy video driver has no OpenGL (offscreen has, via EGL)")
        physical = _physical_size(config, driver)
        flags = pygame.FULLSCREEN if config.fullscreen and driver not in _HEADLESS_DRIVERS else 0
        context = GLContext.open(lambda f: pygame.display.set_mode(physical, f), flags)
        pygame.display.set_caption("signage")
        if config.hide_cursor:
            pygame.mouse.set_visible(False)
        self.driver = driver
        super().__init__(context, physical, config.rotation)

    def swap(self) -> None:
        pygame.display.flip()  # SDL_GL_SwapWindow: with vsync, returns after the flip is queued
        super().swap()

    def quit_requested(self) -> bool:
        """Drain the window's event queue; True when it was closed or Escape pressed."""
        return quit_requested()


class GLOffscreen(GLScreen):
    """A framebuffer of ``physical`` pixels in the process's context (made hidden when none
    is open yet); nothing reaches a screen. ``read()`` returns what was presented."""

    flip_y = False  # read back row 0 first, like a surface

    def __init__(self, size: Size = _HEADLESS_SIZE, rotation: Rotation = 0) -> None:
        context = GLContext.current
        if context is None or context.closed:
            context = _hidden_context()
        super().__init__(context, size, rotation)
        self._target = Framebuffer.create(context, size)
        self.framebuffer = self._target.name
        # A display dropped without close() (a simulated power cut) still frees its memory.
        self._finalizer = weakref.finalize(self, context.doom, self._target)

    def swap(self) -> None:
        self.context.gl.glFinish()  # "presented": the GPU has finished drawing it
        super().swap()

    def read(self) -> pygame.Surface:
        """The physical pixels (letterboxed and rotated as a screen would show them)."""
        return self._target.read()

    def close(self) -> None:
        if self._finalizer.detach() is not None:
            self._target.delete()
            super().close()


def _physical_size(config: DisplayConfig, driver: str) -> Size:
    if config.width and config.height:
        return config.width, config.height
    if driver in _HEADLESS_DRIVERS:
        return _HEADLESS_SIZE
    sizes = pygame.display.get_desktop_sizes()
    return sizes[0] if sizes else _HEADLESS_SIZE


def _hidden_context() -> GLContext:
    """Open a hidden 16x16 GL window to hold the context (SDL's offscreen driver: EGL)."""
    if pygame.display.get_init() and pygame.display.get_surface() is not None:
        raise PlayerError("a window without OpenGL is open in this process")
    previous = os.environ.get("SDL_VIDEODRIVER")
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
    try:
        pygame.display.init()
    except pygame.error as exc:
        raise PlayerError(f"cannot start SDL's offscreen driver: {exc}") from exc
    finally:
        if previous is None:
            os.environ.pop("SDL_VIDEODRIVER", None)
        else:
            os.environ["SDL_VIDEODRIVER"] = previous
    try:
        return GLContext.open(lambda f: pygame.display.set_mode((16, 16), f), pygame.HIDDEN)
    except PlayerError:
        pygame.display.quit()
        raise
