"""mpv's OpenGL render API: video drawn by the GPU into the GL compositor's framebuffers.

On the GL path (``display.renderer``) a video zone is not copied through the CPU: mpv decodes
(in hardware where ``video.hwdec`` allows), and its OpenGL renderer converts, scales and draws
each frame into the framebuffer the compositor gives the zone's layer (``GLTarget``), which
the compositor then samples like any other texture.

mpv's OpenGL render API must be called on the thread where the GL context is current: the
event loop's (pygame's context lives on the main thread). So ``GLMpvOutput`` splits its work:

- creating the mpv handle (``__init__``), loading, rewinding, unloading and terminating may wait
  for mpv's core: they run off the loop, like the software path's, with the same timeouts;
- creating the render context (``attach``), ``update``, ``render``, ``report_swap`` and
  ``free`` run on the loop and never wait for the core: rendering is bounded GL work
  (``block_for_target_time`` 0), and the render context is freed only once mpv's video output
  is gone (else ``free`` would wait for the core);
- decoding never waits for the loop: mpv's direct rendering (decoder buffers mapped by the
  render thread) is off (``vd-lavc-dr=no``).

Pacing: mpv's update callback (on one of mpv's threads) schedules ``_serve`` on the loop, which
asks mpv whether a new frame is due (``update``). A frame due while the renderer is on screen
is announced (FRAME) and left for the compositor: the renderer wakes the frame loop, which
draws it into the layer's framebuffer (``show``), presents, and reports the swap to mpv
(``presented``), so mpv paces the clip by its timestamps and knows when frames reach the
screen. A frame nobody is going to draw (the item is not playing, media time is virtual, the
handle is idle or unloading) is released at once with ``skip_rendering``, so mpv never waits for
us (it would wait up to 200 ms per frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import mpv

from core import ZoneError
from zones._api import GLTarget
from zones._mpv import MpvHandle, VideoEventKind, VideoOutput, VideoOutputLost, map_mpv_errors
from zones._mpv_render import MPV_EXCEPTIONS, FrameInfo

if TYPE_CHECKING:
    import pygame

    from zones._gl import GLContext

log = logging.getLogger(__name__)

# mpv's GPU renderer as cheap as the software path's scaler (``sws-fast``), and the same on
# every mpv version (newer ones default to costlier scalers, dithering and linear-light
# scaling): one pass, bilinear, which a Pi's V3D draws in well under a millisecond at 1080p.
GL_OPTIONS: dict[str, str] = {
    "vd-lavc-dr": "no",
    "scale": "bilinear",
    "dscale": "bilinear",
    "cscale": "bilinear",
    "dither-depth": "no",
    "correct-downscaling": "no",
    "linear-downscaling": "no",
    "sigmoid-upscaling": "no",
    "deband": "no",
    "hdr-compute-peak": "no",
}
# mpv/render.h: MPV_RENDER_PARAM_NEXT_FRAME_INFO and its flags. python-mpv 1.0.8 cannot read
# this parameter (its MpvRenderParam fails on a struct without a value), so it is read raw.
NEXT_FRAME_INFO = 11
FRAME_INFO_REDRAW, FRAME_INFO_REPEAT = 1 << 1, 1 << 2
STALE_FRAME_S = 0.1  # a frame announced but not drawn this long is released (mpv waits 0.2 s)
RELEASE_TIMEOUT_S = 2.0  # how long freeing waits for mpv to drop its video output
_ABANDONED: list[object] = []  # outputs whose core did not let go: kept alive, never freed


def hwdec_for(configured: str, context: GLContext) -> str:
    """The ``hwdec`` mpv gets in ``context``: an automatic mode (``auto``, ``auto-safe``...)
    decodes in software on a software rasteriser (llvmpipe: there is no GPU to decode on or
    to keep frames in, and probing the GPU decoders only slows each handle's start); a named
    decoder is always tried as configured."""
    if context.info.software and configured.startswith("auto"):
        return "no"
    return configured


def _decoding_options(hwdec: str) -> dict[str, str]:
    """GL_OPTIONS with ``hwdec``; decoding in software, mpv loads no hardware interop either
    (creating the render context would otherwise probe CUDA, VAAPI... and log their absence)."""
    options = dict(GL_OPTIONS, hwdec=hwdec)
    if hwdec == "no":
        options["gpu-hwdec-interop"] = "no"
    return options


@runtime_checkable
class GLVideoOutput(VideoOutput, Protocol):
    """A VideoOutput that draws with OpenGL into a ``GLTarget`` on the event-loop thread."""

    on_screen: bool  # the item plays on a real clock: frames wait for the compositor

    def attach(self) -> None:
        """Set up rendering on the GL thread (the running loop's), before the first ``open``."""

    def show(self, target: GLTarget) -> FrameInfo | None:
        """Make ``target`` hold the newest frame (render it if it does not yet); which frame
        it holds, None before the current file's first. Raises VideoOutputLost when rendering
        fails."""

    def presented(self) -> None:
        """A swap showed what ``show`` drew (tells mpv: ``report_swap``)."""


def outputs_of(context: GLContext) -> set[GLMpvOutput]:
    """The GL outputs attached to ``context``; their GL resources go before the context."""
    outputs = context.resources.get("mpv outputs")
    if not isinstance(outputs, set):
        outputs = context.resources["mpv outputs"] = set()
        context.on_close(lambda: release_all(context))
    return outputs


def release_all(context: GLContext) -> None:
    """Free the render contexts of every output of ``context`` (on its thread, before it
    closes): each lets mpv drop its video output first, within ``RELEASE_TIMEOUT_S``."""
    outputs = context.resources.get("mpv outputs")
    if isinstance(outputs, set):
        for output in list(outputs):
            output.release_gl()


class GLMpvOutput(MpvHandle):
    """A VideoOutput on mpv's OpenGL render API (see the module docs). Create it off the loop
    (blocks), then ``attach`` it on the loop before loading anything."""

    def __init__(
        self,
        context: GLContext,
        *,
        hwdec: str = "auto-safe",
        audio_output: str = "null",
        audio_device: str | None = None,
    ) -> None:
        self._gl = context
        self._render: Any = None  # mpv.MpvRenderContext once attached
        self._proc: Any = None  # the get_proc_address callback mpv holds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._state = "new"  # -> "attached" -> "freed" | "abandoned"
        self._frames = threading.Lock()  # _latest, _seq, _waiting, _holds
        self._latest: FrameInfo | None = None
        self._seq = 0  # never reset: (framebuffer, seq) names a picture for good
        self._waiting = False  # mpv has handed over a frame and waits for it to be taken
        self._holds: tuple[int, int] | None = None  # (framebuffer, seq) show() drew last
        self._swap_due = False
        self._scheduled = False
        self._failed = False
        self._vo_gone = threading.Event()  # mpv has no video output: free() will not wait
        self._vo_gone.set()
        self._released = threading.Event()
        self.on_screen = False
        self.renders = 0  # frames drawn into targets (tests and benchmarks)
        super().__init__(
            audio_output=audio_output,
            audio_device=audio_device,
            options=_decoding_options(hwdec_for(hwdec, context)),
        )
        self._player.observe_property("current-vo", self._on_vo)

    # mpv's threads --------------------------------------------------------------------------
    def _on_vo(self, _name: str, value: Any) -> None:
        (self._vo_gone.clear if value else self._vo_gone.set)()

    def _on_shutdown(self) -> None:
        self._vo_gone.set()  # the core took its video output down with it

    def _wakeup(self) -> None:
        """mpv's update callback: look at the render context soon, on the loop."""
        loop = self._loop
        if self._scheduled or loop is None or self._state != "attached":
            return
        self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody renders now
            loop.call_soon_threadsafe(self._serve)

    # the GL thread (the event loop's) ------------------------------------------------------
    def attach(self) -> None:
        if self._state != "new":
            return
        if self._gl.closed:
            raise ZoneError("the OpenGL context is closed")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.current_thread()
        gl = self._gl
        self._proc = mpv.MpvGlGetProcAddressFn(lambda _ctx, name: gl.get_proc_address(name))
        with map_mpv_errors("creating mpv's OpenGL renderer"):
            self._render = mpv.MpvRenderContext(
                self._player, "opengl", opengl_init_params={"get_proc_address": self._proc}
            )
        self._frame_info = mpv.MpvRenderFrameInfo()
        self._frame_info_param = mpv.MpvRenderParam("invalid")
        self._frame_info_param.type_id = NEXT_FRAME_INFO
        self._frame_info_param.data = ctypes.cast(ctypes.pointer(self._frame_info), ctypes.c_void_p)
        self._state = "attached"
        outputs_of(gl).add(self)
        self._render.update_cb = self._wakeup

    def _on_gl_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def _serve(self, forced: bool = False) -> None:
        """Ask mpv whether a frame is due; announce a new picture, and let mpv go on at once
        when nobody is going to draw it (or it is the same picture drawn again)."""
        self._scheduled = False
        if self._state != "attached" or self._failed:
            return
        try:
            handed = bool(self._render.update())
            new = handed and self._new_picture()
        except MPV_EXCEPTIONS as exc:
            self._fail(f"rendering failed: {exc}")
            return
        if handed and not new:  # a redraw (a resize, say) of the picture already drawn
            self._waiting = True
            self._release_frame()
        if not (new or forced):
            return
        with self._frames:
            self._seq += 1
            self._latest = info = FrameInfo(self._entry, self._seq, time.monotonic_ns())
            self._waiting = self._waiting or new
        if not self.on_screen:
            self._release_frame()
        elif new and self._loop is not None:
            self._loop.call_later(STALE_FRAME_S, self._release_stale, info.seq)
        self._emit(VideoEventKind.FRAME, info.load)

    def _new_picture(self) -> bool:
        """The frame mpv hands over is a picture not drawn before (not a redraw or repeat)."""
        mpv._mpv_render_context_get_info(self._render.handle, self._frame_info_param)
        return not self._frame_info.flags & (FRAME_INFO_REDRAW | FRAME_INFO_REPEAT)

    def _release_frame(self) -> None:
        """Let mpv go on without drawing the frame it handed over (it stays mpv's current
        picture: a later ``show`` draws it)."""
        if not self._waiting or self._state != "attached":
            return
        self._waiting = False
        try:
            self._render.render(skip_rendering=True, block_for_target_time=False)
            self._render.report_swap()
        except MPV_EXCEPTIONS as exc:
            self._fail(f"rendering failed: {exc}")

    def _release_stale(self, seq: int) -> None:
        """A frame announced for the screen that no draw took (its layer is not drawn)."""
        if self._waiting and self._seq == seq:
            self._release_frame()

    def _fail(self, reason: str) -> None:
        if not self._failed:
            self._failed = True
            self._emit(VideoEventKind.LOST, 0, reason)

    def show(self, target: GLTarget) -> FrameInfo | None:
        if self._state != "attached" or self._failed:
            raise VideoOutputLost("the video output's OpenGL renderer is gone")
        self._serve()  # what mpv has now: a frame handed over since the last callback
        with self._frames:
            info, waiting = self._latest, self._waiting
        if info is None:
            return None
        if not waiting and self._holds == (target.framebuffer, info.seq):
            return info  # drawn there already (staged ahead of the switch, or unchanged)
        width, height = target.size
        try:
            self._render.render(
                opengl_fbo={"fbo": target.framebuffer, "w": width, "h": height},
                flip_y=False,  # row 0 of the framebuffer is the top of the zone
                block_for_target_time=False,  # the loop never waits for a frame's time
            )
        except MPV_EXCEPTIONS as exc:
            self._fail(f"rendering failed: {exc}")
            raise VideoOutputLost(f"rendering failed: {exc}") from exc
        self.renders += 1
        with self._frames:
            self._waiting = False
            self._holds = (target.framebuffer, info.seq)
        # mpv waits for the swap that shows the frame (report_swap): right after it when the
        # compositor presents one (``presented``), else once this loop turn is over.
        if self.on_screen and self._loop is not None:
            self._swap_due = True
            self._loop.call_soon(self.presented)
        else:
            self._report_swap()
        return FrameInfo(info.load, info.seq, time.monotonic_ns())

    def presented(self) -> None:
        if self._swap_due:
            self._swap_due = False
            self._report_swap()

    def _report_swap(self) -> None:
        if self._state == "attached":
            with contextlib.suppress(*MPV_EXCEPTIONS):
                self._render.report_swap()

    def release_gl(self) -> None:
        """Free the render context (on the GL thread): first let mpv drop its video output,
        serving it meanwhile; if it does not within ``RELEASE_TIMEOUT_S`` (a hung core), the
        handle is abandoned, never freed under mpv. Idempotent."""
        if self._state != "attached" or not self._on_gl_thread():
            if self._state != "attached":
                self._released.set()
            return
        if not self._vo_gone.is_set():
            with contextlib.suppress(*MPV_EXCEPTIONS):
                self._player.command_async("stop")
            deadline = time.monotonic() + RELEASE_TIMEOUT_S
            while not self._vo_gone.wait(0.005) and time.monotonic() < deadline:
                with contextlib.suppress(*MPV_EXCEPTIONS):
                    if self._render.update():
                        self._waiting = True
                        self._release_frame()
        outputs_of(self._gl).discard(self)
        if self._vo_gone.is_set():
            with contextlib.suppress(*MPV_EXCEPTIONS):
                self._render.free()
            self._state = "freed"
        else:
            self._abandon("mpv kept its video output")
        self._released.set()

    def _abandon(self, why: str) -> None:
        log.warning("an mpv handle is abandoned (%s); it is never freed", why)
        self._state = "abandoned"
        _ABANDONED.append(self)  # mpv may still call back into what it holds

    # any thread ---------------------------------------------------------------------------
    def _reset_frames(self) -> None:
        with self._frames:
            self._latest = None
            self._holds = None

    def set_size(self, size: tuple[int, int]) -> None:
        self._sized = True  # mpv draws at the size of the target it is given

    def request_frame(self) -> None:
        if self._state != "attached" or self._loop is None:
            return
        if self._on_gl_thread():
            self._serve(forced=True)
        else:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._serve, True)

    @property
    def latest(self) -> FrameInfo | None:
        return self._latest

    @contextlib.contextmanager
    def front(self) -> Iterator[pygame.Surface | None]:
        """No surface on this path: frames are in the GPU's framebuffers (``show``)."""
        yield None

    def close(self) -> None:
        """Free the render context on the GL thread, then terminate the handle. Blocks;
        idempotent. From another thread the GL part is handed to the loop."""
        if not self._mark_closed():
            return
        if self._state == "attached" and not self._on_gl_thread():
            with contextlib.suppress(ZoneError, *MPV_EXCEPTIONS):
                self.unload()  # mpv drops its video output (awaited below, on the loop)
            self._vo_gone.wait(RELEASE_TIMEOUT_S)
            loop = self._loop
            try:
                if loop is None:
                    raise RuntimeError("no loop")
                loop.call_soon_threadsafe(self.release_gl)
            except RuntimeError:
                self._abandon("the event loop that owns its renderer is closed")
                return
            if not self._released.wait(RELEASE_TIMEOUT_S * 2):
                self._abandon("the event loop did not free its renderer")
                return
        else:
            self.release_gl()
        if self._state == "abandoned":
            return
        if self._on_gl_thread():  # never wait for a core on the loop
            threading.Thread(target=self._player.terminate, name="mpv-close", daemon=True).start()
        else:
            self._player.terminate()
