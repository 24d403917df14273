"""Frames of a simulation: PNGs of what a device presented, and a watch for black frames.

Policies (``--frames``): ``none``; ``switch``, the first frame presented after every switch;
``first``, the same but only the first time each item appears on a device (and after every
layout change), which keeps a simulated day to a few dozen files; ``every:N``, what was on
screen every N seconds of media time (a time-lapse).

Black and frozen frames are judged elsewhere (``tools.sim._frame_watch``, off the event loop);
the compositor's frame listener tells the device what each frame showed and which rectangles
it changed (on either presentation path).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pygame

from core import ConfigError
from player import TimelineEvent
from protocol import Transition
from zones import png_bytes

log = logging.getLogger(__name__)

_MAX_PENDING = 32  # frames waiting for the encoder; beyond this the oldest policy wins


@dataclass(frozen=True)
class FramePolicy:
    kind: str  # "none" | "switch" | "first" | "every"
    every_s: float = 0.0
    # switch/first: an item that comes in with a transition is also taken at its first frame
    # (the picture after the transition is always taken).
    transition_start: bool = False

    @classmethod
    def parse(cls, text: str) -> FramePolicy:
        if text in ("none", "switch", "first"):
            return cls(text)
        if text in ("switch+start", "first+start"):
            return cls(text.partition("+")[0], transition_start=True)
        match = re.fullmatch(r"every:(\d+(?:\.\d+)?)", text)
        if match and float(match.group(1)) > 0:
            return cls("every", float(match.group(1)))
        raise ConfigError(
            [
                "--frames: use none, switch, first (each with +start to add a transition's "
                f"first frame) or every:N (N seconds > 0), got {text!r}"
            ]
        )

    def __str__(self) -> str:
        if self.kind == "every":
            return f"every:{self.every_s:g}"
        return self.kind + ("+start" if self.transition_start else "")


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
    # zones.png_bytes, not pygame.image.save: that one keeps the GIL while it compresses,
    # which stalled the devices' event loop ~100 ms per saved frame.
    tmp = path.with_suffix(".tmp.png")
    tmp.write_bytes(png_bytes(surface))
    tmp.replace(path)


def frame_name(
    t: float, layout: str | None, zone: str | None, item: str | None, moment: str = ""
) -> str:
    """``<t>_<layout>_<zone>_<item>[_<moment>].png``; ``moment`` says which frame of a
    transition it is (``fade-end``, ``crossfade-start``...)."""
    parts = [f"{t:012.3f}", *(p for p in (layout, zone, item, moment) if p)]
    return "_".join(parts) + ".png"


class SwitchFrames:
    """A timeline listener that saves the presented frame of switches, as the policy says.

    An item that comes in with a fade or crossfade is taken once the transition has finished
    (the first frame presented at or after its end, named ``..._<kind>-end.png``), since its
    first frame still shows the outgoing item; with ``+start`` also at that first frame
    (``..._<kind>-start.png``). ``frame(t)`` is called after every presented frame.
    """

    def __init__(
        self,
        policy: FramePolicy,
        folder: Path,
        grab: Callable[[], pygame.Surface | None],
        writer: FrameWriter,
        transition_of: Callable[[str | None], Transition | None] = lambda _item: None,
    ) -> None:
        self.policy = policy
        self.folder = folder
        self._grab = grab
        self._writer = writer
        self._transition_of = transition_of
        self._after: list[tuple[float, str | None, str | None, str | None, str]] = []
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
        transition = self._transition_of(event.item)
        if transition is not None and transition.type != "cut" and transition.duration_ms:
            end = (event.due if event.due is not None else event.t) + transition.duration_ms / 1000
            self._after.append((end, event.layout, event.zone, event.item, transition.type))
            if self.policy.transition_start:
                self._save(
                    event.t, event.layout, event.zone, event.item, f"{transition.type}-start"
                )
            return
        if self._save(event.t, event.layout, event.zone, event.item):
            self._last = (event.t, event.layout)

    def frame(self, t: float) -> None:
        """A frame was presented at ``t``: take the transitions that have finished by then."""
        if not self._after:
            return
        due = [entry for entry in self._after if entry[0] <= t + 1e-9]
        if not due:
            return
        self._after = [entry for entry in self._after if entry[0] > t + 1e-9]
        for _end, layout, zone, item, kind in due:
            self._save(t, layout, zone, item, f"{kind}-end")

    def _save(
        self, t: float, layout: str | None, zone: str | None, item: str | None, moment: str = ""
    ) -> bool:
        frame = self._grab()
        if frame is None:
            return False
        self._writer.save(frame, self.folder / frame_name(t, layout, zone, item, moment))
        return True
