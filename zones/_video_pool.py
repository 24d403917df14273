"""Shared resources of the video zones: reusable mpv handles and the one audio owner.

Handles cost ~20 ms and a thread to create, so released ones are unloaded and kept (up to
``spare``) for the next item; two alive per zone is what gapless playback needs (one playing,
one prepared). A handle that can rewind keeps its file loaded instead, so the next occurrence of
the same clip (a playlist that loops, a clip replayed) is rewound rather than loaded again
(a seek costs a few milliseconds, a load tens). A handle that died, hung or stalled is never
reused: it is closed on a thread of its own, so a hung libmpv call can neither block the event
loop nor the interpreter's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar, runtime_checkable

from zones._mpv import VideoOutput, VideoOutputLost

log = logging.getLogger(__name__)

T = TypeVar("T")
OutputFactory = Callable[[], VideoOutput]


@runtime_checkable
class Rewindable(Protocol):
    """A VideoOutput that can take its loaded file back to the start (``MpvOutput``)."""

    def rewind(self) -> int:
        """Seek the loaded file to its start, paused, as ``open`` leaves a file; its load
        number. READY follows as after ``open``. Blocks."""


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():  # the caller gave up waiting (timeout or cancellation)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


async def run_blocking(call: Callable[[], T], *, timeout_s: float, what: str) -> T:
    """Run a call that may block inside libmpv on a daemon thread, waiting at most ``timeout_s``.

    ``asyncio.to_thread`` is not used on purpose: a call that never returns would keep one of
    the default executor's threads forever and make the interpreter wait for it at exit.
    Raises VideoOutputLost when the call does not return in time.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = call()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=work, name=f"mpv-{what}", daemon=True).start()
    try:
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError:
        raise VideoOutputLost(f"{what}: mpv did not answer within {timeout_s:g} s") from None


class VideoOutputPool:
    """Hands out VideoOutputs, takes healthy ones back for reuse, disposes of broken ones."""

    def __init__(self, factory: OutputFactory, *, spare: int = 2, timeout_s: float = 5.0) -> None:
        self._factory = factory
        self._spare = spare
        self.timeout_s = timeout_s
        self._idle: list[VideoOutput] = []
        self._loaded: dict[VideoOutput, Hashable] = {}  # idle outputs that kept their file
        self._unloading: dict[VideoOutput, asyncio.Future[None]] = {}
        self._unload_threads: dict[VideoOutput, threading.Thread] = {}
        self._closing: set[threading.Thread] = set()
        self.created = 0
        self.discarded = 0

    @property
    def kept(self) -> int:
        """Handles kept for reuse (idle, or still unloading their last file)."""
        return len(self._idle) + len(self._unloading)

    async def acquire(self) -> VideoOutput:
        """An idle output, or a new one (VideoOutputLost when creating it hangs)."""
        if not self._idle and self._unloading:
            output, unloaded = next(iter(self._unloading.items()))
            try:
                await asyncio.wait_for(asyncio.shield(unloaded), self.timeout_s)
            except (TimeoutError, VideoOutputLost):
                self._unloading.pop(output, None)
                self.discard(output)
        if self._idle:
            # A handle without a file first; else the one that kept its file the longest
            # (``open`` replaces the file).
            empty = [o for o in self._idle if o not in self._loaded]
            output = empty[-1] if empty else self._idle[0]
            self._take(output)
            return output
        output = await run_blocking(self._factory, timeout_s=self.timeout_s, what="create")
        self.created += 1
        return output

    def take_loaded(self, file: Hashable) -> VideoOutput | None:
        """An idle output that kept ``file`` loaded (rewind it rather than load it), or None.

        ``file`` is what ``give_back`` was told: it must name everything ``open`` was given.
        """
        for output in reversed(self._idle):
            if self._loaded.get(output) == file:
                self._take(output)
                return output
        return None

    def _take(self, output: VideoOutput) -> None:
        self._idle.remove(output)
        self._loaded.pop(output, None)
        output.listener = None

    def give_back(self, output: VideoOutput, *, loaded: Hashable | None = None) -> None:
        """Take a healthy output back: unload its file and keep it, or close it if enough are.

        ``loaded`` (the file the output played, healthy to the end) keeps the file loaded in
        an output that can rewind, for ``take_loaded``. Unloading waits for mpv, so it runs on
        a thread; ``acquire`` waits for it if it must.
        """
        kept = len(self._idle) + len(self._unloading)
        if kept >= self._spare or output in self._idle or output in self._unloading:
            output.listener = None
            self._close_in_background(output)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (shutdown path): unload right here
            output.listener = None
            if self._unload(output) is None:
                self._idle.append(output)
            else:
                self.discard(output)
            return
        output.listener = None  # its render thread keeps serving mpv while it unloads
        if loaded is not None and isinstance(output, Rewindable):
            self._loaded[output] = loaded
            self._idle.append(output)
            return
        self._unloading[output] = loop.create_future()

        def work() -> None:
            error = self._unload(output)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._unloaded, output, error)

        thread = threading.Thread(target=work, name="mpv-unload", daemon=True)
        self._unload_threads[output] = thread
        thread.start()

    @staticmethod
    def _unload(output: VideoOutput) -> VideoOutputLost | None:
        try:
            output.unload()
        except VideoOutputLost as exc:
            return exc
        return None

    def _unloaded(self, output: VideoOutput, error: VideoOutputLost | None) -> None:
        self._unload_threads.pop(output, None)
        unloaded = self._unloading.pop(output, None)
        if unloaded is None:
            return  # given up on (discarded) or closed meanwhile
        if not unloaded.done():
            unloaded.set_result(None)
        if error is not None:
            self.discard(output)
        else:
            self._idle.append(output)

    def discard(self, output: VideoOutput) -> None:
        """Never reuse this output; close it on its own thread (it may hang there)."""
        output.listener = None
        self.discarded += 1
        log.warning("discarding a video output; a new mpv handle will replace it")
        self._close_in_background(output)

    def _close_in_background(self, output: VideoOutput) -> None:
        def close() -> None:
            try:
                output.close()
            except Exception:
                log.exception("closing a video output failed")
            finally:
                self._closing.discard(thread)

        thread = threading.Thread(target=close, name="mpv-close", daemon=True)
        self._closing.add(thread)
        thread.start()

    def close(self, *, timeout_s: float | None = None) -> bool:
        """Close every idle output and wait for pending closes; False if some did not finish."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        for thread in list(self._unload_threads.values()):
            thread.join(timeout)  # never terminate a handle in the middle of a command
        idle, self._idle = self._idle, []
        self._loaded.clear()
        idle.extend(self._unloading)
        self._unloading.clear()
        self._unload_threads.clear()
        for output in idle:
            output.listener = None
            self._close_in_background(output)
        for thread in list(self._closing):
            thread.join(timeout)
        return not any(t.is_alive() for t in self._closing)


class AudioOwner:
    """At most one zone plays sound; it keeps the claim while any of its items holds it."""

    def __init__(self) -> None:
        self._zone: str | None = None
        self._holds = 0

    @property
    def zone(self) -> str | None:
        return self._zone

    def claim(self, zone: str) -> bool:
        if self._zone not in (None, zone):
            return False
        self._zone = zone
        self._holds += 1
        return True

    def release(self, zone: str) -> None:
        if self._zone != zone or self._holds == 0:
            return
        self._holds -= 1
        if self._holds == 0:
            self._zone = None
