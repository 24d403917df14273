"""mpv's software render API on a thread of its own, into two alternating pygame Surfaces.

Rendering a frame (mpv converts and scales it with swscale into our memory) costs 1 to 3 ms
at 720p and far more for a 4K clip scaled into a zone: done on the event loop, that is time
every other zone, every switch and every sync task waits. So each output has a render thread:
mpv's update callback (on mpv's thread) wakes it, it renders the newest frame into the *back*
surface, then swaps back and *front* under a lock. The loop only ever reads the front surface,
holding the same lock while it copies it, so it can never see a frame half written; the
render thread waits at most for that copy before a swap. All render-API calls of a context
(``update``, ``render``, ``free``) happen on its thread or after it has stopped, as libmpv
requires (the render API is not thread-safe).

python-mpv 1.0.8 does not know the ``sw_*`` render parameters, so ``_SwTarget`` builds the
parameter array with the ids from mpv's ``render.h``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mpv

from core import ZoneError

if TYPE_CHECKING:
    import pygame

log = logging.getLogger(__name__)

# mpv/render.h parameter ids for the software renderer; python-mpv 1.0.8 does not know them.
SW_SIZE, SW_FORMAT, SW_STRIDE, SW_POINTER = 17, 18, 19, 20
BLOCK_FOR_TARGET_TIME = 12
# Memory order B, G, R, X: the layout of pygame's default 32-bit surface on little-endian hosts.
SW_PIXEL_FORMAT = b"bgr0"
_ROW_ALIGN_PX = 16  # 16 px * 4 bytes: rows on 64-byte boundaries, mpv's fast SIMD path
STOP_TIMEOUT_S = 2.0  # a render call that takes longer is stuck inside libmpv

# Exceptions python-mpv raises for libmpv error codes (see mpv.ErrorCode.EXCEPTION_DICT).
MPV_EXCEPTIONS: tuple[type[BaseException], ...] = (
    MemoryError,
    ValueError,
    AttributeError,
    TypeError,
    RuntimeError,
    SystemError,
    NotImplementedError,
    OSError,
)


@dataclass(frozen=True)
class FrameInfo:
    """What the front surface holds: a frame of load ``load``, the ``seq``-th since the file
    was opened (1 is its first), rendered at ``rendered_ns`` (``time.monotonic_ns()``)."""

    load: int
    seq: int
    rendered_ns: int


def aligned_surface(size: tuple[int, int]) -> tuple[pygame.Surface, pygame.Surface]:
    """A frame surface whose rows start on 64-byte boundaries, and its visible part."""
    import pygame

    width, height = size
    padded = -(-width // _ROW_ALIGN_PX) * _ROW_ALIGN_PX
    backing = pygame.Surface((padded, height), 0, 32)
    if backing.get_masks()[:3] != (0xFF0000, 0x00FF00, 0x0000FF):
        raise ZoneError(f"unexpected 32-bit surface layout {backing.get_masks()}")
    backing.fill((0, 0, 0))
    return backing, backing.subsurface((0, 0, width, height))


class _SwTarget:
    """The render parameter array for one target surface (kept alive with its buffers)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.backing, self.visible = aligned_surface(size)
        self._size = (ctypes.c_int * 2)(*size)
        self._format = ctypes.c_char_p(SW_PIXEL_FORMAT)
        self._stride = ctypes.c_size_t(self.backing.get_pitch())
        self._block = ctypes.c_int(0)  # the compositor paces frames, mpv must not wait
        entries = [
            (SW_SIZE, ctypes.cast(self._size, ctypes.c_void_p)),
            (SW_FORMAT, ctypes.cast(self._format, ctypes.c_void_p)),
            (SW_STRIDE, ctypes.cast(ctypes.pointer(self._stride), ctypes.c_void_p)),
            # Documented in pygame-ce's Surface reference despite its name; a get_view()
            # BufferProxy, the other way to the address, locks the surface against blits.
            (SW_POINTER, ctypes.c_void_p(self.backing._pixels_address)),
            (BLOCK_FOR_TARGET_TIME, ctypes.cast(ctypes.pointer(self._block), ctypes.c_void_p)),
        ]
        self.params = (mpv.MpvRenderParam * (len(entries) + 1))()
        for slot, (type_id, data) in zip(self.params, entries, strict=False):
            slot.type_id = type_id
            slot.data = data


