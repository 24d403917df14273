"""The compositor: zones in z-order on a canvas, only changed regions redrawn.

A ``Scene`` is one presentation (a layout, or an idle screen) with its own canvas; each
``ZoneView`` shows one renderer at a time, plus the outgoing one during a fade. The
``Compositor`` presents the active scene through a ``Display``. A new scene replaces the active
one only once its first frame has been composed in full, and a released scene keeps its canvas,
so neither a switch of item nor of layout nor a state change ever shows black.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

import pygame

from core import ZoneError
from sync import Transition
from zones._api import Renderer
from zones._display import Display
from zones._fonts import font
from zones._memory import touch_pages
from zones._shaping import render_text

log = logging.getLogger(__name__)

ErrorHandler = Callable[["ZoneView", Renderer, ZoneError], None]


@dataclass
class _Layer:
    renderer: Renderer
    surface: pygame.Surface
    flat: pygame.Surface | None = None  # surface over the backdrop, when nothing is beneath
    borrowed: bool = False  # the renderer's own ``surface``: never reused for another item


@dataclass(frozen=True)
class _Fade:
    kind: str  # "fade" (out to the background, then in) or "crossfade"
    start_ns: int
    duration_ns: int

    def progress(self, now_ns: int) -> float:
        return min(1.0, max(0.0, (now_ns - self.start_ns) / max(1, self.duration_ns)))


def _release(layer: _Layer | None, spares: list[pygame.Surface] | None = None) -> None:
    if layer is not None:
        layer.renderer.stop()
        layer.renderer.release()
        _spare(layer, spares)


def _spare(layer: _Layer, spares: list[pygame.Surface] | None) -> None:
    """Keep a released layer's surface for the next item: no 8 MB allocation per switch."""
    if spares is not None and len(spares) < 2 and not layer.borrowed:
        spares.append(layer.surface)


class ZoneView:
    """One zone's rectangle on the canvas and what it shows."""

    def __init__(self, zone_id: str, rect: pygame.Rect, z: int = 0) -> None:
        self.zone_id = zone_id
        self.rect = rect
        self.z = z
        self.current: _Layer | None = None
        self._outgoing: _Layer | None = None
        self._fade: _Fade | None = None
        self._dirty = False
        self._spares: list[pygame.Surface] = []
        self._staged: _Layer | None = None
        # The layout background when no zone lies beneath this one (set by the scene).
        self.backdrop: pygame.Color | None = None
        self.on_error: ErrorHandler | None = None

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
            if renderer.draw(layer.surface, at_ns):
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

    def _layer_for(self, renderer: Renderer) -> _Layer:
        # A renderer showing a finished opaque picture lends it (``surface``): composed from
        # it directly, no copy into a surface of the zone's own.
        own = getattr(renderer, "surface", None)
        if isinstance(own, pygame.Surface) and own.get_size() == self.rect.size:
            return _Layer(renderer, own, borrowed=True)
        return _Layer(renderer, self._surface_for(renderer))

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

    def clear(self) -> None:
        """Release everything; the pixels already on the canvas stay."""
        _release(self._outgoing)
        _release(self.current)
        self._outgoing, self.current, self._fade = None, None, None
        self._staged = None  # a staged renderer belongs to the sequencer, which releases it
        self._spares.clear()

    def _draw_layer(self, layer: _Layer, now_ns: int) -> pygame.Rect | None:
        """Let the layer's renderer paint; the zone-local rectangle that changed, if any."""
        try:
            changed = layer.renderer.draw(layer.surface, now_ns)
        except ZoneError as exc:
            if self.on_error is None:
                raise
            self.on_error(self, layer.renderer, exc)
            return None
        if not changed:
            return None
        whole = layer.surface.get_rect()
        damage = getattr(layer.renderer, "damage", None)
        area = whole if damage is None else whole.clip(pygame.Rect(damage))
        self._flatten(layer, area)
        return area

    def _flatten(self, layer: _Layer, area: pygame.Rect | None = None) -> None:
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

    def paint(self, canvas: pygame.Surface, clip: pygame.Rect, now_ns: int) -> None:
        """Blit this zone's pixels inside ``clip`` (canvas coordinates)."""
        area = clip.clip(self.rect)
        if area.w <= 0 or area.h <= 0 or self.current is None:
            return
        source = area.move(-self.rect.x, -self.rect.y)
        if self._outgoing is None or self._fade is None:
            layer = self.current
            canvas.blit(layer.flat or layer.surface, area.topleft, source)
            return
        progress = self._fade.progress(now_ns)
        if self._fade.kind == "fade":
            layer, alpha = (
                (self._outgoing, 1 - 2 * progress)
                if progress < 0.5
                else (self.current, 2 * progress - 1)
            )
            self._blend(canvas, layer.surface, area, source, alpha)
            return
        canvas.blit(self._outgoing.surface, area.topleft, source)
        self._blend(canvas, self.current.surface, area, source, progress)

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
        level = round(255 * max(0.0, min(1.0, alpha)))
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


