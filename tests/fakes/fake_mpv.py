"""FakeMpv: a VideoOutput that decodes nothing and fails on request.

Events reach the listener on a thread of their own, as mpv's do, so the renderer's hand-over to
the event loop is exercised. ``trigger_eof()``, ``trigger_crash()``, ``hang`` (``open`` blocks
until ``unhang()``) and ``stalled`` (no new frames while playing) inject the faults.

``FakeGLMpv`` is the same on the GL path (it draws into the compositor's framebuffer).

Frames: ``request_frame()`` renders one (a FRAME event follows); while playing, a new frame is
there whenever the last one has been copied out of ``front()`` (one new frame per draw).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pygame

from zones import _gl as g
from zones._mpv import (
    Crop,
    Fit,
    Listener,
    Position,
    VideoEvent,
    VideoEventKind,
    VideoOutputLost,
)
from zones._mpv_render import FrameInfo

if TYPE_CHECKING:
    from zones import GLContext, GLTarget


class FakeMpv:
    def __init__(self, *, hang: bool = False, answer_before_return: bool = False) -> None:
        self.listener: Listener | None = None
        self.duration_s: float | None = 2.0  # what READY reports
        self.reported_position: Position | None = None
        self.hang = hang
        self.answer_before_return = answer_before_return
        self.stalled = False
        self.fail_next_load: str | None = None
        self.opened: list[dict[str, Any]] = []
        self.playing = False
        self.crashed = False
        self.closed = False
        self.unloads = 0
        self.frame_index = 0
        self.speed = 1.0
        self.speeds: list[float] = []  # every speed set, in order
        self.seeks: list[float] = []  # every seek, in order (seconds)
        self._unhung = threading.Event()
        self._load = 0
        self._eof = False
        self._size: tuple[int, int] | None = None
        self._frame: pygame.Surface | None = None
        self._latest: FrameInfo | None = None
        self._copied = False  # the latest frame was copied out of front()

    # fault injection ------------------------------------------------------------------------
    def _emit(self, kind: VideoEventKind, load: int, detail: str = "") -> threading.Thread:
        duration = self.duration_s if kind is VideoEventKind.READY else None

        def deliver() -> None:
            listener = self.listener
            if listener is not None:
                listener(VideoEvent(kind, load, detail, duration))

        thread = threading.Thread(target=deliver, name="fake-mpv-event")
        thread.start()
        return thread

    def trigger_eof(self) -> None:
        self._eof = True
        self._emit(VideoEventKind.ENDED, self._load).join()

    def trigger_crash(self) -> None:
        self.crashed = True
        self._emit(VideoEventKind.LOST, 0, "fake core crashed").join()

    def unhang(self) -> None:
        self._unhung.set()

    def _check_alive(self) -> None:
        if self.crashed:
            raise VideoOutputLost("fake mpv core has shut down")

    # the VideoOutput interface ----------------------------------------------------------------
    def set_size(self, size: tuple[int, int]) -> None:
        if size != self._size:
            self._size = size
            self._frame = pygame.Surface(size)

    def open(
        self, path: str, *, fit: Fit, loop: bool, audio: bool, volume: int, crop: Crop = None
    ) -> int:
        self.opened.append(
            {"path": path, "fit": fit, "loop": loop, "audio": audio, "volume": volume}
            | ({"crop": crop} if crop is not None else {})
        )
        self.speed = 1.0
        if self.hang:
            self._unhung.wait()
        self._check_alive()
        self._load += 1
        self._eof = False
        self._latest = None
        self.frame_index = 0
        if self.fail_next_load is not None or not Path(path).is_file():
            detail, self.fail_next_load = self.fail_next_load or f"{path}: no such file", None
            answer = self._emit(VideoEventKind.ERROR, self._load, detail)
        else:
            answer = self._emit(VideoEventKind.READY, self._load)
        if self.answer_before_return:
            answer.join()
        return self._load

    def play(self) -> None:
        self._check_alive()
        self.playing = True

    def set_speed(self, speed: float) -> None:
        self._check_alive()
        self.speed = speed
        self.speeds.append(speed)

    def seek(self, seconds: float) -> None:
        self._check_alive()
        self.seeks.append(seconds)

    def pause(self) -> None:
        self._check_alive()
        self.playing = False

    def unload(self) -> None:
        self._check_alive()
        self.playing = False
        self._latest = None
        self.unloads += 1

    def _render(self) -> None:
        assert self._frame is not None
        self.frame_index += 1
        # A colour per (load, frame): tests can tell frames and files apart by one pixel.
        self._frame.fill(((self._load * 40) % 256, self.frame_index % 256, 200))
        self._latest = FrameInfo(self._load, self.frame_index, time.monotonic_ns())
        self._copied = False

    def request_frame(self) -> None:
        if self.crashed or self._frame is None:
            return
        self._render()
        self._emit(VideoEventKind.FRAME, self._load)

    @property
    def latest(self) -> FrameInfo | None:
        live = self.playing and not self.stalled and not self._eof and not self.crashed
        if live and self._copied and self._frame is not None:
            self._render()  # the decoder's next frame was ready in time for this draw
        return self._latest

    @contextlib.contextmanager
    def front(self) -> Iterator[pygame.Surface | None]:
        yield self._frame if self._latest is not None else None
        self._copied = self._latest is not None

    @property
    def position(self) -> Position | None:
        return self.reported_position

    def report_position(self, seconds: float, seen_ns: int) -> None:
        """What mpv's time-pos observer would record for the current file."""
        self.reported_position = Position(self._load, seconds, seen_ns)

    def close(self) -> None:
        self.closed = True
        self._frame = None


@dataclass
class FakeMpvFactory:
    """Builds FakeMpv outputs for a VideoOutputPool and keeps them for inspection."""

    hang: bool = False
    answer_before_return: bool = False
    outputs: list[FakeMpv] = field(default_factory=list)

    def __call__(self) -> FakeMpv:
        output = FakeMpv(hang=self.hang, answer_before_return=self.answer_before_return)
        self.outputs.append(output)
        return output

    def unhang_all(self) -> None:
        for output in self.outputs:
            output.unhang()


class FakeGLMpv(FakeMpv):
    """A FakeMpv that draws on the GL path: ``show`` clears the target framebuffer with the
    frame's colour (the GL context must be current, as on the event loop)."""

    def __init__(self, context: GLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context
        self.on_screen = False
        self.attached = False
        self.presented_count = 0
        self.targets: list[GLTarget] = []

    def attach(self) -> None:
        self.attached = True

    def show(self, target: GLTarget) -> FrameInfo | None:
        self._check_alive()
        info = self.latest
        if info is None or self._frame is None:
            return None
        colour = self._frame.get_at((0, 0))
        gl = self.context.gl
        gl.glBindFramebuffer(g.FRAMEBUFFER, target.framebuffer)
        gl.glViewport(0, 0, *target.size)
        gl.glClearColor(colour.r / 255, colour.g / 255, colour.b / 255, 1.0)
        gl.glClear(g.COLOR_BUFFER_BIT)
        self._copied = True
        self.targets.append(target)
        return info

    def presented(self) -> None:
        self.presented_count += 1


@dataclass
class FakeGLMpvFactory:
    """Builds FakeGLMpv outputs (``gl_output_factory`` of ``VideoRenderers``)."""

    hang: bool = False
    outputs: list[FakeGLMpv] = field(default_factory=list)

    def __call__(self, context: GLContext) -> FakeGLMpv:
        output = FakeGLMpv(context, hang=self.hang)
        self.outputs.append(output)
        return output

    def unhang_all(self) -> None:
        for output in self.outputs:
            output.unhang()
