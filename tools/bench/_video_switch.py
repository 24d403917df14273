"""The switching part of ``signage bench video``: a 60 Hz loop standing in for the compositor.

Items are cut on deadlines on the 60 Hz grid (or, ``at_end``, when a video without a duration
ends); the next one is prepared ``PRELOAD_NS`` ahead. Measured: lateness of the first presented
frame of each item; black and frozen frames by the shared detector (``zones.is_black`` against
each item's reference render, ``zones.FreezeWatch``); and gaps (in display frames) between
picture changes around each switch against the same gaps elsewhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pygame
    from PIL import Image

    from zones import VideoRenderers

FRAME_NS = 16_666_667  # one 60 Hz display frame
VIDEO_FRAME_NS = 40_000_000  # the 25 fps switch clips
PRELOAD_NS = 500_000_000
WINDOW_TICKS = 9  # how far around a switch (in display frames) gaps are looked at
_ASSETS: dict[str, Path] = {}


def _item(clip: Path, index: int, *, duration_ms: int | None, loop: bool = False) -> Any:
    from protocol import VideoItem

    sha = hashlib.sha256(str(clip).encode()).hexdigest()
    _ASSETS[sha] = clip
    return VideoItem(id=f"v{index}", type="video", asset=sha, duration_ms=duration_ms, loop=loop)


def _context() -> Any:
    from zones import RenderContext

    return RenderContext(zone_id="bench", asset_path=_ASSETS.__getitem__)


class _Still:
    """A still picture behind the renderer interface (the image zone, minus decoding)."""

    def __init__(self, size: tuple[int, int]) -> None:
        import pygame

        from zones import near_black_mask

        self._picture = pygame.Surface(size)
        self._picture.fill((200, 120, 40))
        self._painted = False
        self.reference = near_black_mask(self._picture)

    def start(self, at_ns: int) -> None:
        self._painted = False
        self.started_ns = at_ns

    ended = False  # a still has a duration (``item_ns``), even among videos that play to the end
    started_ns = 0

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        if self._painted:
            return False
        surface.blit(self._picture, (0, 0))
        self._painted = True
        return True

    def stop(self) -> None:
        self._painted = True

    def release(self) -> None:
        self._painted = True


@dataclass
class SwitchRun:
    kind: str
    lateness_ms: list[float] = field(default_factory=list)
    black_frames: int = 0
    frozen_frames: int = 0  # pictures held longer than a source frame plus a display frame
    longest_hold_ms: float = 0.0
    late_prepares: int = 0  # the next item was not ready at its deadline
    max_gap_frames: int = 0
    steady_max_gap_frames: int = 0
    loop_busy_max_ms: float = 0.0  # the loop's own CPU time without a break (player.LoopStallProbe)
    loop_late_max_ms: float = 0.0  # the latest a 1 ms wake-up came

    def summary(self) -> dict[str, Any]:
        late = sorted(self.lateness_ms) or [0.0]
        p99 = late[round(0.99 * (len(late) - 1))]
        return {
            "kind": self.kind,
            "switches": len(self.lateness_ms),
            "lateness_p50_ms": round(statistics.median(late), 2),
            "lateness_p99_ms": round(p99, 2),
            "lateness_max_ms": round(late[-1], 2),
            "black_frames": self.black_frames,
            "frozen_frames": self.frozen_frames,
            "longest_hold_ms": round(self.longest_hold_ms, 1),
            "late_prepares": self.late_prepares,
            "max_gap_at_switch_frames": self.max_gap_frames,
            "steady_max_gap_frames": self.steady_max_gap_frames,
            "loop_busy_max_ms": round(self.loop_busy_max_ms, 2),
            "loop_late_max_ms": round(self.loop_late_max_ms, 2),
        }


Kind = str  # "video" or "image"


def _analyse(run: SwitchRun, changes: list[tuple[int, Kind]], switches: list[int]) -> None:
    """Gaps, in display frames, between picture changes around each switch.

    25 fps content on a 60 Hz display changes every 2 or 3 display frames; a gap of more than
    3 where video plays on either side is what ``zones.FreezeWatch`` counts as frozen.
    """
    for at in switches:
        before = [c for c in changes if c[0] < at]
        after = [c for c in changes if at <= c[0] <= at + WINDOW_TICKS]
        points = [before[-1][0]] if before and before[-1][1] == "video" else []
        if after and after[0][1] == "video":
            points += [t for t, _ in after]
        elif after:
            points.append(after[0][0])
        worst = max((b - a for a, b in itertools.pairwise(points)), default=0)
        run.max_gap_frames = max(run.max_gap_frames, worst)
    near = [(at - WINDOW_TICKS, at + WINDOW_TICKS) for at in switches]

    def steady(tick: int) -> bool:
        return not any(lo <= tick <= hi for lo, hi in near)

    run.steady_max_gap_frames = max(
        (
            b[0] - a[0]
            for a, b in itertools.pairwise(changes)
            if a[1] == b[1] == "video" and steady(a[0]) and steady(b[0])
        ),
        default=0,
    )


async def reference_mask(video: VideoRenderers, clip: Path, size: tuple[int, int]) -> Image.Image:
    """A clip's reference render at ``size``: where any of its frames is near black.

    A playing video changes, so its own render is every frame it shows: the clip is played
    once through the renderer and the near-black masks of its frames are united.
    """
    import pygame
    from PIL import ImageChops

    from zones import near_black_mask

    surface = pygame.Surface(size)
    renderer = video(_context())
    await renderer.prepare(_item(clip, 0, duration_ms=None), size)
    union: Image.Image | None = None
    tick = time.monotonic_ns()
    renderer.start(tick)
    try:
        while not renderer.ended and tick < time.monotonic_ns() + 30 * 10**9:
            if renderer.draw(surface, tick):
                mask = near_black_mask(surface)
                union = mask if union is None else ImageChops.lighter(union, mask)
            tick += FRAME_NS
            await asyncio.sleep(max(tick - time.monotonic_ns(), 0) / 1e9)
    finally:
        renderer.stop()
        renderer.release()
    if union is None:
        raise ValueError(f"{clip.name} showed no frame")
    return union


async def _switch_run(
    video: VideoRenderers,
    kind: str,
    plan: Callable[[int], Path | None],  # index -> clip, or None for a still image
    size: tuple[int, int],
    switches: int,
    *,
    references: dict[Path, Image.Image],
    at_end: bool = False,  # videos without a duration, switched when they end
) -> SwitchRun:
    import pygame

    from zones import FreezeWatch, is_black, picture_digest

    run = SwitchRun(kind)
    freeze = FreezeWatch(VIDEO_FRAME_NS, FRAME_NS)

    def reference(renderer: Any, index: int) -> Image.Image:
        if isinstance(renderer, _Still):
            return renderer.reference
        clip = plan(index)
        assert clip is not None
        return references[clip]

    surface, screen = pygame.Surface(size), pygame.Surface(size)
    item_ns = 45 * FRAME_NS  # deadlines on the 60 Hz grid

    async def make(index: int) -> Any:
        clip = plan(index)
        if clip is None:
            return _Still(size)
        renderer = video(_context())
        duration = None if at_end else item_ns // 1_000_000
        await renderer.prepare(_item(clip, index, duration_ms=duration), size)
        return renderer

    current = await make(0)
    t0 = (time.monotonic_ns() // FRAME_NS + 6) * FRAME_NS
    current.start(t0)
    changes: list[tuple[int, Kind]] = []
    switched_at: list[int] = []
    pending: int | None = None
    upcoming: asyncio.Task[Any] | None = None
    index, tick = 0, t0
    give_up = t0 + (switches + 2) * 10**10

    def running() -> bool:
        if index < switches:
            return True
        if at_end and not isinstance(current, _Still):
            return not current.ended
        return tick < t0 + (switches + 1) * item_ns

    while tick < give_up and running():
        delay = tick - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        # Items with a duration end on the grid; the others when the file ends (announced);
        # among those, a still keeps its duration.
        still_now = isinstance(current, _Still)
        if at_end and still_now:
            deadline: int | None = current.started_ns + item_ns
        elif at_end:
            deadline = getattr(current, "expected_end_ns", None)
        else:
            deadline = t0 + (index + 1) * item_ns
        if upcoming is None and index < switches and deadline and tick >= deadline - PRELOAD_NS:
            upcoming = asyncio.create_task(make(index + 1))
        if at_end and not still_now:
            due = current.ended
        else:
            due = deadline is not None and tick >= deadline
        if upcoming is not None and due:
            run.late_prepares += not upcoming.done()
            following = await upcoming
            upcoming = None
            following.start(tick if at_end and not still_now else deadline or tick)
            current.stop()
            current.release()
            if not isinstance(current, _Still):
                freeze.stop(tick)  # held until the frame the next item shows on
            current, index, pending = following, index + 1, deadline or tick
        if current.draw(surface, tick):
            screen.blit(surface, (0, 0))
            presented = time.monotonic_ns()
            still = isinstance(current, _Still)
            changes.append(((tick - t0) // FRAME_NS, "image" if still else "video"))
            if pending is not None:
                run.lateness_ms.append((presented - pending) / 1e6)
                switched_at.append((pending - t0) // FRAME_NS)
                pending = None
            # Checked once per new picture (an unchanged screen was checked already), after
            # the presented time was taken.
            run.black_frames += is_black(screen, reference=reference(current, index))
            if not still:
                freeze.picture(tick, picture_digest(screen))
        tick += FRAME_NS
        behind = time.monotonic_ns() - tick
        if behind > FRAME_NS:  # a frame took too long: skip the ticks already missed
            tick += behind // FRAME_NS * FRAME_NS
    current.stop()
    current.release()
    if not isinstance(current, _Still):
        freeze.stop(tick)
    run.frozen_frames = freeze.frozen
    run.longest_hold_ms = freeze.longest_hold_ns / 1e6
    _analyse(run, changes, switched_at)
    return run
