"""One zone of a scene: the renderer it shows, the outgoing one during a fade, and its pixels.

A ``ZoneView`` owns a zone-sized surface per renderer (or composes from the surface a renderer
lends), blends transparent layers over the layout background once when they change, stages the
next item before its deadline, and paints its rectangle of the canvas (``zones._compositor``).
On the GL path (``zones._gl_compositor``) it does the same minus the blending, which the GPU
does: each layer is a texture, refreshed where the layer's ``pending`` rectangle says, and a
renderer with ``draw_gl`` draws into a framebuffer the compositor gives it (``gpu``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pygame

from core import ZoneError
from protocol import Transition
from zones._api import GLTarget, Renderer
from zones._memory import touch_pages

ErrorHandler = Callable[["ZoneView", Renderer, ZoneError], None]
# On the GL path: the zone-sized framebuffer a ``draw_gl`` renderer's layer draws into.
TargetFor = Callable[["Layer", tuple[int, int]], GLTarget]


@dataclass(eq=False)
class Layer:
    """One renderer's pixels in a zone (the current item, the outgoing one, a staged one)."""

    renderer: Renderer
    surface: pygame.Surface
    flat: pygame.Surface | None = None  # surface over the backdrop, when nothing is beneath
    borrowed: bool = False  # the renderer's own ``surface``: never reused for another item
    # The part of ``surface`` changed since the GL path last copied it to its texture.
    pending: pygame.Rect | None = None
    target: GLTarget | None = None  # GL path, ``draw_gl`` renderers: where the pixels are

    def __post_init__(self) -> None:
        self.pending = self.surface.get_rect()

    @property
    def draws_gl(self) -> bool:
        """Its pixels come from the renderer's ``draw_gl`` into ``target``, not a surface."""
        return self.surface is _NO_SURFACE

    def take_pending(self) -> pygame.Rect | None:
        pending, self.pending = self.pending, None
        return pending

    def _changed(self, area: pygame.Rect) -> None:
        self.pending = area.copy() if self.pending is None else self.pending.union(area)


# A layer whose pixels live in a GL framebuffer has no surface of its own.
_NO_SURFACE = pygame.Surface((1, 1))


@dataclass(frozen=True)
class _Fade:
    kind: str  # "fade" (out to the background, then in) or "crossfade"
    start_ns: int
    duration_ns: int

    def progress(self, now_ns: int) -> float:
        return min(1.0, max(0.0, (now_ns - self.start_ns) / max(1, self.duration_ns)))


def _release(layer: Layer | None, spares: list[pygame.Surface] | None = None) -> None:
    if layer is not None:
        layer.renderer.stop()
        layer.renderer.release()
        _spare(layer, spares)


def _spare(layer: Layer, spares: list[pygame.Surface] | None) -> None:
    """Keep a released layer's surface for the next item: no 8 MB allocation per switch."""
    if spares is not None and len(spares) < 2 and not layer.borrowed:
        spares.append(layer.surface)


