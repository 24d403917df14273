"""The compositor: zones in z-order on a canvas, only changed regions redrawn.

A ``Scene`` is one presentation (a layout, or an idle screen) with its own canvas; each
``ZoneView`` shows one renderer at a time, plus the outgoing one during a fade. The
``Compositor`` presents the active scene through a ``Display``. A new scene replaces the active
one only once its first frame has been composed in full, and a released scene keeps its canvas,
so neither a switch of item nor of layout nor a state change ever shows black.

This compositor blends in software into the canvas; ``zones._gl_compositor.GLCompositor``
(the GL path) keeps the same scenes and zones and draws them on the GPU instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

import pygame

from core import ZoneError
from zones._display import Display
from zones._fonts import font
from zones._memory import touch_pages
from zones._png import png_bytes
from zones._shaping import render_text
from zones._zoneview import TargetFor, ZoneView

if TYPE_CHECKING:
    from zones._gl import GLContext

log = logging.getLogger(__name__)
FrameListener = Callable[[pygame.Surface, Sequence[pygame.Rect]], None]


class Scene:
    """One presentation's canvas and zones (a layout, or an idle screen)."""

    def __init__(self, name: str, size: tuple[int, int], background: str = "#000000") -> None:
        self.name = name
        self.canvas = pygame.Surface(size)
        self.background = pygame.Color(background)
        self.zones: list[ZoneView] = []
        self._full = True
        self._gpu: TargetFor | None = None

    def add_zone(self, view: ZoneView) -> ZoneView:
        self.zones.append(view)
        self.zones.sort(key=lambda v: v.z)  # stable: equal z keeps manifest order
        for index, zone in enumerate(self.zones):
            beneath = any(zone.rect.colliderect(other.rect) for other in self.zones[:index])
            zone.backdrop = None if beneath or self._gpu is not None else self.background
            zone.gpu = self._gpu
        return view

    def use_gpu(self, target_for: TargetFor) -> None:
        """Composed by the GL compositor: no blending in software, and ``draw_gl`` renderers
        draw into framebuffers from ``target_for``."""
        self._gpu = target_for
        for zone in self.zones:
            zone.backdrop = None
            zone.gpu = target_for

    def zone(self, zone_id: str) -> ZoneView:
        return next(v for v in self.zones if v.zone_id == zone_id)

    def invalidate(self) -> None:
        self._full = True

    def take_invalidated(self) -> bool:
        """True once after ``invalidate``: the next frame draws everything."""
        full, self._full = self._full, False
        return full

    def compose(self, now_ns: int, overlay: Overlay | None = None) -> list[pygame.Rect]:
        """Redraw what changed; the rectangles of the canvas that now differ."""
        dirty = [rect for view in self.zones if (rect := view.update(now_ns)) is not None]
        if overlay is not None and overlay.changed():
            dirty.append(overlay.rect(self.canvas.get_size()))
        if self.take_invalidated():
            dirty = [self.canvas.get_rect()]
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
        canvas.blit(self.banner(rect.size), area.topleft, area.move(-rect.x, -rect.y))

    def banner(self, size: tuple[int, int]) -> pygame.Surface:
        banner = pygame.Surface(size)
        banner.fill((255, 196, 0))
        w, h = size
        face = font(max(12, int(h * 0.55)), "bold")
        label = render_text(self.text, face, pygame.Color(17, 17, 17))  # any direction
        if label.get_width() > w * 0.95:
            label = pygame.transform.smoothscale_by(label, w * 0.95 / label.get_width())
        banner.blit(label, ((w - label.get_width()) // 2, (h - label.get_height()) // 2))
        return banner


class Compositor:
    """Presents the active scene; swaps scenes only on a fully composed first frame.

    This one composes in software; ``GLCompositor`` overrides how a frame is drawn
    (``_compose_scene``), what a warm-up does and how a frame is read back.
    """

    # The OpenGL context renderers may use (``RenderContext.gl``); None in software.
    gl: GLContext | None = None

    def __init__(self, display: Display, *, frame_ns: int = 16_666_667) -> None:
        self.display = display
        self.frame_ns = frame_ns
        self.active: Scene | None = None
        self._pending: Scene | None = None
        self._overlay: Overlay | None = None
        self._last_canvas: pygame.Surface | None = None
        self._frame_listeners: list[FrameListener] = []
        self._changed: list[pygame.Rect] = []  # canvas rectangles of the last presented frame

    def add_frame_listener(self, callback: FrameListener) -> None:
        """``callback(frame, rects)`` right after every presented frame, with the frame in
        canvas orientation and the canvas rectangles that changed (the simulator's frame
        watch). The surface may be the live canvas: read it before the next frame, copy it to
        keep it. On the GL path the frame is read back from the GPU (glReadPixels), inside
        ``compose``: on a real clock that time counts into the frame's presented instant."""
        self._frame_listeners.append(callback)

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
        presented = self._compose_scene(scene, now_ns, overlay)  # sets _changed
        if overlay is not None and not overlay.visible:
            self._overlay = None
        if replaced is not None and replaced is not scene:
            replaced.release()
        if presented and self._frame_listeners:
            frame = self._listened_frame(scene)
            for callback in self._frame_listeners:
                try:
                    callback(frame, self._changed)
                except Exception:
                    log.exception("frame listener failed")  # never stops playback
        return presented

    def _compose_scene(self, scene: Scene, now_ns: int, overlay: Overlay | None) -> bool:
        """Draw what changed and present it; False when nothing changed."""
        rects = scene.compose(now_ns, overlay)
        if not rects:
            return False
        self._changed = rects
        self.display.present(scene.canvas, rects)
        self._last_canvas = scene.canvas
        return True

    def _listened_frame(self, scene: Scene) -> pygame.Surface:
        return scene.canvas

    def warm(self, zone_ids: Collection[str]) -> None:
        """Before a deadline at which ``zone_ids`` switch item: touch the memory the switch's
        frame will copy (layer, canvas, screen), so the copy itself runs warm."""
        scene = self.active
        if scene is None or self._pending is not None:
            return
        rects = scene.warm(zone_ids)
        if rects:
            self.display.warm(scene.canvas, rects)

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
        return await asyncio.to_thread(png_bytes, frame)