class Scene:
    """One presentation's canvas and zones (a layout, or an idle screen)."""

    def __init__(self, name: str, size: tuple[int, int], background: str = "#000000") -> None:
        self.name = name
        self.canvas = pygame.Surface(size)
        self.background = pygame.Color(background)
        self.zones: list[ZoneView] = []
        self._full = True

    def add_zone(self, view: ZoneView) -> ZoneView:
        self.zones.append(view)
        self.zones.sort(key=lambda v: v.z)  # stable: equal z keeps manifest order
        for index, zone in enumerate(self.zones):
            beneath = any(zone.rect.colliderect(other.rect) for other in self.zones[:index])
            zone.backdrop = None if beneath else self.background
        return view

    def zone(self, zone_id: str) -> ZoneView:
        return next(v for v in self.zones if v.zone_id == zone_id)

    def invalidate(self) -> None:
        self._full = True

    def compose(self, now_ns: int, overlay: Overlay | None = None) -> list[pygame.Rect]:
        """Redraw what changed; the rectangles of the canvas that now differ."""
        dirty = [rect for view in self.zones if (rect := view.update(now_ns)) is not None]
        if overlay is not None and overlay.changed():
            dirty.append(overlay.rect(self.canvas.get_size()))
        if self._full:
            dirty, self._full = [self.canvas.get_rect()], False
        dirty = _merge(dirty)
        for rect in dirty:
            # Start at the highest zone that hides everything beneath it in this rectangle.
            first = next(
                (
                    i
                    for i in range(len(self.zones) - 1, -1, -1)
                    if self.zones[i].covers(rect, now_ns)
                ),
                None,
            )
            if first is None:
                self.canvas.fill(self.background, rect)
            for view in self.zones[first or 0 :]:
                view.paint(self.canvas, rect, now_ns)
            if overlay is not None and overlay.visible:
                overlay.paint(self.canvas, rect)
        return dirty

    def warm(self, zone_ids: Collection[str]) -> list[pygame.Rect]:
        """Touch the memory the next compose of these zones copies; their canvas rectangles."""
        rects = []
        for view in self.zones:
            if view.zone_id in zone_ids:
                view.warm()
                touch_pages(self.canvas, view.rect)
                rects.append(view.rect)
        return rects

    def next_change_ns(self, now_ns: int, frame_ns: int) -> int | None:
        times = [t for v in self.zones if (t := v.next_change_ns(now_ns, frame_ns)) is not None]
        return min(times) if times else None

    def release(self) -> None:
        for view in self.zones:
            view.clear()


def _merge(rects: list[pygame.Rect]) -> list[pygame.Rect]:
    """Union overlapping rectangles so no pixel is composed twice in one frame."""
    merged: list[pygame.Rect] = []
    for rect in rects:
        rect = rect.copy()
        changed = True
        while changed:
            changed = False
            for other in merged:
                if other.colliderect(rect):
                    merged.remove(other)
                    rect.union_ip(other)
                    changed = True
                    break
        merged.append(rect)
    return merged


