"""A presentation: one layout playing, each zone stepping through its playlist on deadlines.

Item deadlines are absolute: item k of a zone is due at ``t0 + sum of the durations before it``,
so a late frame never shifts the items after it. The next item is prepared ``preload_ns`` before
its deadline and switched in on the first frame at or after the deadline; the player reports
each switch once that frame has been presented, with ``late_ms`` measured from it.

Deadlines live on the presentation's own time: the media clock, or, for a sync group's layout,
group time (``player._group``); the sequencers convert at their edges, so everything they hand
out (frames to wake for, instants to show at, reported deadlines) is on the media clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import pygame

from core import SignageError, ZoneError
from player._clock import NS_PER_MS, NS_PER_S, Clock
from player._group import Cycle, GroupPlay, Slot
from protocol import Item, Layout, Manifest, Playlist
from zones import RenderContext, Renderer, Scene, ZoneView, create_renderer

log = logging.getLogger(__name__)

RETRY_AFTER_ALL_FAILED_NS = 10 * NS_PER_S  # a zone whose every item is broken retries this often


class PresentationTime(Protocol):
    """The time a presentation's deadlines are on, and the way to and from the media clock."""

    def to_media(self, t: int) -> int: ...

    def from_media(self, media_ns: int) -> int: ...


class _MediaTime:
    def to_media(self, t: int) -> int:
        return t

    def from_media(self, media_ns: int) -> int:
        return media_ns


MEDIA_TIME: PresentationTime = _MediaTime()


@dataclass(frozen=True)
class Switch:
    """Something a zone did that the timeline reports once the frame is presented."""

    kind: str  # "start" | "end" | "error"
    zone: str
    item: str
    due_ns: int | None
    error: str | None = None
    layout: str | None = None
    load_ns: int | None = None  # a start: how long preparing the item took (media clock)
    group_due_ns: int | None = None  # a sync group's deadline in group time (ns since 1970)


@dataclass
class _Upcoming:
    index: int
    item: Item
    renderer: Renderer
    task: asyncio.Task[int]  # the preparation; its result is how long it took
    due_ns: int | None = None  # None: as soon as the current item ends
    staged: bool = False
    end_ns: int | None = None  # when it ends, if not due + duration (a joined sync slot)


