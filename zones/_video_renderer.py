"""The ``video`` zone renderer: one playlist occurrence of a video, played through a VideoOutput.

``prepare`` loads the file paused on a handle of its own and renders its first frame, so when
the item becomes visible that frame is on screen at once: consecutive videos, and images and
videos in either order, switch without a black or a frozen frame (the outgoing item keeps its
last frame until the compositor stops drawing it). A clip that played without a fault stays
loaded in its handle, so its next occurrence (a playlist going round) is rewound, not loaded
again. Frames are rendered by the output on a thread of its own; the renderer copies the
newest one when the compositor draws. mpv's events (ready, end of file, errors, a new frame)
arrive on other threads and are handed to the event loop with ``call_soon_threadsafe``;
everything else runs on the loop thread, and the calls that can block inside libmpv (create,
size, load, rewind, close) run on daemon threads with a timeout.

Faults become ``ZoneError`` (the zone reports an error event and moves on): a file that does not
load or has no video stream, a handle that dies or does not answer (it is discarded and a new one
takes the next item), and a decoder that yields no frame for ``stall_s`` while playing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING

from core import VideoConfig, ZoneError
from protocol import VideoItem
from zones._api import GLTarget, RenderContext, Size
from zones._mpv import Crop, VideoEvent, VideoEventKind, VideoOutput, VideoOutputLost
from zones._mpv_gl import GLVideoOutput
from zones._mpv_render import FrameInfo
from zones._video_follow import PlaybackFollower
from zones._video_pool import AudioOwner, Rewindable, VideoOutputPool, run_blocking

if TYPE_CHECKING:
    import pygame

    from protocol import Item

log = logging.getLogger(__name__)

MAX_FIRST_FRAME_HOLD_S = 0.1  # a container claiming under 10 fps is not trusted for it


class _UnpauseLatency:
    """How long mpv takes from unpausing to the next rendered frame (smoothed, per process).

    A started video holds its first frame for one frame time, then unpauses; mpv then renders
    frame 1 at once, but "at once" takes decoding and rendering time. Unpausing that much
    earlier puts frame 1 on screen when it is due instead of a display frame late (which read
    as a frozen frame at every start).
    """

    def __init__(self) -> None:
        self.ns = 8_000_000  # a first guess, replaced by measurements within a few starts

    def add(self, measured_ns: int) -> None:
        self.ns = (3 * self.ns + min(max(measured_ns, 0), 100_000_000)) // 4


_unpause_latency = _UnpauseLatency()


def _loaded_file(
    path: Path, item: VideoItem, *, audio: bool, volume: int, crop: Crop = None
) -> Hashable | None:
    """What a handle that loaded ``path`` for ``item`` holds: the file as it is on disk now
    (a file replaced or rewritten since is loaded again) and every option ``open`` applied.
    None when the file cannot be looked at (loading it reports why)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    on_disk = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return (str(path), on_disk, item.fit, item.loop, audio, volume, crop)


