"""Black and frozen frames of a simulated device, judged off the event loop.

After each presented frame the device takes the image and video zones that changed in that
frame, sampled (every ``SAMPLE``-th pixel of every ``SAMPLE``-th row, read in place: about a
millisecond for a full-HD zone; a full copy only of playing video zones on the real clock, for
the frozen check), and hands them to one worker thread through a queue of at most
``MAX_QUEUED`` frames. The worker applies the shared detector (``zones.black_share_of``,
``zones.FreezeWatch``):

- **black**: each zone against its item's reference render, the item drawn alone over the
  layout background: an image is decoded and fitted again (from the decode cache), a video
  that fills its zone (``cover``, ``stretch``) has no dark reference (its frames are not known
  in advance), a ``contain`` video is not judged (its letterbox bars depend on the clip). In a
  transition the reference is the blend the transition shows at that instant (a ``fade`` dips
  to the layout background, a ``crossfade`` mixes both items), so a planned dip is not black.
- **frozen** (real clock only; on a virtual clock mpv's pictures follow real time, not media
  time): a playing video zone holding one picture longer than its clip's frame interval plus
  one display frame.

When the queue is full a real-clock device drops the frame (counted as ``unchecked_frames``:
the frame loop must not wait for the watch); a virtual-clock one waits for room, since its
media time stands still meanwhile and every frame is checked.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygame
from PIL import Image, ImageDraw

from protocol import Item
from zones import FreezeWatch, black_share_of, decode_image, luma, near_black, picture_digest

log = logging.getLogger(__name__)

MAX_QUEUED = 4  # frames waiting for the worker (a full-HD zone copy is 8 MB)
SAMPLE = 4  # zones are judged on every 4th pixel of every 4th row
_BLACK = 0.02
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Fade:
    """A transition on screen: its kind, how far it is (0 to 1), the item it leaves."""

    kind: str  # "fade" | "crossfade"
    progress: float
    outgoing: Item | None


@dataclass(frozen=True)
class ZoneShot:
    """One zone of one presented frame, as the worker needs it."""

    zone: str
    picture: Image.Image  # the zone's pixels, sampled (``zones.surface_image(..., SAMPLE)``)
    size: tuple[int, int]  # the zone's size on the canvas (its reference is drawn at this size)
    item: Item
    background: tuple[int, int, int]
    fade: Fade | None = None
    video_started_ns: int | None = None  # a playing video: when it started (frozen check)
    frame_interval_ns: int | None = None  # and its clip's frame interval, when known
    full: pygame.Surface | None = None  # a full copy of a playing video (frozen check)
    covered: tuple[Box, ...] = ()  # parts hidden by zones above it (zone coordinates)
    crop: tuple[float, float, float, float] | None = None  # the zone's tile of each picture


@dataclass(frozen=True)
class FrameJob:
    presented_ns: int
    t: float  # media seconds since the run started
    zones: list[ZoneShot]
    display_frame_ns: int
    check_frozen: bool


BlackFound = Callable[[float, str, Image.Image], None]


class FrameWatch:
    """Checks frames on a worker thread; counts black and frozen frames."""

    def __init__(
        self,
        asset_path: Callable[[str], Path],
        on_black: BlackFound,
        *,
        wait_when_full: bool,
    ) -> None:
        self._asset_path = asset_path
        self._on_black = on_black
        self._wait = wait_when_full
        self._queue: queue.Queue[FrameJob | None] = queue.Queue(MAX_QUEUED)
        self._references: dict[tuple[Any, ...], Image.Image] = {}
        self._freezes: dict[str, tuple[tuple[str, int], FreezeWatch]] = {}
        self.black_frames = 0
        self.frozen_frames = 0
        self.checked_frames = 0
        self.unchecked_frames = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sim-frame-watch", daemon=True)
        self._thread.start()

    def submit(self, job: FrameJob) -> None:
        try:
            self._queue.put(job, block=self._wait)
        except queue.Full:
            with self._lock:
                self.unchecked_frames += 1

    def close(self) -> None:
        """Check what is queued, then stop the worker."""
        self._queue.put(None)
        self._thread.join()

    # -- the worker --------------------------------------------------------------------------

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._check(job)
            except Exception:
                log.exception("frame check failed")  # a bug in the watch must not stop the run

    def _check(self, job: FrameJob) -> None:
        black = False
        for shot in job.zones:
            if self._is_black(shot):
                black = True
                self._on_black(job.t, shot.zone, shot.picture)
        self._follow_videos(job)
        with self._lock:
            self.checked_frames += 1
            self.black_frames += black

    def _is_black(self, shot: ZoneShot) -> bool:
        size = shot.size
        current = self._reference(shot.item, size, shot.background, shot.crop)
        if current is None:
            return False  # not judged (a contain video)
        expected = current
        if shot.fade is not None:
            outgoing = (
                self._reference(shot.fade.outgoing, size, shot.background, shot.crop)
                if shot.fade.outgoing is not None
                else None
            )
            if outgoing is None and shot.fade.outgoing is not None:
                return False
            expected = _blend(shot.fade, outgoing, current, shot.background)
        allowed = near_black(expected)
        if shot.covered:
            draw = ImageDraw.Draw(allowed)
            for x, y, w, h in shot.covered:  # another zone's pixels: not this item's to judge
                draw.rectangle(
                    (x // SAMPLE, y // SAMPLE, (x + w) // SAMPLE, (y + h) // SAMPLE), fill=255
                )
        return black_share_of(shot.picture.convert("L"), allowed) >= _BLACK

    def _reference(
        self,
        item: Item,
        size: tuple[int, int],
        background: tuple[int, int, int],
        crop: tuple[float, float, float, float] | None = None,
    ) -> Image.Image | None:
        """The luma of ``item`` drawn alone in a zone of ``size`` (sampled), or None."""
        key = (item.id, size, background, crop)
        cached = self._references.get(key)
        if cached is not None:
            return cached
        render = pygame.Surface(size)
        render.fill(background)
        if item.type == "image":
            picture = decode_image(self._asset_path(item.asset), size, item.fit, crop)
            render.blit(picture.surface, picture.offset)
        elif item.type == "video":
            if getattr(item, "fit", "contain") == "contain":
                return None
            render.fill((255, 255, 255))  # fills its zone; its own dark frames are not known
        reference = luma(render, sample=SAMPLE)
        if len(self._references) > 64:
            self._references.clear()
        self._references[key] = reference
        return reference

    def _follow_videos(self, job: FrameJob) -> None:
        if not job.check_frozen:
            return
        for shot in job.zones:
            if shot.zone in self._freezes and shot.item.type != "video":
                _, ended = self._freezes.pop(shot.zone)  # the zone moved on to a picture
                self._count(ended.stop(job.presented_ns))
            if shot.video_started_ns is None or shot.frame_interval_ns is None or not shot.full:
                continue
            key = (shot.item.id, shot.video_started_ns)
            digest = picture_digest(shot.full)
            known = self._freezes.get(shot.zone)
            if known is None or known[0] != key:
                if known is not None:
                    self._count(known[1].stop(job.presented_ns))
                watch = FreezeWatch(shot.frame_interval_ns, job.display_frame_ns)
                watch.start(job.presented_ns, digest)
                self._freezes[shot.zone] = (key, watch)
            else:
                self._count(known[1].picture(job.presented_ns, digest))

    def _count(self, frozen: bool) -> None:
        if frozen:
            with self._lock:
                self.frozen_frames += 1


def _blend(
    fade: Fade,
    outgoing: Image.Image | None,
    incoming: Image.Image,
    background: tuple[int, int, int],
) -> Image.Image:
    """The luma a transition shows at ``fade.progress`` (zones.ZoneView.paint's blends)."""
    p = fade.progress
    if fade.kind == "crossfade":
        return incoming if outgoing is None else Image.blend(outgoing, incoming, p)
    flat = pygame.Surface((1, 1))
    flat.fill(background)
    back = Image.new("L", incoming.size, luma(flat).getpixel((0, 0)))
    if p < 0.5:
        return back if outgoing is None else Image.blend(back, outgoing, 1 - 2 * p)
    return Image.blend(back, incoming, 2 * p - 1)
