"""Choosing the presentation path: GL or software, per ``display.renderer``.

``auto`` (the default) takes the GL path when an OpenGL context of a usable version (ES 2.0 or
later, desktop 3.0 or later) can be made on the configured video driver and a GPU draws it,
else the software path, and logs the choice once with the reason. A software rasteriser
(Mesa's llvmpipe: no GPU, or no GPU driver) is not a usable context for ``auto``: it draws on
the CPU, more slowly than the software path (docs/player.md has the figures). ``gl`` fails
with the reason instead of falling back (and runs on llvmpipe); ``software`` never tries GL.
``compositor_for`` gives a display its compositor, so the player knows nothing of its path.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

from core import DisplayConfig, PlayerError
from zones._compositor import Compositor
from zones._display import Display, OffscreenDisplay, ScreenDisplay
from zones._gl import GLInfo
from zones._gl_compositor import GLCompositor
from zones._gl_display import GLOffscreen, GLScreen, GLWindow

log = logging.getLogger(__name__)

RendererChoice = Literal["auto", "gl", "software"]


def open_display(config: DisplayConfig) -> ScreenDisplay | GLWindow:
    """The screen, on the path ``config.renderer`` asks for (see the module docs)."""
    driver = config.driver or os.environ.get("SDL_VIDEODRIVER")
    if config.renderer == "software" or (config.renderer == "auto" and driver == "dummy"):
        reason = "configured" if config.renderer == "software" else "SDL's dummy driver has no GL"
        log.info("presentation path", extra={"fields": {"path": "software", "reason": reason}})
        return ScreenDisplay(config)
    try:
        window = GLWindow(config)
    except PlayerError as exc:
        if config.renderer == "gl":
            raise PlayerError(f"display.renderer = gl, but {exc}") from exc
        log.warning(
            "presentation path: OpenGL unavailable, composing in software",
            extra={"fields": {"path": "software", "reason": str(exc)}},
        )
        return ScreenDisplay(config)
    if config.renderer == "auto" and window.info.software:
        # A software rasteriser draws on the CPU, slower than pygame's blits (llvmpipe: about
        # 15 ms per 1080p textured quad on the development VM against 1 ms for a blit), and
        # must redraw the whole frame where the software path sends only what changed.
        renderer = window.info.renderer
        window.close()
        log.warning(
            "presentation path: OpenGL is a software rasteriser, composing in software",
            extra={
                "fields": {
                    "path": "software",
                    "reason": "software rasteriser",
                    "renderer": renderer,
                }
            },
        )
        return ScreenDisplay(config)
    _log_gl(window.info, window.context.vsync, config.renderer)
    return window


def offscreen_display(
    size: tuple[int, int] = (1920, 1080), renderer: RendererChoice = "software"
) -> OffscreenDisplay | GLOffscreen:
    """A display that reaches no screen, for one of several players in a process (the
    simulator, tests): an ``OffscreenDisplay`` in software, on the GL path a framebuffer of the
    process's one context (SDL's offscreen driver with EGL when no window is open)."""
    if renderer == "software":
        return OffscreenDisplay(size)
    try:
        display = GLOffscreen(size)
    except PlayerError as exc:
        if renderer == "gl":
            raise
        log.warning(
            "presentation path: OpenGL unavailable, composing in software",
            extra={"fields": {"path": "software", "reason": str(exc)}},
        )
        return OffscreenDisplay(size)
    if renderer == "auto" and display.info.software:
        display.close()
        return OffscreenDisplay(size)  # as open_display: a software rasteriser is passed over
    return display


def compositor_for(display: Display, *, frame_ns: int = 16_666_667) -> Compositor:
    """The GL compositor for a GL display, the software one for any other."""
    if isinstance(display, GLScreen):
        return GLCompositor(display, frame_ns=frame_ns)
    return Compositor(display, frame_ns=frame_ns)


def _log_gl(info: GLInfo, vsync: bool, asked: str) -> None:
    log.info(
        "presentation path",
        extra={
            "fields": {
                "path": "gl",
                "reason": "configured" if asked == "gl" else "auto: an OpenGL context was made",
                "renderer": info.renderer,
                "version": info.version,
                "vsync": vsync,
            }
        },
    )
    if info.software:
        log.warning(
            "OpenGL is a software rasteriser: every frame is drawn by the CPU",
            extra={"fields": {"renderer": info.renderer}},
        )
