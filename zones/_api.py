"""The renderer interface every zone type implements, and the registry the compositor uses.

One renderer instance plays one occurrence of one playlist item in one zone. The compositor
(``zones._compositor``; each zone in ``zones._zoneview``) owns a zone-sized ``pygame.Surface``
per renderer and calls, all on the event-loop thread:

1. ``await prepare(item, size)`` up to ``preload_ms`` before the item is due. Heavy work (decoding,
   scaling, loading a video paused) goes off the loop with ``asyncio.to_thread``. Bad content
   raises ``ZoneError``: the zone reports an ``error`` event and moves on to the next item.
2. ``start(at_ns)`` when the item becomes visible; ``at_ns`` is its deadline on the media clock
   (the item's own time zero, e.g. where a ticker's scroll offset is measured from).
3. ``draw(surface, now_ns)`` whenever the compositor composes a frame. The surface is the
   renderer's own, zone-sized and kept between calls: paint only what changed and return True,
   or return False when the pixels are unchanged (then nothing is blitted or flipped). The first
   call after ``start`` must paint the whole surface and return True.
4. ``next_change_ns(now_ns)``: the media time at which ``draw`` would next change pixels
   (a clock: the next second; a ticker: the next frame; an image: None). The frame loop sleeps
   until the earliest of these and the playlist deadlines. A renderer whose pixels change for
   outside reasons (a decoded video frame) calls ``RenderContext.wake()`` instead.
5. ``ended``: True once an item without a fixed duration has finished (a video at end of file);
   the zone then switches on the next frame. Items with ``duration_ms`` are switched by deadline.
6. ``stop()`` when the item leaves the screen (it may still be drawn during an outgoing fade),
   ``release()`` once it will never be drawn again: free decoders, handles, surfaces. Both are
   idempotent; ``release`` may come without ``stop`` (e.g. a prepared item that never played).

An item without a fixed duration may expose ``expected_end_ns`` (media time, or None while
unknown), e.g. a video once its length is known: the next item is then prepared ``preload_ms``
before it and switched in on the first frame after ``ended`` turns True (gapless playback).

A renderer whose ``prerender`` attribute is True may be started and drawn before it becomes
visible (``start(due)`` then ``draw(surface, due)`` up to ``preload_ms`` ahead): the switch is
then a copy. Only for renderers where starting early has no visible or audible effect
(pictures, text, clocks), never for a video.

A renderer may have an ``opaque`` attribute, True when ``draw`` always covers every pixel of
the zone with opaque colour (a photo with ``fit: cover``, a video): its surface then has no
per-pixel alpha and composing it is a plain copy. Without it the surface is RGBA and
transparent pixels show the zones below and the layout background.

A renderer may lend the compositor a finished picture instead of drawing into a surface: a
``surface`` attribute holding a zone-sized ``pygame.Surface`` (read when the item is staged or
shown) that stays unchanged while the item is on screen, e.g. a decoded photo that fills the
zone. The compositor then composes straight from it (no copy per switch), never draws into it
and never reuses it for another item; ``draw`` is still called, with that very surface, and
must not paint into it (return True the first time, as usual).

A renderer may have a ``damage`` attribute: after a ``draw`` that returned True, the
zone-local rectangle ``(x, y, w, h)`` outside which nothing changed, or None for the whole
zone (always None after the first draw). A clock that repaints a line of digits in a tall zone
thus costs the compositor and the display a copy of that line, not of the zone.

``draw`` may raise ``ZoneError`` for a failure found while playing (a decoder crash): the zone
reports it and moves on. Renderers never sleep, never block the loop and never touch the display.

**Drawing with OpenGL** (the hook GL video uses). On the GL path (``display.renderer``) the
player passes the compositor's context as ``RenderContext.gl`` (None in software), so
``prepare`` can set up GL resources, e.g. ``MpvRenderContext(mpv, "opengl",
opengl_init_params={"get_proc_address": context.gl.get_proc_address})`` (the context is
current on the event-loop thread, the only thread that may use it). A renderer that has a
``draw_gl(target: GLTarget, now_ns) -> bool`` method then never gets ``draw`` while its scene
is composed on the GPU: the compositor gives each of its layers (current, outgoing in a fade)
a framebuffer the size of the zone (``target.framebuffer``, its colour texture
``target.texture``) and calls ``draw_gl`` where it would call ``draw``, with the same contract
(True when the pixels changed; the first call after ``start`` draws everything). Row 0 of the
framebuffer (GL's y = 0) is the top of the zone, as in a surface: mpv renders that way with
``flip_y`` left at 0, into ``{"fbo": target.framebuffer, "w": w, "h": h}``. Colour is straight
RGBA; an ``opaque`` renderer's alpha is ignored. The renderer may leave any GL state changed:
the compositor sets all of its own before drawing. A renderer with a ``presented()`` method
is told after every swap that showed a frame it drew with ``draw_gl`` (mpv:
``report_swap()``). In software the same renderer is drawn with ``draw`` into a surface.

Renderer types register a factory by item type, so ``zones._video`` adds ``"video"`` without the
compositor importing mpv::

    register_renderer("video", VideoRenderer)   # VideoRenderer(context) -> Renderer

Modules named in ``LAZY_RENDERERS`` are imported the first time their type is needed (so neither
``import zones`` nor an image-only layout loads libmpv); importing them must register the type.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from core import ZoneError

if TYPE_CHECKING:
    import pygame

    from protocol import Item
    from zones._gl import GLContext

Size = tuple[int, int]


@dataclass(frozen=True)
class GLTarget:
    """A zone-sized framebuffer a ``draw_gl`` renderer draws into (see the module docs)."""

    framebuffer: int  # GL framebuffer object name
    texture: int  # its colour attachment (RGBA8), what the compositor samples
    size: Size


def _no_wake() -> None:
    """Default wake-up hook: the frame loop polls ``next_change_ns`` anyway."""


def _utc_now(now_ns: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CrashGuard(Protocol):
    """Keeps a record of items running in code that can take the whole process down.

    libmpv decodes in the player's own process: a file that makes it abort (an assertion, a
    segfault) kills the player, and a restart would play the same file again, forever. A
    renderer of such an item calls ``enter`` before the risky code first touches the file and
    ``leave`` once it no longer does; the player (``player._quarantine``) records the items in
    between on disk, and after an abnormal exit skips them for a while.
    """

    async def enter(self, zone: str, item: Item) -> object:
        """Record ``item`` as running (on disk before this returns); a token for ``leave``.

        Raises ZoneError (naming zone and item) when the item is quarantined.
        """
        ...

    def leave(self, token: object) -> None:
        """The item no longer runs (never waits)."""
        ...


@dataclass(frozen=True)
class RenderContext:
    """What a renderer may know about the world, passed to its factory.

    ``asset_path(sha256)`` returns the verified file of an asset (raises ``ZoneError`` when it is
    not available). ``wall_time(now_ns)`` maps a media-clock instant to an aware wall-clock time
    (the clock zone). ``timezone`` is the manifest's IANA zone. ``wake()`` asks the frame loop to
    compose a frame soon; it must be called on the event-loop thread (from another thread use
    ``loop.call_soon_threadsafe(context.wake)``). ``virtual_now()`` is given only when media
    time is virtual (the simulator): the media clock's now. A renderer that otherwise times itself
    on real time (video) then times itself on it, so a clip lasts its length in media time.
    ``gl`` is the compositor's OpenGL context on the GL path (None in software): see "Drawing
    with OpenGL" in the module docs.

    ``crop`` is the zone's tile of each picture, ``(x, y, w, h)`` in fractions of the picture
    (a video wall's screen): image and video renderers show that part, fitted to the zone.
    ``elapsed(since_ns, at_ns)`` is given when the zone plays in step with other screens (a
    sync group): how much of its item's own time has passed between two media instants
    (group time, which runs slightly off the media clock); a video keeps its position to it.
    """

    zone_id: str
    asset_path: Callable[[str], Path]
    timezone: str = "UTC"
    wall_time: Callable[[int], dt.datetime] = _utc_now
    wake: Callable[[], None] = field(default=_no_wake)
    frame_ns: int = 16_666_667
    virtual_now: Callable[[], int] | None = None
    guard: CrashGuard | None = None
    gl: GLContext | None = None
    crop: tuple[float, float, float, float] | None = None
    elapsed: Callable[[int, int], int] | None = None


@runtime_checkable
class Renderer(Protocol):
    """One occurrence of one playlist item in one zone. See the module docstring for the order."""

    async def prepare(self, item: Item, size: Size) -> None: ...

    def start(self, at_ns: int) -> None: ...

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool: ...

    def next_change_ns(self, now_ns: int) -> int | None: ...

    @property
    def ended(self) -> bool: ...

    def stop(self) -> None: ...

    def release(self) -> None: ...


RendererFactory = Callable[[RenderContext], Renderer]

_factories: dict[str, RendererFactory] = {}
# Item type -> module that registers it when imported (on first use: keeps mpv out of start-up).
LAZY_RENDERERS: dict[str, str] = {"video": "zones._video"}


_lazy_configs: dict[str, object] = {}


def configure_renderer(item_type: str, config: object) -> None:
    """Settings for a lazily loaded renderer type (``[video]`` for ``video``).

    Applied at once when the type's module is already loaded (through its ``configure``), else
    when it loads: the module reads ``renderer_config`` on import. Nothing is imported here.
    """
    _lazy_configs[item_type] = config
    module = sys.modules.get(LAZY_RENDERERS.get(item_type, ""))
    if module is not None:
        module.configure(config)


def renderer_config(item_type: str) -> object | None:
    """The settings last given to ``configure_renderer`` for ``item_type``, if any."""
    return _lazy_configs.get(item_type)


def register_renderer(item_type: str, factory: RendererFactory) -> None:
    """Make ``factory`` build the renderers of ``item_type`` (a later registration wins)."""
    _factories[item_type] = factory


def registered_types() -> list[str]:
    return sorted(_factories)


def load_renderers(item_types: Iterable[str]) -> None:
    """Import the modules of the lazily loaded types among ``item_types`` now.

    Blocks (loading libmpv takes a tenth of a second): the player calls it in a thread before
    it creates a layout's renderers, so ``create_renderer`` never imports on the event loop.
    A module that fails to load is left for ``create_renderer`` to report, item by item.
    """
    for item_type in item_types:
        module = LAZY_RENDERERS.get(item_type)
        if module is not None and item_type not in _factories:
            with contextlib.suppress(ImportError, OSError):
                importlib.import_module(module)


def create_renderer(item_type: str, context: RenderContext) -> Renderer:
    """A new renderer for ``item_type``; ZoneError when no renderer handles that type."""
    factory = _factories.get(item_type)
    if factory is None and item_type in LAZY_RENDERERS:
        try:
            importlib.import_module(LAZY_RENDERERS[item_type])
        except (ImportError, OSError) as exc:
            raise ZoneError(
                f"{item_type} playback is unavailable: {exc}", zone=context.zone_id
            ) from exc
        factory = _factories.get(item_type)
    if factory is None:
        known = ", ".join(registered_types()) or "none"
        raise ZoneError(
            f"no renderer for item type {item_type!r} (registered: {known})",
            zone=context.zone_id,
        )
    return factory(context)