class ZoneView:
    """One zone's rectangle on the canvas and what it shows."""

    def __init__(self, zone_id: str, rect: pygame.Rect, z: int = 0) -> None:
        self.zone_id = zone_id
        self.rect = rect
        self.z = z
        self.current: Layer | None = None
        self._outgoing: Layer | None = None
        self._fade: _Fade | None = None
        self._dirty = False
        self._spares: list[pygame.Surface] = []
        self._staged: Layer | None = None
        # The layout background when no zone lies beneath this one (set by the scene); None
        # on the GL path, which blends on the GPU.
        self.backdrop: pygame.Color | None = None
        self.on_error: ErrorHandler | None = None
        self.gpu: TargetFor | None = None  # set by the GL compositor

    @property
    def renderer(self) -> Renderer | None:
        return self.current.renderer if self.current else None

    def show(self, renderer: Renderer, at_ns: int, transition: Transition | None = None) -> None:
        """Make ``renderer`` the zone's content from ``at_ns`` (its deadline)."""
        _release(self._outgoing, self._spares)
        self._outgoing, self._fade = None, None
        fades = transition is not None and transition.type != "cut" and transition.duration_ms
        if self.current is not None and fades and transition is not None:
            self.current.renderer.stop()
            self._outgoing = self.current
            self._fade = _Fade(transition.type, at_ns, transition.duration_ms * 1_000_000)
        else:
            _release(self.current, self._spares)
        staged, self._staged = self._staged, None
        if staged is not None and staged.renderer is renderer:
            self.current = staged  # started and painted ahead of the deadline
        else:
            if staged is not None:
                _spare(staged, self._spares)
            self.current = self._layer_for(renderer)
            renderer.start(at_ns)
        self._dirty = True

    def stage(self, renderer: Renderer, at_ns: int) -> None:
        """Start and paint ``renderer`` before its deadline, so the switch itself is a blit.

        Only for renderers whose ``prerender`` attribute is True: starting them early has no
        visible effect (a still picture, text, a clock), unlike a video, which would play.
        """
        if not getattr(renderer, "prerender", False) or self._staged is not None:
            return
        layer = self._layer_for(renderer)
        renderer.start(at_ns)
        try:
            if self._paint_layer(layer, at_ns):
                self._flatten(layer)
        except ZoneError:
            _spare(layer, self._spares)  # show() starts it again and reports the error
            return
        self._staged = layer

    def unstage(self, renderer: Renderer) -> None:
        """Forget a staged renderer that will not be shown (its owner releases it)."""
        if self._staged is not None and self._staged.renderer is renderer:
            _spare(self._staged, self._spares)
            self._staged = None

    @property
    def staged(self) -> Layer | None:
        return self._staged

    def _layer_for(self, renderer: Renderer) -> Layer:
        if self.gpu is not None and hasattr(renderer, "draw_gl"):
            return Layer(renderer, _NO_SURFACE, borrowed=True)  # draws into a framebuffer
        # A renderer showing a finished opaque picture lends it (``surface``): composed from
        # it directly, no copy into a surface of the zone's own.
        own = getattr(renderer, "surface", None)
        if isinstance(own, pygame.Surface) and own.get_size() == self.rect.size:
            return Layer(renderer, own, borrowed=True)
        return Layer(renderer, self._surface_for(renderer))

    def _surface_for(self, renderer: Renderer) -> pygame.Surface:
        # A renderer that promises to cover every pixel (``opaque``) gets a surface without
        # per-pixel alpha: composing it is a copy instead of a blend, several times cheaper.
        alpha = not getattr(renderer, "opaque", False)
        for index, spare in enumerate(self._spares):
            if bool(spare.get_flags() & pygame.SRCALPHA) == alpha:
                return self._spares.pop(index)
        return pygame.Surface(self.rect.size, pygame.SRCALPHA if alpha else 0)

    def warm(self) -> None:
        """Touch the memory of what this zone shows next (its staged item, else its current
        one) ahead of a deadline: see ``zones._memory``."""
        layer = self._staged or self.current
        if layer is not None:
            touch_pages(layer.flat or layer.surface)

    def touch(self) -> None:
        """Count the zone as changed on the next frame (re-blit the same pixels)."""
        self._dirty = True

    def blank(self) -> None:
        """Show nothing from the next frame: what lies beneath (the layout background) shows
        through. For a zone whose playlist has no item it may play now."""
        _release(self._outgoing, self._spares)
        _release(self.current, self._spares)
        self._outgoing, self.current, self._fade = None, None, None
        self._dirty = True

    def clear(self) -> None:
        """Release everything; the pixels already on the canvas stay."""
        _release(self._outgoing)
        _release(self.current)
        self._outgoing, self.current, self._fade = None, None, None
        self._staged = None  # a staged renderer belongs to the sequencer, which releases it
        self._spares.clear()

    def _draw_layer(self, layer: Layer, now_ns: int) -> pygame.Rect | None:
        """Let the layer's renderer paint; the zone-local rectangle that changed, if any."""
        try:
            changed = self._paint_layer(layer, now_ns)
        except ZoneError as exc:
            if self.on_error is None:
                raise
            self.on_error(self, layer.renderer, exc)
            return None
        if not changed:
            return None
        whole = pygame.Rect((0, 0), self.rect.size)
        damage = getattr(layer.renderer, "damage", None)
        area = whole if damage is None else whole.clip(pygame.Rect(damage))
        layer._changed(area)
        self._flatten(layer, area)
        return area

    def _paint_layer(self, layer: Layer, now_ns: int) -> bool:
        """The renderer's ``draw`` into the layer's surface, or on the GL path its ``draw_gl``
        into the layer's framebuffer."""
        if self.gpu is not None and hasattr(layer.renderer, "draw_gl"):
            if not layer.draws_gl:  # shown before its scene reached the GL compositor
                layer.surface, layer.borrowed, layer.flat = _NO_SURFACE, True, None
            layer.target = layer.target or self.gpu(layer, self.rect.size)
            return bool(layer.renderer.draw_gl(layer.target, now_ns))
        return layer.renderer.draw(layer.surface, now_ns)

    def _flatten(self, layer: Layer, area: pygame.Rect | None = None) -> None:
        """Blend a transparent layer over the layout background once, when it changes, so
        composing it is a copy (and, staged, the blend happens before the deadline). Only
        ``area`` (zone-local, default everything) changed."""
        if self.backdrop is None or not layer.surface.get_flags() & pygame.SRCALPHA:
            layer.flat = None
            return
        if layer.flat is None:
            layer.flat = pygame.Surface(self.rect.size)
            area = None
        if area is None:
            area = layer.flat.get_rect()
        layer.flat.fill(self.backdrop, area)
        layer.flat.blit(layer.surface, area.topleft, area)

    def update(self, now_ns: int) -> pygame.Rect | None:
        """Let the renderers paint; the canvas rectangle whose pixels changed, if any."""
        whole = self._dirty
        self._dirty = False
        if self._outgoing is not None and self._fade is not None:
            self._draw_layer(self._outgoing, now_ns)
            whole = True  # the blend changes every frame of a fade
            if self._fade.progress(now_ns) >= 1.0:
                _release(self._outgoing, self._spares)
                self._outgoing, self._fade = None, None
        area = None if self.current is None else self._draw_layer(self.current, now_ns)
        if whole:
            return self.rect.copy()
        return None if area is None else area.move(self.rect.topleft)

    def layers(self, now_ns: int) -> list[tuple[Layer, float]]:
        """What to paint, bottom first, each with its opacity (0 to 1): the current item, or
        during a fade the outgoing one and/or the incoming one. Both compositors paint this.

        ``fade`` dips through what lies beneath (the outgoing item fades out over the first
        half, the incoming one in over the second); ``crossfade`` lays the incoming item over
        the outgoing one at the fade's progress. Opacity is quantised to 1/255 on both paths.
        """
        if self.current is None:
            return []
        if self._outgoing is None or self._fade is None:
            return [(self.current, 1.0)]
        progress = self._fade.progress(now_ns)
        if self._fade.kind == "fade":
            if progress < 0.5:
                return [(self._outgoing, _level(1 - 2 * progress))]
            return [(self.current, _level(2 * progress - 1))]
        return [(self._outgoing, 1.0), (self.current, _level(progress))]

    @property
    def fading(self) -> bool:
        return self._outgoing is not None and self._fade is not None

    def paint(self, canvas: pygame.Surface, clip: pygame.Rect, now_ns: int) -> None:
        """Blit this zone's pixels inside ``clip`` (canvas coordinates)."""
        area = clip.clip(self.rect)
        if area.w <= 0 or area.h <= 0 or self.current is None:
            return
        source = area.move(-self.rect.x, -self.rect.y)
        if not self.fading:
            layer = self.current
            canvas.blit(layer.flat or layer.surface, area.topleft, source)
            return
        for layer, alpha in self.layers(now_ns):
            self._blend(canvas, layer.surface, area, source, alpha)

    def covers(self, rect: pygame.Rect, now_ns: int) -> bool:
        """True when this zone paints every pixel of ``rect`` opaquely (nothing beneath shows).

        During a fade that holds when the layer painted first is opaque and painted in full:
        the outgoing item of a crossfade, or a ``fade``'s layer at either end of its dip.
        """
        if self.current is None or not self.rect.contains(rect):
            return False
        layer = self.current
        if self._fade is not None and self._outgoing is not None:
            progress = self._fade.progress(now_ns)
            if self._fade.kind == "crossfade" or progress == 0.0:
                layer = self._outgoing
            elif progress < 1.0:
                return False  # the dip through the background shows it
            return not layer.surface.get_flags() & pygame.SRCALPHA  # fades blit the surface
        return layer.flat is not None or not layer.surface.get_flags() & pygame.SRCALPHA

    @staticmethod
    def _blend(
        canvas: pygame.Surface,
        surface: pygame.Surface,
        area: pygame.Rect,
        source: pygame.Rect,
        alpha: float,
    ) -> None:
        """Blit ``surface`` at ``alpha`` (0 to 1) over what the canvas holds.

        The surface's own alpha is set for the blit and then cleared: no copy of the zone per
        frame (8 MB for a full-HD zone). Fully transparent is nothing to do, fully opaque a
        plain blit; both are the ends of every fade.
        """
        level = round(255 * alpha)
        if level == 0:
            return
        if level == 255:
            canvas.blit(surface, area.topleft, source)
            return
        previous = surface.get_alpha()  # 255 with per-pixel alpha (None would drop it)
        surface.set_alpha(level)
        try:
            canvas.blit(surface, area.topleft, source)
        finally:
            surface.set_alpha(previous)

    def next_change_ns(self, now_ns: int, frame_ns: int) -> int | None:
        if self._fade is not None:
            return now_ns + frame_ns
        if self.current is None:
            return None
        return self.current.renderer.next_change_ns(now_ns)


def _level(alpha: float) -> float:
    """An opacity quantised to the 256 levels a surface alpha has (both paths use these)."""
    return round(255 * max(0.0, min(1.0, alpha))) / 255