class Overlay:
    """A banner over everything (the ``identify`` command), until a media-clock instant."""

    def __init__(self, text: str, until_ns: int) -> None:
        self.text = text
        self.until_ns = until_ns
        self.visible = False
        self._was_visible = False

    def tick(self, now_ns: int) -> None:
        self.visible = now_ns < self.until_ns

    def changed(self) -> bool:
        changed = self.visible != self._was_visible
        self._was_visible = self.visible
        return changed

    def rect(self, size: tuple[int, int]) -> pygame.Rect:
        height = max(40, size[1] // 6)
        return pygame.Rect(0, size[1] - height, size[0], height)

    def paint(self, canvas: pygame.Surface, clip: pygame.Rect) -> None:
        rect = self.rect(canvas.get_size())
        area = clip.clip(rect)
        if area.w <= 0 or area.h <= 0:
            return
        banner = pygame.Surface(rect.size)
        banner.fill((255, 196, 0))
        face = font(max(12, int(rect.h * 0.55)), "bold")
        label = render_text(self.text, face, pygame.Color(17, 17, 17))  # any direction
        if label.get_width() > rect.w * 0.95:
            label = pygame.transform.smoothscale_by(label, rect.w * 0.95 / label.get_width())
        banner.blit(label, ((rect.w - label.get_width()) // 2, (rect.h - label.get_height()) // 2))
        canvas.blit(banner, area.topleft, area.move(-rect.x, -rect.y))


class Compositor:
    """Presents the active scene; swaps scenes only on a fully composed first frame."""

    def __init__(self, display: Display, *, frame_ns: int = 16_666_667) -> None:
        self.display = display
        self.frame_ns = frame_ns
        self.active: Scene | None = None
        self._pending: Scene | None = None
        self._overlay: Overlay | None = None
        self._last_canvas: pygame.Surface | None = None

    @property
    def pending(self) -> Scene | None:
        return self._pending

    def present(self, scene: Scene) -> None:
        """Show ``scene`` from the next composed frame (a scene still pending is dropped)."""
        if self._pending is not None and self._pending is not scene:
            self._pending.release()
        self._pending = scene

    def release_active(self) -> None:
        """Free the active scene's renderers; its last frame stays on screen."""
        if self.active is not None:
            self.active.release()

    def identify(self, text: str, until_ns: int) -> None:
        self._overlay = Overlay(text, until_ns)

    def compose(self, now_ns: int) -> bool:
        """Compose and present one frame if anything changed; True when a frame was presented."""
        replaced = None
        if self._pending is not None:
            replaced, self.active, self._pending = self.active, self._pending, None
            self.active.invalidate()
        scene = self.active
        if scene is None:
            return False
        overlay = self._overlay
        if overlay is not None:
            overlay.tick(now_ns)
        rects = scene.compose(now_ns, overlay)
        if overlay is not None and not overlay.visible:
            self._overlay = None
        if replaced is not None and replaced is not scene:
            replaced.release()
        if not rects:
            return False
        self.display.present(scene.canvas, rects)
        self._last_canvas = scene.canvas
        return True

    def warm(self, zone_ids: Collection[str]) -> None:
        """Before a deadline at which ``zone_ids`` switch item: touch the memory the switch's
        frame will copy (layer, canvas, screen), so the copy itself runs warm."""
        scene = self.active
        if scene is None or self._pending is not None:
            return
        rects = scene.warm(zone_ids)
        warm_display = getattr(self.display, "warm", None)
        if rects and warm_display is not None:
            warm_display(scene.canvas, rects)

    def next_change_ns(self, now_ns: int) -> int | None:
        if self._pending is not None:
            return now_ns
        times = []
        if self.active is not None and (t := self.active.next_change_ns(now_ns, self.frame_ns)):
            times.append(t)
        if self._overlay is not None:
            times.append(self._overlay.until_ns if self._overlay.visible else now_ns)
        return min(times) if times else None

    def frame(self) -> pygame.Surface | None:
        """A copy of the last presented frame."""
        return None if self._last_canvas is None else self._last_canvas.copy()

    async def screenshot(self) -> bytes:
        """PNG of the composed frame (the canvas, in layout orientation)."""
        frame = self.frame()
        if frame is None:
            raise ZoneError("nothing has been presented yet")
        return await asyncio.to_thread(_png, frame)


def _png(surface: pygame.Surface) -> bytes:
    buffer = io.BytesIO()
    pygame.image.save(surface, buffer, "frame.png")
    return buffer.getvalue()
