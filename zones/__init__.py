"""Layout geometry, zone renderers and the compositor."""

from zones._api import (
    LAZY_RENDERERS,
    RenderContext,
    Renderer,
    RendererFactory,
    Size,
    create_renderer,
    register_renderer,
    registered_types,
)

__all__ = [
    "LAZY_RENDERERS",
    "RenderContext",
    "Renderer",
    "RendererFactory",
    "Size",
    "create_renderer",
    "register_renderer",
    "registered_types",
]
