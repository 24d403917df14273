"""Layout geometry, zone renderers and the compositor."""

import importlib
import os
import typing

# pygame prints a banner on import unless told not to; a daemon's stdout is not the place.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


from zones._api import (
    LAZY_RENDERERS,
    CrashGuard,
    GLTarget,
    RenderContext,
    Renderer,
    RendererFactory,
    Size,
    configure_renderer,
    create_renderer,
    load_renderers,
    register_renderer,
    registered_types,
    renderer_config,
)
from zones._clock import ClockRenderer
from zones._compositor import Compositor, Overlay, Scene
from zones._display import Display, DisplayWrapper, OffscreenDisplay, ScreenDisplay
from zones._fonts import FONT_FILES, font
from zones._frame_check import (
    BLACK_AREA,
    NEAR_BLACK_LUMA,
    FreezeWatch,
    black_share,
    black_share_of,
    is_black,
    luma,
    near_black,
    near_black_mask,
    picture_digest,
    surface_image,
)
from zones._geometry import fit_box, rotate_box, rotated_size
from zones._gl import GLContext, GLInfo
from zones._gl_compositor import GLCompositor
from zones._gl_display import GLOffscreen, GLScreen, GLWindow
from zones._image import ImageRenderer, Picture, decode_image, start_image_decoder
from zones._png import png_bytes
from zones._power import (
    BackendName,
    CecPower,
    DrmPower,
    NoPower,
    ScreenPower,
    ScreenState,
    X11Power,
    choose_power,
    power_backend,
)
from zones._screen import RendererChoice, compositor_for, offscreen_display, open_display
from zones._screens import NoContentScreen, PairingScreen
from zones._text import TextRenderer, fit_font_size, wrap
from zones._zoneview import ZoneView

if typing.TYPE_CHECKING:
    from zones._video import VideoRenderers

# Loaded on first use: importing them loads libmpv, which an image-only device never needs.
_LAZY = {"VideoRenderers": "zones._video"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zones' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BLACK_AREA",
    "BackendName",
    "CecPower",
    "ClockRenderer",
    "Compositor",
    "CrashGuard",
    "Display",
    "DisplayWrapper",
    "DrmPower",
    "FONT_FILES",
    "FreezeWatch",
    "GLCompositor",
    "GLContext",
    "GLInfo",
    "GLOffscreen",
    "GLScreen",
    "GLTarget",
    "GLWindow",
    "ImageRenderer",
    "LAZY_RENDERERS",
    "NEAR_BLACK_LUMA",
    "NoContentScreen",
    "NoPower",
    "OffscreenDisplay",
    "Overlay",
    "PairingScreen",
    "Picture",
    "RenderContext",
    "Renderer",
    "RendererChoice",
    "RendererFactory",
    "Scene",
    "ScreenDisplay",
    "ScreenPower",
    "ScreenState",
    "Size",
    "TextRenderer",
    "VideoRenderers",
    "X11Power",
    "ZoneView",
    "black_share",
    "black_share_of",
    "choose_power",
    "compositor_for",
    "configure_renderer",
    "create_renderer",
    "decode_image",
    "fit_box",
    "fit_font_size",
    "font",
    "is_black",
    "load_renderers",
    "luma",
    "near_black",
    "near_black_mask",
    "offscreen_display",
    "open_display",
    "picture_digest",
    "png_bytes",
    "power_backend",
    "register_renderer",
    "registered_types",
    "renderer_config",
    "rotate_box",
    "rotated_size",
    "start_image_decoder",
    "surface_image",
    "wrap",
]