class VideoRenderer:
    """Renderer of one video item occurrence; see the module docstring."""

    def __init__(
        self,
        context: RenderContext,
        *,
        pool: VideoOutputPool,
        config: VideoConfig,
        audio: AudioOwner,
    ) -> None:
        self._context = context
        self._pool = pool
        self._config = config
        self._audio = audio
        self._item: VideoItem | None = None
        self._output: VideoOutput | None = None
        self._gl_output: GLVideoOutput | None = None  # the same output, when it draws with GL
        self._loop: asyncio.AbstractEventLoop | None = None
        self._load = -1  # -1 while the file is being loaded: events wait in _early
        self._early: list[VideoEvent] = []
        self._ready: asyncio.Future[None] | None = None
        self._owns_audio = False
        self._broken = False  # the output must not be reused
        self._failure: ZoneError | None = None
        self._eof = False
        self._playing = False
        self._painted = False
        self._painted_seq = 0  # the output's frame (FrameInfo.seq) draw() painted last
        self._first_after_ns: int | None = None  # READY seen: the first frame comes after
        self._last_frame_ns = 0
        self._duration_ns: int | None = None
        self._started_at: int | None = None
        self._started_mono: int | None = None
        self._frame_ns = 0
        self._unpause_later: asyncio.TimerHandle | None = None
        self._unpaused_mono: int | None = None  # when play() was called, until the next frame
        self._next_frame_due: int | None = None  # monotonic: frame 1 is not shown before this
        self._file: Hashable | None = None  # what the output has loaded, once prepared
        self._risk: object | None = None  # the crash guard's token while libmpv has the file
        self.frames_painted = 0
        # In a sync group: keeps playback at group time's position (speed, seek).
        self.follower: PlaybackFollower | None = None
        self._followed_ns = 0  # the position report last looked at

    @property
    def output(self) -> VideoOutput | None:
        """The output this occurrence renders through, once prepared (benchmarks time it)."""
        return self._output

    # events from mpv's thread ------------------------------------------------------------
    def _on_output_event(self, event: VideoEvent) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is watching
                loop.call_soon_threadsafe(self._handle_event, event)

    def _handle_event(self, event: VideoEvent) -> None:
        if event.kind is VideoEventKind.LOST:
            self._fail(VideoOutputLost(f"video output lost: {event.detail}"), broken=True)
            return
        if self._load < 0:
            self._early.append(event)  # mpv may answer before open() has returned
            return
        if event.load != self._load:
            return  # a late event about an earlier file on this handle
        if event.kind is VideoEventKind.READY:
            if event.duration_s is not None:
                self._duration_ns = int(event.duration_s * 1e9)
            if event.frame_s is not None and event.frame_s <= MAX_FIRST_FRAME_HOLD_S:
                self._frame_ns = int(event.frame_s * 1e9)
            if self._ready is not None and not self._ready.done() and self._output is not None:
                # The first frame is one rendered from now on (not a frame of what the handle
                # showed before): ask for it, paused or not.
                self._first_after_ns = time.monotonic_ns()
                self._output.request_frame()
        elif event.kind is VideoEventKind.ERROR:
            self._fail(ZoneError(f"cannot play video: {event.detail}"), broken=False)
        elif event.kind is VideoEventKind.ENDED:
            self._eof = True
            self._context.wake()
        elif event.kind is VideoEventKind.FRAME:
            self._on_frame()

    def _on_frame(self) -> None:
        """A new frame is in the output's front surface (rendered on its own thread)."""
        output = self._output
        info = None if output is None else output.latest
        if info is None or info.load != self._load or self._failure is not None:
            return
        self._last_frame_ns = time.monotonic_ns()
        first_after = self._first_after_ns
        if first_after is not None and info.rendered_ns >= first_after:
            self._first_after_ns = None
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        self._learn_unpause_latency(info)
        if self._playing and self._context.virtual_now is None:
            # On a virtual clock the frame loop samples frames at the frame rate instead.
            self._context.wake()

    def _learn_unpause_latency(self, info: FrameInfo) -> None:
        """The first frame rendered after ``play()`` tells how long mpv took to get going."""
        unpaused = self._unpaused_mono
        if unpaused is None or info.rendered_ns < unpaused:
            return
        self._unpaused_mono = None
        if self._context.virtual_now is None:  # (on a virtual clock frames are sampled)
            _unpause_latency.add(info.rendered_ns - unpaused)

    def _fresh(self) -> bool:
        """A frame of this file is in the front surface that draw() has not painted yet."""
        output = self._output
        info = None if output is None else output.latest
        return info is not None and info.load == self._load and info.seq != self._painted_seq

    def _fail(self, error: ZoneError, *, broken: bool) -> None:
        self._broken = self._broken or broken
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        if self._failure is None:
            self._failure = error
        self._context.wake()

    def _error(self, message: str) -> ZoneError:
        item = self._item.id if self._item else None
        return ZoneError(message, zone=self._context.zone_id, item=item)

    # the Renderer interface --------------------------------------------------------------
    async def prepare(self, item: Item, size: Size) -> None:
        if not isinstance(item, VideoItem):
            raise ZoneError(f"the video renderer cannot play a {item.type} item")
        self._item = item
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        try:
            path = self._context.asset_path(item.asset)
            guard = self._context.guard
            if guard is not None:  # libmpv can take the process down: say what it plays
                self._risk = await guard.enter(self._context.zone_id, item)
            self._owns_audio = (
                item.audio and self._config.audio and self._audio.claim(self._context.zone_id)
            )
            file = _loaded_file(
                path,
                item,
                audio=self._owns_audio,
                volume=self._config.volume,
                crop=self._context.crop,
            )
            kept = None if file is None else self._pool.take_loaded(file)
            self._output = output = kept if kept is not None else await self._pool.acquire()
            self._gl_output = output if isinstance(output, GLVideoOutput) else None
            output.listener = self._on_output_event
            self._load = await self._load_file(output, path, item, size, rewind=kept is not None)
            early, self._early = self._early, []
            for event in early:
                self._handle_event(event)
            await self._wait_first_frame(output)
            self._file = file
        except ZoneError as exc:
            self._broken = self._broken or isinstance(exc, VideoOutputLost)
            self.release()
            if exc.zone is not None:  # already says where (e.g. from asset_path)
                raise
            raise self._error(str(exc)) from exc

    async def _load_file(
        self, output: VideoOutput, path: Path, item: VideoItem, size: Size, *, rewind: bool
    ) -> int:
        """Rewind the file the output kept loaded, or load it (also when rewinding fails).

        Sizing the output waits for a frame being rendered: it runs on the loading thread.
        """
        timeout_s = self._pool.timeout_s
        if rewind and isinstance(output, Rewindable):

            def rewind_sized() -> int:
                output.set_size(size)
                return output.rewind()

            try:
                return await run_blocking(rewind_sized, timeout_s=timeout_s, what="rewind")
            except VideoOutputLost:
                raise
            except ZoneError as exc:
                log.info("rewinding a kept video failed (%s); loading it again", exc)

        def open_sized() -> int:
            output.set_size(size)
            return output.open(
                str(path),
                fit=item.fit,
                loop=item.loop,
                audio=self._owns_audio,
                volume=self._config.volume,
                # Only when there is one: outputs that know no crop keep working.
                **({"crop": crop} if (crop := self._context.crop) is not None else {}),
            )

        return await run_blocking(open_sized, timeout_s=timeout_s, what="load")

    async def _wait_first_frame(self, output: VideoOutput) -> None:
        assert self._ready is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self._pool.timeout_s)
        except TimeoutError:
            self._broken = True
            raise VideoOutputLost(
                f"no first frame within {self._pool.timeout_s:g} s (decoder or handle hung)"
            ) from None
        if self._failure is not None:
            raise self._failure
        info = output.latest
        if info is None or info.load != self._load:
            raise ZoneError("the video has no frame to show")

    def start(self, at_ns: int) -> None:
        if self._output is None or self._failure is not None or self._loop is None:
            return
        self._playing = True
        self._painted = False
        self._started_at = at_ns
        if self._gl_output is not None:
            # On the real clock the compositor takes each frame as mpv hands it over; on a
            # virtual one frames are sampled, so mpv must never wait for a draw.
            self._gl_output.on_screen = self._context.virtual_now is None
        if self._context.elapsed is not None and self._context.virtual_now is None:
            item = self._item
            loop = item is not None and item.loop
            self.follower = PlaybackFollower(duration_ns=self._duration_ns, loop=loop)
        self._started_mono = self._last_frame_ns = time.monotonic_ns()
        # Frame 0 had its time while paused, so mpv shows frame 1 at once on unpause: hold
        # frame 0 for a frame time first, or it would flash for a single display frame. mpv
        # needs a few milliseconds to render frame 1, so unpause that much before it is due,
        # and keep it off screen until then if it comes sooner.
        if self._frame_ns:
            lead = min(_unpause_latency.ns, self._frame_ns // 2)
            self._next_frame_due = self._started_mono + self._frame_ns
            self._unpause_later = self._loop.call_later(
                (self._frame_ns - lead) / 1e9, self._unpause
            )
        else:
            self._next_frame_due = None
            self._unpause()

    def _unpause(self) -> None:
        self._unpause_later = None
        if not self._playing or self._output is None:
            return
        self._unpaused_mono = time.monotonic_ns()
        try:
            self._output.play()
        except ZoneError as exc:
            self._fail(exc, broken=True)

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        output = self._to_paint(now_ns)
        if output is None:
            return False
        # Held: the render thread swaps in the next frame only once this copy is done.
        with output.front() as frame:
            info = output.latest
            if frame is None or info is None or info.load != self._load:
                return False
            surface.blit(frame, (0, 0))
        self._painted_frame(info)
        return True

    def draw_gl(self, target: GLTarget, now_ns: int) -> bool:
        """The GL path: mpv draws the frame into the layer's framebuffer (``GLVideoOutput``)."""
        output = self._gl_output
        if output is None or self._to_paint(now_ns) is None:
            return False
        try:
            info = output.show(target)
        except ZoneError as exc:
            self._fail(exc, broken=True)
            raise self._error(str(exc)) from exc
        if info is None or info.load != self._load:
            return False
        self._painted_frame(info)
        return True

    def stage_gl(self, target: GLTarget) -> None:
        """Before the deadline (GL path): draw the paused first frame into ``target``, so the
        switch frame only composes. A failure shows at the first draw after ``start``."""
        output = self._gl_output
        if output is not None and self._failure is None and not self._playing:
            try:
                output.show(target)
            except ZoneError as exc:
                self._fail(exc, broken=True)

    def presented(self) -> None:
        """A swap showed what ``draw_gl`` drew: mpv learns when its frame reached the screen."""
        if self._gl_output is not None:
            self._gl_output.presented()

    def _to_paint(self, now_ns: int) -> VideoOutput | None:
        """The output when there is a frame to paint now; raises ZoneError for a failure or a
        stall found while playing. In a sync group, playback follows group time first."""
        if self._failure is not None:
            raise self._error(str(self._failure))
        output = self._output
        if output is None:
            return None
        if self._playing:
            self._check_stall()
            self._follow(now_ns)
            if self._failure is not None:
                raise self._error(str(self._failure))
        if self._painted and not self._fresh():
            return None
        if self._painted and self._next_frame_due is not None:
            if time.monotonic_ns() < self._next_frame_due:
                return None  # frame 1 came early: frame 0 keeps its full frame time
            self._next_frame_due = None
        return output

    def _painted_frame(self, info: FrameInfo) -> None:
        self._painted_seq = info.seq
        self._learn_unpause_latency(info)
        self.frames_painted += 1
        self._painted = True

    def _follow(self, now_ns: int) -> None:
        """In a sync group: correct speed or position towards group time's position."""
        follower, output, elapsed = self.follower, self._output, self._context.elapsed
        if follower is None or output is None or elapsed is None or self._started_at is None:
            return
        position = output.position
        if (
            position is None
            or position.load != self._load
            or position.seen_ns == self._followed_ns
            or self._unpause_later is not None  # frame 0 is still held on purpose
        ):
            return
        self._followed_ns = position.seen_ns
        now = time.monotonic_ns()
        seen_media = now_ns - (now - position.seen_ns)  # the report's instant, on media time
        expected = elapsed(self._started_at, seen_media)
        correction = follower.observe(round(position.seconds * 1e9), expected, position.seen_ns)
        try:
            if correction.seek_to_s is not None:
                output.seek(correction.seek_to_s)
                follower.seek_sent(time.monotonic_ns())
            if correction.speed is not None:
                output.set_speed(correction.speed)
        except ZoneError as exc:
            self._fail(exc, broken=True)

    def _check_stall(self) -> None:
        now = time.monotonic_ns()
        if self._eof:
            self._last_frame_ns = now
            return
        silent_s = (now - self._last_frame_ns) / 1e9
        if silent_s > self._config.stall_s:
            self._fail(ZoneError(f"decoder stalled: no frame for {silent_s:.1f} s"), broken=True)

    def next_change_ns(self, now_ns: int) -> int | None:
        if not self._playing or self._failure is not None:
            return None
        virtual_end = self._virtual_end_ns()
        if virtual_end is not None:
            # Media time is virtual: the end of the clip is a deadline like any other, and
            # frames are sampled at the frame rate (mpv's own frames do not wake the loop).
            return max(now_ns, min(virtual_end, now_ns + self._context.frame_ns))
        if self._eof:
            return None
        # New frames wake the loop; these deadlines make sure a stall, and the end of a file
        # after its last frame, get noticed.
        now = time.monotonic_ns()
        remaining = self._last_frame_ns + int(self._config.stall_s * 1e9) - now
        end = self._end_monotonic_ns()
        if end is not None:
            remaining = min(remaining, end - now)
        if self._next_frame_due is not None and self._fresh():
            remaining = min(remaining, self._next_frame_due - now)  # a held frame 1
        return now_ns + max(remaining, 0) + 1

    # A video covers its whole zone (letterbox bars are black): composing it is a plain copy.
    opaque = True
    # Starting a video early would play its first seconds off screen (and audibly).
    prerender = False

    def _lag_ns(self) -> int:
        """How far playback runs behind its start (a slow start, a stutter) per mpv's last
        position report; negative when ahead (mpv shows frame 1 at once after the paused
        frame 0, so playback runs about one frame ahead of ``start``)."""
        output = self._output
        position = None if output is None else output.position
        if position is None or position.load != self._load or self._started_mono is None:
            return 0
        return position.seen_ns - self._started_mono - int(position.seconds * 1e9)

    def _end_monotonic_ns(self) -> int | None:
        """When the last frame of a video without a duration will have had its time."""
        item = self._item
        if item is None or item.duration_ms is not None or self._started_mono is None:
            return None
        if self._duration_ns is None:
            return None
        return self._started_mono + self._lag_ns() + self._duration_ns

    def _virtual_end_ns(self) -> int | None:
        """On a virtual media clock: the clip's end in media time (start + its length).

        mpv plays at its own real pace, which has nothing to do with a virtual clock's (a 4 s
        clip would last anything from a blink to minutes of media time), so the clip ends when
        media time says it has played its length. Unknown length: None (mpv's end of file).
        """
        item = self._item
        if (
            self._context.virtual_now is None
            or item is None
            or item.duration_ms is not None
            or self._started_at is None
            or self._duration_ns is None
        ):
            return None
        return self._started_at + self._duration_ns

    @property
    def frame_interval_ns(self) -> int | None:
        """The clip's frame interval (1 / its frame rate), once known: frozen-frame checks
        allow a picture to stay this long plus one display frame."""
        return self._frame_ns or None

    @property
    def expected_end_ns(self) -> int | None:
        """When a video without a duration will end, so the next item is ready by then."""
        virtual_end = self._virtual_end_ns()
        if virtual_end is not None:
            return virtual_end
        end = self._end_monotonic_ns()
        if end is None or self._started_at is None or self._started_mono is None:
            return None
        return self._started_at + end - self._started_mono

    @property
    def ended(self) -> bool:
        """End of file, or the last frame has been on screen for its duration.

        mpv reports the end of file a frame or two after the last frame's time is up; switching
        on time instead keeps the last frame from lingering (a frozen frame). The estimate is
        only trusted once playback has reached the last 100 ms of the file.
        """
        item = self._item
        if item is None or item.duration_ms is not None:
            return False
        virtual_end = self._virtual_end_ns()
        if virtual_end is not None and self._context.virtual_now is not None:
            return self._context.virtual_now() >= virtual_end  # not mpv's (real-time) end
        if self._eof:
            return True
        end = self._end_monotonic_ns()
        output = self._output
        position = None if output is None else output.position
        if end is None or position is None or position.load != self._load:
            return False
        assert self._duration_ns is not None
        near_end = position.seconds * 1e9 >= self._duration_ns - 100_000_000
        return near_end and time.monotonic_ns() >= end

    @property
    def position(self) -> tuple[float, int] | None:
        """Where playback of this item was last seen: (seconds into the file, the monotonic
        instant mpv reported it), or None before a report (what ``signage bench sync`` reads)."""
        output = self._output
        position = None if output is None else output.position
        if position is None or position.load != self._load:
            return None
        return position.seconds, position.seen_ns

    @property
    def owns_audio(self) -> bool:
        return self._owns_audio

    def stop(self) -> None:
        if not self._playing:
            return
        self._playing = False
        if self._gl_output is not None:
            self._gl_output.on_screen = False
        if self._unpause_later is not None:
            self._unpause_later.cancel()
            self._unpause_later = None
        if self._output is not None and not self._broken:
            try:
                self._output.pause()
            except ZoneError:
                self._broken = True

    def release(self) -> None:
        self.stop()
        output, self._output, self._gl_output = self._output, None, None
        if output is not None:
            output.listener = None
            if self._broken:
                self._pool.discard(output)
            else:
                # A file that played without a fault stays loaded for its next occurrence.
                healthy = self._file if self._failure is None else None
                self._pool.give_back(output, loaded=healthy)
        if self._owns_audio:
            self._audio.release(self._context.zone_id)
            self._owns_audio = False
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        self._loop = None
        risk, self._risk = self._risk, None
        if risk is not None and self._context.guard is not None:
            self._context.guard.leave(risk)