class ZoneSequencer:
    """Plays one zone's playlist in a loop."""

    def __init__(
        self,
        view: ZoneView,
        playlist: Playlist,
        context: RenderContext,
        *,
        clock: Clock,
        preload_ns: int,
        on_loaded: Callable[[Item, int], None] | None = None,
        time: PresentationTime = MEDIA_TIME,
        keep_slots: bool = False,
    ) -> None:
        """``time``: what the deadlines are on. ``keep_slots``: a broken item keeps its slot
        (the previous picture stays) instead of handing it to the next item (a sync group)."""
        self.view = view
        self._on_loaded = on_loaded
        self._time = time
        self._keep_slots = keep_slots
        self.first_index = 0  # the item ``prime`` prepared
        self.playlist = playlist
        self.context = context
        self._clock = clock
        self._preload_ns = preload_ns
        self._next: _Upcoming | None = None
        self.current: Item | None = None
        self._current_index = -1
        self._current_due: int | None = None
        self._current_end: int | None = None  # deadline of the current item; None: until ended
        self._failures = 0
        self.switches: list[Switch] = []
        view.on_error = self._draw_failed

    def _prepare(self, index: int, due_ns: int | None) -> _Upcoming:
        index %= len(self.playlist.items)
        item = self.playlist.items[index]
        try:
            renderer = create_renderer(item.type, self.context)
        except ZoneError as exc:
            renderer = _Broken(exc)
        task = asyncio.create_task(self._run_prepare(renderer, item))
        task.add_done_callback(lambda _: self.context.wake())
        return _Upcoming(index, item, renderer, task, due_ns)

    async def _run_prepare(self, renderer: Renderer, item: Item) -> int:
        async with self._clock.busy():
            started = self._clock.now_ns()
            await renderer.prepare(item, self.view.rect.size)
            took = self._clock.now_ns() - started
        if self._on_loaded is not None:
            self._on_loaded(item, took)
        return took

    async def prime(self, first: int = 0) -> None:
        """Prepare the first playable item from ``first`` on (the zone's first frame); broken
        items are skipped."""
        upcoming = self._prepare(first, None)
        for _ in range(len(self.playlist.items)):
            with contextlib.suppress(SignageError):
                await upcoming.task
            error = self._failed(upcoming)
            if error is None:
                self._next = upcoming
                self.first_index = upcoming.index
                return
            self.switches.append(
                Switch("error", self.view.zone_id, upcoming.item.id, None, str(error))
            )
            upcoming.renderer.release()
            upcoming = self._prepare(upcoming.index + 1, None)
        upcoming.renderer.release()
        upcoming.task.cancel()
        log.error("zone has nothing playable", extra={"fields": {"zone": self.view.zone_id}})

    def start(self, t0_ns: int, *, first_end: int | None = None) -> None:
        """Anchor the deadlines: the first item is due at ``t0_ns`` (media clock); it ends at
        ``first_end`` (presentation time) when given, else after its duration."""
        t0 = self._time.from_media(t0_ns)
        if self._next is not None:
            self._next.due_ns = t0
            self._next.end_ns = first_end
        else:
            self._current_end = t0 + RETRY_AFTER_ALL_FAILED_NS

    def _failed(self, upcoming: _Upcoming) -> BaseException | None:
        if not upcoming.task.done():
            return None
        if upcoming.task.cancelled():
            return asyncio.CancelledError()
        return upcoming.task.exception()

    def _report_failure(self, upcoming: _Upcoming, error: BaseException, now_ns: int) -> None:
        self.switches.append(
            Switch("error", self.view.zone_id, upcoming.item.id, upcoming.due_ns, str(error))
        )
        log.warning(
            "item skipped",
            extra={
                "fields": {"zone": self.view.zone_id, "item": upcoming.item.id, "error": str(error)}
            },
        )
        upcoming.renderer.release()
        self._failures += 1
        if self._failures >= len(self.playlist.items):
            # Everything in the playlist is broken: hold the last frame, retry later.
            self._failures = 0
            self._next = None
            self._current_index = upcoming.index
            self._current_end = max(upcoming.due_ns or now_ns, now_ns) + RETRY_AFTER_ALL_FAILED_NS
            return
        self._next = self._prepare(upcoming.index + 1, self._after_failure(upcoming))

    def _slot_start(self, upcoming: _Upcoming, due: int) -> int:
        duration = upcoming.item.duration_ms
        if upcoming.end_ns is None or duration is None:
            return due
        return min(due, upcoming.end_ns - duration * NS_PER_MS)

    def _after_failure(self, failed: _Upcoming) -> int | None:
        """When the item after a broken one is due: at once, or at the broken slot's end."""
        due = failed.due_ns
        duration = failed.item.duration_ms
        if not self._keep_slots or due is None:
            return due
        if failed.end_ns is not None:
            return failed.end_ns
        return None if duration is None else due + duration * NS_PER_MS

    def _draw_failed(self, view: ZoneView, renderer: Renderer, error: ZoneError) -> None:
        item = self.current.id if self.current else "?"
        self.switches.append(Switch("error", view.zone_id, item, self._current_due, str(error)))
        if not self._keep_slots:  # in a sync group the slot is kept: the next comes on time
            self._current_end = self._time.from_media(self._clock.now_ns())

    def tick(self, now_ns: int) -> None:
        """Start preloads, switch items whose deadline has come, skip broken ones."""
        now_ns = self._time.from_media(now_ns)
        renderer = self.view.renderer
        if self._current_end is None and renderer is not None:
            self._follow_open_end(renderer, now_ns)
        end = self._current_end
        if self._next is None and end is not None and now_ns >= end - self._preload_ns:
            if self._continues(end, now_ns):
                return
            self._next = self._prepare(self._current_index + 1, end)
        upcoming = self._next
        if upcoming is None or not upcoming.task.done():
            return
        error = self._failed(upcoming)
        if error is not None:
            self._report_failure(upcoming, error, now_ns)
            return
        if upcoming.due_ns is None:
            return
        if upcoming.due_ns > now_ns:
            if not upcoming.staged:
                upcoming.staged = True
                self.view.stage(upcoming.renderer, self._time.to_media(upcoming.due_ns))
            return
        self._switch(upcoming)

    def _follow_open_end(self, renderer: Renderer, now_ns: int) -> None:
        """An item without a duration (a video to its end): switch when it has ended."""
        if renderer.ended:
            self._current_end = now_ns
            if self._next is not None and self._next.due_ns is None:
                self._next.due_ns = now_ns  # preloaded for an open end: due now
            return
        hint = self._expected_end(renderer)
        if self._next is None and hint is not None and now_ns >= hint - self._preload_ns:
            self._next = self._prepare(self._current_index + 1, None)  # gapless: load ahead

    def _continues(self, end_ns: int, now_ns: int) -> bool:
        """A playlist of one item that is still running plays on (a ticker keeps scrolling).

        Each period still counts as a play (end + start events) and keeps its own deadline.
        """
        item = self.current
        renderer = self.view.renderer
        if len(self.playlist.items) != 1 or item is None or renderer is None or renderer.ended:
            return False
        if now_ns < end_ns:
            return True  # wait for the deadline itself
        duration = item.duration_ms
        if duration is None:
            return False
        self.switches.append(Switch("end", self.view.zone_id, item.id, end_ns))
        self.switches.append(Switch("start", self.view.zone_id, item.id, end_ns))
        self._current_due = end_ns
        self._current_end = end_ns + duration * NS_PER_MS
        self.view.touch()  # present a frame so the events carry a presented time
        return True

    def _switch(self, upcoming: _Upcoming) -> None:
        due = upcoming.due_ns
        if self.current is not None:
            self.switches.append(Switch("end", self.view.zone_id, self.current.id, due))
        self._next = None
        self._failures = 0
        # The item's own time zero: its deadline, or where its slot began for an item joined
        # mid-slot (a video then plays from the group's position, a ticker scrolls from it).
        zero = due if upcoming.end_ns is None or due is None else self._slot_start(upcoming, due)
        self.view.show(
            upcoming.renderer,
            self._time.to_media(zero) if zero is not None else 0,
            upcoming.item.transition,
        )
        self.current = upcoming.item
        self._current_index = upcoming.index
        self._current_due = due
        duration = upcoming.item.duration_ms
        if upcoming.end_ns is not None:
            self._current_end = upcoming.end_ns
        elif duration is None or due is None:
            self._current_end = None
        else:
            self._current_end = due + duration * NS_PER_MS
        load = upcoming.task.result()
        self.switches.append(
            Switch("start", self.view.zone_id, upcoming.item.id, due, load_ns=load)
        )

    def next_wake_ns(self, now_ns: int) -> int | None:
        """The next instant ``tick`` has something to do (None: only when woken)."""
        wake = self._next_wake(self._time.from_media(now_ns))
        return None if wake is None else self._time.to_media(wake)

    def _expected_end(self, renderer: Renderer) -> int | None:
        hint = _expected_end(renderer)
        return None if hint is None else self._time.from_media(hint)

    def _next_wake(self, now_ns: int) -> int | None:
        upcoming = self._next
        if upcoming is not None and upcoming.due_ns is None and self._current_end is None:
            # Loaded ahead for an item that ends on its own (a video): look again when it
            # expects to end, a deadline not subject to the animation frame-rate cap.
            renderer = self.view.renderer
            hint = None if renderer is None else self._expected_end(renderer)
            return None if hint is None else max(now_ns, hint)
        if upcoming is not None:
            return upcoming.due_ns if upcoming.task.done() else None
        if self._current_end is None:
            renderer = self.view.renderer
            hint = None if renderer is None else self._expected_end(renderer)
            return None if hint is None else max(now_ns, hint - self._preload_ns)
        if len(self.playlist.items) == 1 and now_ns >= self._current_end - self._preload_ns:
            return max(now_ns, self._current_end)  # a lone item continues at its deadline
        return max(now_ns, self._current_end - self._preload_ns)

    def switches_by(self, at_ns: int) -> bool:
        """True when a prepared item is due at or before ``at_ns`` (a switch frame)."""
        at_ns = self._time.from_media(at_ns)
        upcoming = self._next
        return (
            upcoming is not None
            and upcoming.due_ns is not None
            and upcoming.due_ns <= at_ns
            and upcoming.task.done()
        )

    def end(self) -> None:
        """Report the item on screen as ended (the presentation is being replaced)."""
        if self.current is not None:
            self.switches.append(Switch("end", self.view.zone_id, self.current.id, None))
            self.current = None

    def release_upcoming(self) -> None:
        """Drop the item being prepared (the zone's on-screen content stays)."""
        if self._next is not None:
            self._next.task.cancel()
            self.view.unstage(self._next.renderer)
            self._next.renderer.release()
            self._next = None

    def release(self) -> None:
        self.release_upcoming()
        self.view.clear()


