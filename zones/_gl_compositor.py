"""The GL path's compositor: every zone layer a texture, blending and placement on the GPU.

Scenes, zones, renderers and the rules of when a scene or an item switches are the software
compositor's (``zones._compositor``, ``zones._zoneview``); what differs is how a frame is made:

- each layer (a zone's current item, its outgoing item during a fade) is a texture the size of
  the zone, refreshed only where the renderer reported damage (``Layer.pending``); a picture a
  renderer lends (``surface``) keeps its texture while it lives, so a slideshow uploads each
  photo once;
- a frame is drawn whole: the letterbox, the layout background, each zone's layers in z-order
  at the opacity ``ZoneView.layers`` gives (fades and crossfades blend in the shader), then the
  identify banner; placement, scale and rotation are one matrix in the vertex shader;
- the frame is presented by swapping buffers (vsync on a screen); "presented" is when the swap
  has returned;
- a renderer with ``draw_gl`` draws into a zone-sized framebuffer the compositor gives it
  (``GLTarget``) and is told after each swap (``presented``): the hook GL video uses;
- ``warm`` uploads the textures of the items about to switch in, ahead of their deadline;
- ``frame``/``screenshot`` draw the last frame again into a canvas-sized framebuffer and read
  it back (``glReadPixels``).
"""

from __future__ import annotations

import weakref
from collections.abc import Collection
from dataclasses import dataclass

import pygame

from zones._api import GLTarget
from zones._compositor import Compositor, Overlay, Scene
from zones._gl import GLContext
from zones._gl_display import GLScreen
from zones._gl_draw import (
    Colour,
    Framebuffer,
    Pool,
    QuadProgram,
    Texture,
    byte_order,
    program_of,
)
from zones._gl_draw import transform as canvas_transform
from zones._zoneview import Layer, ZoneView

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Quad:
    rect: Rect  # canvas pixels
    texture: int = 0  # 0: a solid ``colour``
    colour: Colour = (0.0, 0.0, 0.0, 1.0)
    alpha: float = 1.0
    swizzle: bool = True
    opaque: bool = True


@dataclass
class _Frame:
    """What the last presented frame drew, to draw it again for a read-back."""

    canvas: tuple[int, int]
    quads: list[_Quad]
    layers: list[Layer]  # keeps their textures alive until the next frame


def _colour(colour: pygame.Color) -> Colour:
    return (colour.r / 255, colour.g / 255, colour.b / 255, 1.0)