class SoftwareRenderThread:
    """Renders an mpv render context's frames on its own thread into front/back surfaces.

    ``load()`` names the file a frame belongs to (read on the render thread right before
    rendering); ``on_frame(info)`` is called on the render thread after each swap, and
    ``on_failure(reason)`` once if rendering fails (the handle is then unusable).
    """

    def __init__(
        self,
        context: Any,
        *,
        load: Callable[[], int],
        on_frame: Callable[[FrameInfo], None],
        on_failure: Callable[[str], None],
    ) -> None:
        self._context = context
        self._load = load
        self._on_frame = on_frame
        self._on_failure = on_failure
        self._wake = threading.Condition()
        self._dirty = False  # mpv has something new (update callback)
        self._forced = False  # render even without a new frame (the paused first frame)
        self._stopping = False
        self._render_lock = threading.Lock()  # held while rendering: resizing waits for it
        self._swap_lock = threading.Lock()  # held while swapping, and while the loop reads
        self._front: _SwTarget | None = None
        self._back: _SwTarget | None = None
        self._latest: FrameInfo | None = None
        self._seq = 0
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="mpv-render", daemon=True)
        context.update_cb = self.wake
        self._thread.start()

    # any thread --------------------------------------------------------------------------
    def wake(self) -> None:
        """mpv's update callback: something changed (runs on one of mpv's threads)."""
        with self._wake:
            self._dirty = True
            self._wake.notify()

    def request_frame(self) -> None:
        """Render the current frame again, new or not (never waits)."""
        with self._wake:
            self._forced = True
            self._wake.notify()

    @property
    def latest(self) -> FrameInfo | None:
        """The frame in the front surface (None: none since the last ``reset``)."""
        return self._latest

    @contextlib.contextmanager
    def front(self) -> Iterator[pygame.Surface | None]:
        """The front surface, held: no swap happens until the block ends. Keep it short."""
        with self._swap_lock:
            yield None if self._latest is None or self._front is None else self._front.visible

    def set_size(self, size: tuple[int, int]) -> None:
        """Render at ``size`` from now on. Waits for a render in progress: not on the loop."""
        with self._render_lock:
            current = self._front
            if current is not None and current.visible.get_size() == size:
                return
            front, back = _SwTarget(size), _SwTarget(size)
            with self._swap_lock:
                self._front, self._back = front, back
                self._latest = None

    def reset(self) -> None:
        """A new file (or a rewind): the next frame rendered is its first."""
        with self._swap_lock:
            self._seq = 0
            self._latest = None

    def stop(self) -> bool:
        """End the thread; False when it is stuck in a render call (the context must then be
        abandoned, never freed). Idempotent."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(STOP_TIMEOUT_S)
        return not self._thread.is_alive()

    # the render thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._dirty or self._forced or self._stopping):
                    self._wake.wait()
                if self._stopping:
                    return
                forced, self._forced, self._dirty = self._forced, False, False
            try:
                info = self._render(forced)
            except MPV_EXCEPTIONS as exc:  # ShutdownError included (a SystemError)
                if not self._failed:
                    self._failed = True
                    self._on_failure(f"rendering failed: {exc}")
                return
            if info is not None:
                self._on_frame(info)

    def _render(self, forced: bool) -> FrameInfo | None:
        with self._render_lock:
            back = self._back
            # mpv must be asked (update) after each callback, or it waits for the client.
            fresh = bool(self._context.update())
            if back is None or not (fresh or forced):
                return None
            load = self._load()
            # render() builds its parameters from python-mpv's table, which lacks the sw_*
            # ids: the raw binding takes our array (tests/test_dependency_privates.py).
            mpv._mpv_render_context_render(self._context.handle, back.params)
            with self._swap_lock:
                self._front, self._back = back, self._front
                self._seq += 1
                self._latest = info = FrameInfo(load, self._seq, time.monotonic_ns())
        return info
