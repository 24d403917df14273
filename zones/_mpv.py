"""libmpv behind the ``VideoOutput`` interface: one handle, and the software render path.

``VideoOutput`` is what the video renderer (``zones._video_renderer``) talks to. ``MpvHandle``
holds what every render path shares: the mpv handle with its options, its events (ready, end of
file, errors, a dead core), positions, and the commands that load, rewind, play, pause and
unload files. ``MpvOutput`` renders with mpv's software render API into pygame Surfaces on a
render thread of its own (``zones._mpv_render``; no GPU, works headless); ``GLMpvOutput``
(``zones._mpv_gl``) renders with mpv's OpenGL render API into the GL compositor's framebuffers.
Tests substitute ``tests.fakes.FakeMpv``. Rotated clips are turned upright by a filter
(``zones._mpv_rotation``) on every handle, whatever the path.

Threading: ``set_size``, ``open``, ``rewind``, ``unload`` and ``close`` may block (the caller
runs them off the event loop); ``play``, ``pause``, ``request_frame``, ``latest`` and ``front``
never wait for mpv. mpv and the render thread report through ``listener`` on their own
threads; the listener must only hand the event over (``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import mpv

from core import ZoneError
from zones._mpv_render import MPV_EXCEPTIONS as _MPV_EXCEPTIONS
from zones._mpv_render import FrameInfo, SoftwareRenderThread
from zones._mpv_rotation import rotate_by_filter

if TYPE_CHECKING:
    import pygame

log = logging.getLogger(__name__)

Fit = Literal["contain", "cover", "stretch"]


class VideoEventKind(enum.Enum):
    READY = "ready"  # the file is loaded and its first frame can be rendered
    FRAME = "frame"  # a new frame is in the front surface (``latest`` says which)
    ENDED = "ended"  # end of file reached (the last frame stays up)
    ERROR = "error"  # the file cannot be played (corrupt, unsupported, missing)
    LOST = "lost"  # the handle died (core shut down, rendering failed): discard it


@dataclass(frozen=True)
class VideoEvent:
    kind: VideoEventKind
    load: int  # the load number ``open`` returned for the file; 0: about the handle itself
    detail: str = ""
    duration_s: float | None = None  # READY: the file's length, when the container tells it
    frame_s: float | None = None  # READY: one frame's duration (1 / the container's frame rate)


Listener = Callable[[VideoEvent], None]


@dataclass(frozen=True)
class Position:
    load: int  # the file it is about
    seconds: float  # playback position (the frame on display)
    seen_ns: int  # time.monotonic_ns() when mpv reported it


class VideoOutput(Protocol):
    """One decoder and renderer that plays one file at a time into its front surface.

    Frames are rendered off the event loop as they come; the loop looks at ``latest`` (cheap)
    and copies the front surface inside ``front()``, which no new frame replaces meanwhile.
    """

    listener: Listener | None

    def set_size(self, size: tuple[int, int]) -> None:
        """Render at this size from now on (the zone's size). Blocks."""

    def open(
        self, path: str, *, fit: Fit, loop: bool, audio: bool, volume: int, crop: Crop = None
    ) -> int:
        """Load ``path`` paused (replacing any current file); return its load number. Blocks.

        Events carry the load number, so late events of an earlier file are told apart.
        ``crop``: show only that tile of the picture (fractions), fitted by ``fit``.
        """

    def set_speed(self, speed: float) -> None:
        """Play at ``speed`` (1.0: normal), without waiting for mpv."""

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` into the file, without waiting for mpv."""

    def play(self) -> None:
        """Unpause without waiting for mpv."""

    def pause(self) -> None:
        """Pause without waiting for mpv."""

    def unload(self) -> None:
        """Stop playing and drop the file (the handle stays usable). Blocks."""

    def request_frame(self) -> None:
        """Render the current picture now, new or not; a FRAME event follows. Never waits."""

    @property
    def latest(self) -> FrameInfo | None:
        """The frame in the front surface; None before the current file's first one."""

    def front(self) -> AbstractContextManager[pygame.Surface | None]:
        """The front surface (None before a first frame), unchanged until the block ends."""

    @property
    def position(self) -> Position | None:
        """Where playback was last seen: None before the first report."""

    def close(self) -> None:
        """Free the render context, then terminate the handle. Blocks; idempotent."""


class VideoOutputLost(ZoneError):
    """The mpv handle is dead or hung; it must be discarded and replaced."""


@contextlib.contextmanager
def map_mpv_errors(
    what: str, *, zone: str | None = None, item: str | None = None
) -> Iterator[None]:
    """Translate python-mpv's exceptions into ZoneError (VideoOutputLost for a dead core)."""
    try:
        yield
    except ZoneError:
        raise
    except _MPV_EXCEPTIONS as exc:
        if isinstance(exc, mpv.ShutdownError):
            raise VideoOutputLost(f"{what}: mpv core has shut down", zone=zone, item=item) from exc
        reason = exc.args[0] if exc.args else type(exc).__name__
        raise ZoneError(f"{what}: {reason}", zone=zone, item=item) from exc


_M_ARENA_MAX = -8  # mallopt() parameter, glibc's malloc.h
_glibc: Any = None


def _glibc_malloc() -> Any:
    """glibc's allocator controls, set up once: None on other C libraries."""
    global _glibc
    if _glibc is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(_M_ARENA_MAX, 1)
        except (OSError, AttributeError):
            _glibc = False
        else:
            # mpv runs every file's demuxer and decoders on new threads; glibc gives threads
            # arenas of their own and seldom returns what they freed, so RSS crept up ~35 MB
            # per 1,000 files. One arena plus a trim after each unload keep it flat (with two,
            # the second arena still added a one-off ~9 MB step). Decoders allocate frames from
            # their own pools, so sharing malloc's lock costs them little.
            _glibc = libc
    return _glibc or None


def _return_free_memory() -> None:
    libc = _glibc_malloc()
    if libc is not None:
        libc.malloc_trim(0)


# Options for every handle: no terminal, input, scripts or config files of the host, no
# subtitles, decoding into the render API (in software unless a render path says otherwise),
# the last frame kept at end of file.
BASE_OPTIONS: dict[str, str] = {
    "vo": "libmpv",
    "hwdec": "no",
    # One core stays with the frame loop and the render threads: with every core decoding, a
    # 4K clip starved the loop (switches 100+ ms late on 2 cores) and decoded slower anyway.
    "vd-lavc-threads": str(max(1, (os.cpu_count() or 2) - 1)),
    "sws-fast": "yes",
    "keep-open": "yes",
    "idle": "yes",
    "pause": "yes",
    "config": "no",
    "terminal": "no",
    "input-default-bindings": "no",
    "input-vo-keyboard": "no",
    "osc": "no",
    "ytdl": "no",
    "load-scripts": "no",
    "sid": "no",
    "sub-auto": "no",
    "audio-file-auto": "no",
    "osd-level": "0",
    "background": "#000000",
}
Crop = tuple[float, float, float, float] | None  # (x, y, w, h) fractions of the picture


def crop_filter(crop: tuple[float, float, float, float]) -> str:
    """The ``vf`` showing only a tile of each frame: libavfilter's ``crop``, in fractions of
    the (upright) input. libmpv 0.35 has no ``video-crop``; the filter works on any render
    path. Even sizes and offsets, as chroma-subsampled frames need."""
    x, y, w, h = crop
    return (
        f"lavfi-crop=w=trunc(iw*{w:.6f}/2)*2:h=trunc(ih*{h:.6f}/2)*2"
        f":x=trunc(iw*{x:.6f}/2)*2:y=trunc(ih*{y:.6f}/2)*2"
    )


FIT_OPTIONS: dict[str, dict[str, str]] = {
    "contain": {"keepaspect": "yes", "panscan": "0.0"},
    "cover": {"keepaspect": "yes", "panscan": "1.0"},
    "stretch": {"keepaspect": "no", "panscan": "0.0"},
}


class MpvHandle:
    """One mpv handle and what every render path does with it (see the module docs).

    A render path subclasses it: it creates its render context (``_start_rendering``, right
    after the handle exists and before any file loads) and implements ``_reset_frames`` (a
    new file or a rewind: the next frame rendered is its first) and ``close``. Create it off
    the event loop (blocks).
    """

    def __init__(
        self,
        *,
        audio_output: str = "null",
        audio_device: str | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        _glibc_malloc()
        self.listener: Listener | None = None
        self._entry = 0  # mpv's playlist entry id of the file playing (set on mpv's thread)
        self._position: Position | None = None
        self._sized = False
        self._last_error = ""
        self._closed = False
        self._lock = threading.Lock()
        self._crop_vf = ""  # the current file's tile (a video wall), after any rotation
        merged = dict(BASE_OPTIONS, ao=audio_output, **(options or {}))
        if audio_device:
            merged["audio-device"] = audio_device
        with map_mpv_errors("creating an mpv handle"):
            self._player = mpv.MPV(log_handler=self._on_log, loglevel="warn", **merged)
            try:
                rotate_by_filter(self._player, then=lambda: self._crop_vf)
                self._start_rendering()
            except BaseException:
                self._player.terminate()
                raise
        self._player.register_event_callback(self._on_event)
        self._player.observe_property("eof-reached", self._on_eof)
        self._player.observe_property("time-pos", self._on_position)

    def _start_rendering(self) -> None:
        """Create the render context, if the path can here (on the creating thread)."""

    def _reset_frames(self) -> None:
        """A new file or a rewind: forget the frames of the previous one."""
        raise NotImplementedError

    # mpv's threads --------------------------------------------------------------------------
    def _emit(self, kind: VideoEventKind, load: int, detail: str = "", **extra: Any) -> None:
        listener = self.listener
        if listener is not None:
            listener(VideoEvent(kind, load, detail, **extra))

    def _on_log(self, level: str, prefix: str, text: str) -> None:
        message = f"{prefix}: {text.strip()}"
        if level in {"fatal", "error"}:
            self._last_error = message
        log.debug("mpv %s %s", level, message)

    def _on_event(self, event: Any) -> None:
        eid = event.event_id.value
        if eid == mpv.MpvEventID.START_FILE:
            self._entry = event.data.playlist_entry_id
            self._last_error = ""
        elif eid == mpv.MpvEventID.PLAYBACK_RESTART:
            if self._has_video_stream():
                fps = self._positive("container-fps")
                self._emit(
                    VideoEventKind.READY,
                    self._entry,
                    duration_s=self._positive("duration"),
                    frame_s=1 / fps if fps else None,
                )
            else:  # an audio-only file, or a video stream no decoder accepted
                self._emit(VideoEventKind.ERROR, self._entry, "no playable video stream")
        elif eid == mpv.MpvEventID.END_FILE and event.data.reason == mpv.MpvEventEndFile.ERROR:
            code = event.data.error
            reason = mpv.ErrorCode.human_readable(code) if code else "error"
            detail = f"{reason} ({self._last_error})" if self._last_error else reason
            self._emit(VideoEventKind.ERROR, event.data.playlist_entry_id, detail)
        elif eid == mpv.MpvEventID.SHUTDOWN:
            self._on_shutdown()
            if not self._closed:
                self._emit(VideoEventKind.LOST, 0, "mpv core shut down")

    def _on_shutdown(self) -> None:
        """The core has gone (mpv's event thread): its video output with it."""

    def _has_video_stream(self) -> bool:
        # Reading a property from mpv's event thread is allowed (the core does not wait on it).
        try:
            return self._player.video_params is not None
        except _MPV_EXCEPTIONS:
            return False

    def _positive(self, name: str) -> float | None:
        try:
            value = getattr(self._player, name.replace("-", "_"))  # mpv's property `name`
        except _MPV_EXCEPTIONS:
            return None
        return float(value) if isinstance(value, int | float) and value > 0 else None

    def _on_position(self, _name: str, value: Any) -> None:
        if isinstance(value, int | float):
            # One immutable object replaced at once: readers on the loop see old or new.
            self._position = Position(self._entry, float(value), time.monotonic_ns())

    def _on_eof(self, _name: str, value: Any) -> None:
        if value is True:
            self._emit(VideoEventKind.ENDED, self._entry)

    # caller's threads ---------------------------------------------------------------------
    def open(
        self, path: str, *, fit: Fit, loop: bool, audio: bool, volume: int, crop: Crop = None
    ) -> int:
        if not self._sized:
            raise ZoneError("set_size() must come before open()")
        per_file = dict(
            FIT_OPTIONS[fit],
            pause="yes",  # whatever a late pause/play of the previous file did
            aid="auto" if audio else "no",
            volume=str(volume),
            mute="no" if audio else "yes",
            speed="1.0",  # whatever a sync group's correction left
        )
        per_file["loop-file"] = "inf" if loop else "no"
        encoded = ",".join(f"{key}={value}" for key, value in per_file.items())
        with self._lock, map_mpv_errors(f"loading {path}"):
            # Set with the rotation filter when the file is opened (zones._mpv_rotation).
            self._crop_vf = crop_filter(crop) if crop is not None else ""
            self._reset_frames()
            reply = self._player.command("loadfile", path, "replace", encoded)
        # mpv (>= 0.33) answers with the playlist entry id its events will name.
        entry = reply.get("playlist_entry_id") if isinstance(reply, dict) else None
        if not isinstance(entry, int):
            raise ZoneError(f"loading {path}: mpv did not return a playlist entry id")
        return entry

    def rewind(self) -> int:
        """Seek the loaded file back to its start, paused, as ``open`` leaves it; its load number.

        Much cheaper than loading it again (no demuxer or decoder set-up). READY follows when
        the first frame can be rendered, as after ``open``. Blocks (briefly).
        """
        with self._lock, map_mpv_errors("rewinding"):
            self._player.check_core_alive()
            self._reset_frames()  # the last play's frame is not this play's first
            self._position = None  # nor is its position
            self._player.command("set", "pause", "yes")
            self._player.command("set", "speed", "1.0")  # a sync group's correction ends
            self._player.command("seek", "0", "absolute+exact")
        return self._entry

    def _set_async(self, name: str, value: str) -> None:
        with map_mpv_errors(f"setting {name}"):
            self._player.check_core_alive()
            self._player.command_async("set", name, value)

    def play(self) -> None:
        self._set_async("pause", "no")

    def set_speed(self, speed: float) -> None:
        self._set_async("speed", f"{speed:.6f}")

    def seek(self, seconds: float) -> None:
        with map_mpv_errors("seeking"):
            self._player.check_core_alive()
            # Exact: a keyframe seek could land a GOP away from the group's position.
            self._player.command_async("seek", f"{seconds:.6f}", "absolute+exact")

    def pause(self) -> None:
        self._set_async("pause", "yes")

    def unload(self) -> None:
        with map_mpv_errors("unloading"):
            self._player.check_core_alive()
            self._player.command("stop")
        self._reset_frames()
        _return_free_memory()

    @property
    def position(self) -> Position | None:
        return self._position

    def _mark_closed(self) -> bool:
        """True the first time: the caller closes; False when closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        self.listener = None
        return True


class MpvOutput(MpvHandle):
    """A VideoOutput on libmpv's software render API. Create it off the event loop (blocks)."""

    def _start_rendering(self) -> None:
        self._context: Any = mpv.MpvRenderContext(self._player, "sw")
        self._renderer = SoftwareRenderThread(
            self._context,
            load=lambda: self._entry,
            on_frame=self._on_frame,
            on_failure=lambda reason: self._emit(VideoEventKind.LOST, 0, reason),
        )

    def _on_frame(self, info: FrameInfo) -> None:
        self._emit(VideoEventKind.FRAME, info.load)

    def _reset_frames(self) -> None:
        self._renderer.reset()

    def set_size(self, size: tuple[int, int]) -> None:
        self._renderer.set_size(size)
        self._sized = True

    def request_frame(self) -> None:
        if not self._closed:
            self._renderer.request_frame()

    @property
    def latest(self) -> FrameInfo | None:
        return self._renderer.latest

    def front(self) -> AbstractContextManager[pygame.Surface | None]:
        return self._renderer.front()

    def close(self) -> None:
        if not self._mark_closed():
            return
        # The render thread and context go first: freeing the context after the core is
        # gone is undefined, and so is freeing it while a render call runs (a stuck one is
        # abandoned with its handle).
        if not self._renderer.stop():
            log.warning("an mpv render call is stuck; its handle is abandoned")
            return
        with contextlib.suppress(*_MPV_EXCEPTIONS):
            self._context.free()
        self._player.terminate()
