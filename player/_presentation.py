"""A presentation: one layout playing, each zone stepping through its playlist on deadlines.

Item deadlines are absolute: item k of a zone is due at ``t0 + sum of the durations before it``,
so a late frame never shifts the items after it. The next item is prepared ``preload_ns`` before
its deadline and switched in on the first frame at or after the deadline; the player reports
each switch once that frame has been presented, with ``late_ms`` measured from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import pygame

from core import SignageError, ZoneError
from player._clock import NS_PER_MS, NS_PER_S, Clock
from protocol import Item, Layout, Manifest, Playlist
from zones import RenderContext, Renderer, Scene, ZoneView, create_renderer

log = logging.getLogger(__name__)

RETRY_AFTER_ALL_FAILED_NS = 10 * NS_PER_S  # a zone whose every item is broken retries this often


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


@dataclass
class _Upcoming:
    index: int
    item: Item
    renderer: Renderer
    task: asyncio.Task[int]  # the preparation; its result is how long it took
    due_ns: int | None = None  # None: as soon as the current item ends
    staged: bool = False


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
    ) -> None:
        self.view = view
        self._on_loaded = on_loaded
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

    async def prime(self) -> None:
        """Prepare the first playable item (the zone's first frame); broken items are skipped."""
        upcoming = self._prepare(0, None)
        for _ in range(len(self.playlist.items)):
            with contextlib.suppress(SignageError):
                await upcoming.task
            error = self._failed(upcoming)
            if error is None:
                self._next = upcoming
                return
            self.switches.append(
                Switch("error", self.view.zone_id, upcoming.item.id, None, str(error))
            )
            upcoming.renderer.release()
            upcoming = self._prepare(upcoming.index + 1, None)
        upcoming.renderer.release()
        upcoming.task.cancel()
        log.error("zone has nothing playable", extra={"fields": {"zone": self.view.zone_id}})

    def start(self, t0_ns: int) -> None:
        """Anchor the deadlines: the first item is due at ``t0_ns``."""
        if self._next is not None:
            self._next.due_ns = t0_ns
        else:
            self._current_end = t0_ns + RETRY_AFTER_ALL_FAILED_NS

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
        self._next = self._prepare(upcoming.index + 1, upcoming.due_ns)

    def _draw_failed(self, view: ZoneView, renderer: Renderer, error: ZoneError) -> None:
        item = self.current.id if self.current else "?"
        self.switches.append(Switch("error", view.zone_id, item, self._current_due, str(error)))
        self._current_end = self._clock.now_ns()  # move on at once: prepare the next item

    def tick(self, now_ns: int) -> None:
        """Start preloads, switch items whose deadline has come, skip broken ones."""
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
                self.view.stage(upcoming.renderer, upcoming.due_ns)
            return
        self._switch(upcoming)

    def _follow_open_end(self, renderer: Renderer, now_ns: int) -> None:
        """An item without a duration (a video to its end): switch when it has ended."""
        if renderer.ended:
            self._current_end = now_ns
            if self._next is not None and self._next.due_ns is None:
                self._next.due_ns = now_ns  # preloaded for an open end: due now
            return
        hint = _expected_end(renderer)
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
        self.view.show(upcoming.renderer, due or 0, upcoming.item.transition)
        self.current = upcoming.item
        self._current_index = upcoming.index
        self._current_due = due
        duration = upcoming.item.duration_ms
        self._current_end = None if duration is None or due is None else due + duration * NS_PER_MS
        load = upcoming.task.result()
        self.switches.append(
            Switch("start", self.view.zone_id, upcoming.item.id, due, load_ns=load)
        )

    def next_wake_ns(self, now_ns: int) -> int | None:
        """The next instant ``tick`` has something to do (None: only when woken)."""
        upcoming = self._next
        if upcoming is not None and upcoming.due_ns is None and self._current_end is None:
            # Loaded ahead for an item that ends on its own (a video): look again when it
            # expects to end, a deadline not subject to the animation frame-rate cap.
            renderer = self.view.renderer
            hint = None if renderer is None else _expected_end(renderer)
            return None if hint is None else max(now_ns, hint)
        if upcoming is not None:
            return upcoming.due_ns if upcoming.task.done() else None
        if self._current_end is None:
            renderer = self.view.renderer
            hint = None if renderer is None else _expected_end(renderer)
            return None if hint is None else max(now_ns, hint - self._preload_ns)
        if len(self.playlist.items) == 1 and now_ns >= self._current_end - self._preload_ns:
            return max(now_ns, self._current_end)  # a lone item continues at its deadline
        return max(now_ns, self._current_end - self._preload_ns)

    def switches_by(self, at_ns: int) -> bool:
        """True when a prepared item is due at or before ``at_ns`` (a switch frame)."""
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
    """A layout's scene plus one sequencer per zone."""

    def __init__(
        self,
        manifest: Manifest,
        layout: Layout,
        *,
        clock: Clock,
        preload_ns: int,
        context_for: Callable[[str], RenderContext],
        on_loaded: Callable[[Item, int], None] | None = None,
    ) -> None:
        self.manifest = manifest
        self.layout = layout
        self.scene = Scene(layout.id, (layout.width, layout.height), layout.background)
        self.sequencers: list[ZoneSequencer] = []
        for zone in layout.zones:
            view = self.scene.add_zone(
                ZoneView(zone.id, pygame.Rect(zone.x, zone.y, zone.w, zone.h), zone.z)
            )
            self.sequencers.append(
                ZoneSequencer(
                    view,
                    manifest.playlist(zone.playlist),
                    context_for(zone.id),
                    clock=clock,
                    preload_ns=preload_ns,
                    on_loaded=on_loaded,
                )
            )

    async def prime(self) -> None:
        await asyncio.gather(*(s.prime() for s in self.sequencers))

    def start(self, t0_ns: int) -> None:
        for sequencer in self.sequencers:
            sequencer.start(t0_ns)

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
        switches: list[Switch] = []
        for sequencer in self.sequencers:
            switches.extend(replace(s, layout=self.layout.id) for s in sequencer.switches)
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
