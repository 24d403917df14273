"""Frames of a simulation: PNGs of what a device presented, and a watch for black frames.

Policies (``--frames``): ``none``; ``switch``, the first frame presented after every switch;
``first``, the same but only the first time each item appears on a device (and after every
layout change), which keeps a simulated day to a few dozen files; ``every:N``, what was on
screen every N seconds of media time (a time-lapse).

A black frame is a presented frame that shows nothing: the whole canvas one flat colour, or an
image or video zone one flat colour (content there is never flat). The watch first looks at
a sparse grid of pixels (a picture is told apart in microseconds), then, only when those agree,
at the frame scaled down, so it is cheap enough to run on every frame.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pygame

from core import ConfigError
from player import TimelineEvent

log = logging.getLogger(__name__)

_COARSE_STEP, _FINE_STEP, _SMALL = 8, 4, 400  # sampling of big and small regions, in pixels
_PROBES = 5  # per side: a 5x5 grid of pixels looked at before the full check
_TOLERANCE = 4  # per channel: JPEG noise on a flat slide still counts as flat
_MAX_PENDING = 32  # frames waiting for the encoder; beyond this the oldest policy wins


@dataclass(frozen=True)
class FramePolicy:
    kind: str  # "none" | "switch" | "first" | "every"
    every_s: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FramePolicy:
        if text in ("none", "switch", "first"):
            return cls(text)
        match = re.fullmatch(r"every:(\d+(?:\.\d+)?)", text)
        if match and float(match.group(1)) > 0:
            return cls("every", float(match.group(1)))
        raise ConfigError(
            [f"--frames: use none, switch, first or every:N (N seconds > 0), got {text!r}"]
        )

    def __str__(self) -> str:
        return f"every:{self.every_s:g}" if self.kind == "every" else self.kind


def is_flat(surface: pygame.Surface) -> bool:
    """True when a surface is one colour (within JPEG noise).

    Judged on a copy scaled down 4 to 8 times (nearest pixel): text strokes and picture detail
    survive that, and the check costs a fraction of a millisecond per frame.
    """
    width, height = surface.get_size()
    if width < 1 or height < 1:
        return False
    if _differs_somewhere(surface, width, height):
        return False  # most frames: a few pixels tell, in microseconds
    step = _FINE_STEP if min(width, height) < _SMALL else _COARSE_STEP
    sample = pygame.transform.scale(surface, (max(1, width // step), max(1, height // step)))
    first = sample.get_at((0, 0))
    matching = pygame.mask.from_threshold(sample, first, (_TOLERANCE,) * 3 + (255,)).count()
    return bool(matching == sample.get_width() * sample.get_height())


def _differs_somewhere(surface: pygame.Surface, width: int, height: int) -> bool:
    """True when two of a sparse grid of pixels differ by more than JPEG noise.

    A picture, a slide with text or a video frame almost always does; only frames that look
    flat on this grid pay for the full check.
    """
    first = surface.get_at((0, 0))
    for gx in range(1, _PROBES + 1):
        x = gx * (width - 1) // (_PROBES + 1)
        for gy in range(1, _PROBES + 1):
            pixel = surface.get_at((x, gy * (height - 1) // (_PROBES + 1)))
            if (
                abs(pixel.r - first.r) > _TOLERANCE
                or abs(pixel.g - first.g) > _TOLERANCE
                or abs(pixel.b - first.b) > _TOLERANCE
            ):
                return True
    return False


def blank_regions(canvas: pygame.Surface, regions: Sequence[pygame.Rect]) -> bool:
    """The canvas shows nothing, or one of ``regions`` (image/video zones) shows nothing."""
    if is_flat(canvas):
        return True
    bounds = canvas.get_rect()
    for rect in regions:
        clipped = rect.clip(bounds)
        if (
            clipped.w >= _COARSE_STEP
            and clipped.h >= _COARSE_STEP
            and is_flat(canvas.subsurface(clipped))
        ):
            return True
    return False


class FrameWriter:
    """Encodes PNGs on one background thread, so the frame loop never waits for zlib."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sim-frames")
        self._pending: set[asyncio.Future[None]] = set()
        self.written = 0
        self.skipped = 0

    def save(self, surface: pygame.Surface, path: Path) -> None:
        if len(self._pending) >= _MAX_PENDING:
            self.skipped += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        future = asyncio.get_running_loop().run_in_executor(self._pool, _write_png, surface, path)
        self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[None]) -> None:
        self._pending.discard(future)
        if future.exception() is None:
            self.written += 1
        else:
            log.error("could not write a frame", exc_info=future.exception())

    async def drain(self) -> None:
        while self._pending:
            await asyncio.wait(set(self._pending))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _write_png(surface: pygame.Surface, path: Path) -> None:
    tmp = path.with_suffix(".tmp.png")
    pygame.image.save(surface, str(tmp))
    tmp.replace(path)


def frame_name(t: float, layout: str | None, zone: str | None, item: str | None) -> str:
    parts = [f"{t:012.3f}", *(p for p in (layout, zone, item) if p)]
    return "_".join(parts) + ".png"


class SwitchFrames:
    """A timeline listener that saves the presented frame of switches, as the policy says."""

    def __init__(
        self,
        policy: FramePolicy,
        folder: Path,
        grab: Callable[[], pygame.Surface | None],
        writer: FrameWriter,
    ) -> None:
        self.policy = policy
        self.folder = folder
        self._grab = grab
        self._writer = writer
        self._last: tuple[float, str | None] | None = None
        self._seen: set[tuple[str | None, str | None, str | None]] = set()
        self._layout: str | None = None

    def __call__(self, event: TimelineEvent) -> None:
        if event.event != "start" or self.policy.kind not in ("switch", "first"):
            return
        if self._last == (event.t, event.layout):
            # Several zones switched on the same frame: one picture. (Two frames of two layouts
            # can share a virtual instant: an idle screen or the default layout, then the
            # scheduled one. Each gets its picture.)
            return
        if self.policy.kind == "first":
            key = (event.layout, event.zone, event.item)
            new_layout = event.layout != self._layout
            self._layout = event.layout
            if key in self._seen and not new_layout:
                return
            self._seen.add(key)
        frame = self._grab()
        if frame is None:
            return
        self._last = (event.t, event.layout)
        self._writer.save(
            frame, self.folder / frame_name(event.t, event.layout, event.zone, event.item)
        )