def _expected_end(renderer: Renderer) -> int | None:
    """The optional ``expected_end_ns`` of an item without a duration (a video's length)."""
    hint = getattr(renderer, "expected_end_ns", None)
    return hint if isinstance(hint, int) else None


class _Broken:
    """Stands in for an item no renderer can play, so it fails like any broken file."""

    def __init__(self, error: ZoneError) -> None:
        self._error = error

    async def prepare(self, item: Item, size: tuple[int, int]) -> None:
        raise self._error

    def start(self, at_ns: int) -> None:
        raise self._error

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        raise self._error

    def next_change_ns(self, now_ns: int) -> int | None:
        return None

    @property
    def ended(self) -> bool:
        return True

    def stop(self) -> None:
        """Never started: nothing to stop."""

    def release(self) -> None:
        """Holds nothing."""


class Presentation:
    """A layout's scene plus one sequencer per zone; with ``group``, played in step with the
    other screens of a sync group (``player._group``)."""

    def __init__(
        self,
        manifest: Manifest,
        layout: Layout,
        *,
        clock: Clock,
        preload_ns: int,
        context_for: Callable[[str], RenderContext],
        on_loaded: Callable[[Item, int], None] | None = None,
        group: GroupPlay | None = None,
    ) -> None:
        self.manifest = manifest
        self.layout = layout
        self.group = group
        self.time: PresentationTime = group.time if group is not None else MEDIA_TIME
        self.scene = Scene(layout.id, (layout.width, layout.height), layout.background)
        self.sequencers: list[ZoneSequencer] = []
        self._cycles: list[Cycle] = []
        self._slots: list[Slot] = []  # per zone, the slot the presentation starts in
        self._t0 = 0  # where it starts, in its own time
        self._clock = clock
        for zone in layout.zones:
            view = self.scene.add_zone(
                ZoneView(zone.id, pygame.Rect(zone.x, zone.y, zone.w, zone.h), zone.z)
            )
            playlist = manifest.playlist(zone.playlist)
            if group is not None:
                playlist = group.timed(playlist)
            context = context_for(zone.id)
            if zone.crop is not None:
                crop = zone.crop
                context = replace(context, crop=(crop.x, crop.y, crop.w, crop.h))
            if group is not None:
                context = replace(context, elapsed=self._elapsed)
            self.sequencers.append(
                ZoneSequencer(
                    view,
                    playlist,
                    context,
                    clock=clock,
                    preload_ns=preload_ns,
                    on_loaded=on_loaded,
                    time=self.time,
                    keep_slots=group is not None,
                )
            )
            if group is not None:
                self._cycles.append(group.cycle(playlist))

    @property
    def synced(self) -> bool:
        return self.group is not None

    def _elapsed(self, since_ns: int, at_ns: int) -> int:
        """Presentation time passed between two media instants (a synced video follows it)."""
        return self.time.from_media(at_ns) - self.time.from_media(since_ns)

    async def prime(self, at_ns: int | None = None) -> None:
        """Prepare each zone's first item. In a sync group, the item whose slot holds the
        media instant ``at_ns`` (default: now), where the presentation will start."""
        if self.group is None:
            await asyncio.gather(*(s.prime() for s in self.sequencers))
            return
        at = self.time.from_media(self._clock.now_ns() if at_ns is None else at_ns)
        self._slots = [cycle.slot_at(at) for cycle in self._cycles]
        await asyncio.gather(
            *(s.prime(slot.index) for s, slot in zip(self.sequencers, self._slots, strict=True))
        )

    def starts_at_ns(self) -> int:
        """The media instant the presentation starts at, with group time as it is now."""
        return self.time.to_media(self._t0)

    def start(self, t0_ns: int) -> None:
        """Show the first items at ``t0_ns`` (media clock). In a sync group each runs to the
        end of its slot, and every later item keeps to the group's grid."""
        self._t0 = self.time.from_media(t0_ns)
        if not self._slots:
            for sequencer in self.sequencers:
                sequencer.start(t0_ns)
            return
        for sequencer, cycle, slot in zip(self.sequencers, self._cycles, self._slots, strict=True):
            sequencer.start(t0_ns, first_end=cycle.end_after(slot, sequencer.first_index))

    def tick(self, now_ns: int) -> None:
        for sequencer in self.sequencers:
            sequencer.tick(now_ns)

    def next_wake_ns(self, now_ns: int) -> int | None:
        times = [t for s in self.sequencers if (t := s.next_wake_ns(now_ns)) is not None]
        return min(times) if times else None

    def switching_zones(self, at_ns: int) -> list[str]:
        """The zones whose next item is due at or before ``at_ns``."""
        return [s.view.zone_id for s in self.sequencers if s.switches_by(at_ns)]

    def take_switches(self) -> list[Switch]:
        """What the zones did, with deadlines on the media clock (and, in a sync group, also
        in group time)."""
        switches: list[Switch] = []
        time = self.time
        synced = self.group is not None
        for sequencer in self.sequencers:
            for s in sequencer.switches:
                due = s.due_ns
                switches.append(
                    replace(
                        s,
                        layout=self.layout.id,
                        due_ns=None if due is None else time.to_media(due),
                        group_due_ns=due if synced else None,
                    )
                )
            sequencer.switches.clear()
        return switches

    def playing(self) -> dict[str, str]:
        return {s.view.zone_id: s.current.id for s in self.sequencers if s.current is not None}

    def end(self) -> None:
        for sequencer in self.sequencers:
            sequencer.end()

    def release_upcoming(self) -> None:
        for sequencer in self.sequencers:
            sequencer.release_upcoming()

    def release(self) -> None:
        for sequencer in self.sequencers:
            sequencer.release()