class GLCompositor(Compositor):
    """Presents the active scene through a ``GLScreen`` (window or offscreen framebuffer)."""

    def __init__(self, display: GLScreen, *, frame_ns: int = 16_666_667) -> None:
        super().__init__(display, frame_ns=frame_ns)
        self.screen = display
        self.gl: GLContext = display.context
        self._textures: weakref.WeakKeyDictionary[object, Texture] = weakref.WeakKeyDictionary()
        # Released layers' textures and framebuffers, for the next items of the same size.
        self.textures = Pool(self.gl, lambda size: Texture(self.gl, size), keep=6)
        self.framebuffers = Pool(self.gl, lambda size: Framebuffer.create(self.gl, size), keep=4)
        self._last: _Frame | None = None
        self._banner: tuple[Overlay, Texture] | None = None
        self._readback: Framebuffer | None = None
        self.uploaded_pixels = 0  # texture pixels uploaded so far (tests and benchmarks)

    # -- scenes ------------------------------------------------------------------------------

    def present(self, scene: Scene) -> None:
        scene.use_gpu(self._target_for)
        super().present(scene)

    def _target_for(self, layer: Layer, size: tuple[int, int]) -> GLTarget:
        framebuffer = self.framebuffers.take(size)
        weakref.finalize(layer, self.framebuffers.give_back, framebuffer)  # with the layer
        return GLTarget(framebuffer.name, framebuffer.texture.name, size)

    # -- textures ----------------------------------------------------------------------------

    def _texture(self, layer: Layer) -> Texture:
        """The layer's texture, with what changed since the last frame uploaded.

        A lent picture (``borrowed``) owns its texture for as long as the picture lives;
        other layers own theirs. Either way the texture goes back to the pool after.
        """
        key: object = layer.surface if layer.borrowed else layer
        texture = self._textures.get(key)
        pending = layer.take_pending()
        if texture is None:
            texture = self.textures.take(layer.surface.get_size())
            self._textures[key] = texture
            weakref.finalize(key, self.textures.give_back, texture)
            pending = layer.surface.get_rect()
        elif layer.borrowed and texture.uploads:
            pending = None  # a lent picture never changes: uploaded once
        if pending is not None:
            before = texture.uploaded_pixels
            texture.upload(layer.surface, pending)
            self.uploaded_pixels += texture.uploaded_pixels - before
        return texture

    def warm(self, zone_ids: Collection[str]) -> None:
        """Before a deadline at which ``zone_ids`` switch item: upload the incoming items'
        textures now, so the switch frame only draws."""
        scene = self.active
        if scene is None or self._pending is not None:
            return
        for view in scene.zones:
            layer = view.staged or view.current
            if view.zone_id in zone_ids and layer is not None and not layer.draws_gl:
                self._texture(layer)

    # -- frames ------------------------------------------------------------------------------

    def _compose_scene(self, scene: Scene, now_ns: int, overlay: Overlay | None) -> bool:
        rects = [scene.canvas.get_rect()] if scene.take_invalidated() else []
        rects += [rect for view in scene.zones if (rect := view.update(now_ns)) is not None]
        if overlay is not None and overlay.changed():
            rects.append(overlay.rect(scene.canvas.get_size()))
        if not rects:
            return False
        self._changed = rects
        self.gl.collect()
        frame = self._frame(scene, now_ns, overlay)
        program = self.screen.begin(frame.canvas)
        _draw(program, frame.quads)
        self.screen.swap()
        self._last = frame
        for layer in frame.layers:
            presented = getattr(layer.renderer, "presented", None)
            if layer.target is not None and presented is not None:
                presented()
        return True

    def _frame(self, scene: Scene, now_ns: int, overlay: Overlay | None) -> _Frame:
        canvas = scene.canvas.get_size()
        quads = [_Quad((0, 0, *canvas), colour=_colour(scene.background))]
        layers: list[Layer] = []
        for view in scene.zones:
            painted = view.layers(now_ns)
            if _covers_canvas(view, painted, canvas):
                quads, layers = [], []  # nothing beneath shows: not drawn at all
            for layer, alpha in painted:
                if alpha <= 0.0:
                    continue
                quads.append(self._quad(view, layer, alpha))
                layers.append(layer)
        if overlay is not None and overlay.visible:
            quads.append(self._overlay_quad(overlay, canvas))
        return _Frame(canvas, quads, layers)

    def _quad(self, view: ZoneView, layer: Layer, alpha: float) -> _Quad:
        rect = (view.rect.x, view.rect.y, view.rect.w, view.rect.h)
        if layer.target is not None:
            opaque = bool(getattr(layer.renderer, "opaque", False))
            return _Quad(rect, layer.target.texture, alpha=alpha, swizzle=False, opaque=opaque)
        texture = self._texture(layer)
        return _Quad(
            rect,
            texture.name,
            alpha=alpha,
            swizzle=byte_order(layer.surface) is not False,
            opaque=not layer.surface.get_flags() & pygame.SRCALPHA,
        )

    def _overlay_quad(self, overlay: Overlay, canvas: tuple[int, int]) -> _Quad:
        rect = overlay.rect(canvas)
        if self._banner is None or self._banner[0] is not overlay:
            if self._banner is not None:
                self.gl.doom(self._banner[1])
            banner = overlay.banner(rect.size)
            texture = Texture(self.gl, rect.size)
            texture.upload(banner)
            self._banner = (overlay, texture)
        return _Quad((rect.x, rect.y, rect.w, rect.h), self._banner[1].name)

    # -- read-back ---------------------------------------------------------------------------

    def frame(self) -> pygame.Surface | None:
        """A copy of the last presented frame, in canvas orientation (drawn again into a
        framebuffer of the canvas's size and read back)."""
        last = self._last
        if last is None:
            return None
        target = self._readback
        if target is None or target.size != last.canvas:
            if target is not None:
                target.delete()
            target = self._readback = Framebuffer.create(self.gl, last.canvas)
            weakref.finalize(self, self.gl.doom, target)
        program = program_of(self.gl)
        matrix = canvas_transform(last.canvas, last.canvas, 0, flip_y=False)
        program.begin(target.name, last.canvas, matrix, exact=True)
        program.clear((0.0, 0.0, 0.0, 1.0))
        _draw(program, last.quads)
        return target.read()

    def _listened_frame(self, scene: Scene) -> pygame.Surface:
        frame = self.frame()
        assert frame is not None  # called right after a presented frame
        return frame


def _covers_canvas(
    view: ZoneView, painted: list[tuple[Layer, float]], canvas: tuple[int, int]
) -> bool:
    """The zone hides the whole canvas with an opaque first layer (a full-screen video or
    photo): nothing beneath needs drawing."""
    if not painted or painted[0][1] < 1.0 or not view.rect.contains(pygame.Rect((0, 0), canvas)):
        return False
    layer = painted[0][0]
    if layer.draws_gl:
        return bool(getattr(layer.renderer, "opaque", False))
    return not layer.surface.get_flags() & pygame.SRCALPHA


def _draw(program: QuadProgram, quads: list[_Quad]) -> None:
    for quad in quads:
        if quad.texture == 0:
            program.fill(quad.rect, quad.colour)
        else:
            program.draw(
                quad.texture,
                quad.rect,
                alpha=quad.alpha,
                swizzle=quad.swizzle,
                opaque=quad.opaque,
            )
