"""One zone playing its playlist on absolute deadlines (the sequencer of a presentation).

Item deadlines are absolute: item k of a zone is due at ``t0 + sum of the durations before it``,
so a late frame never shifts the items after it. Which item comes next is the zone plan's
choice (``player._share``: the playlist in turn, items outside their validity window skipped,
shares of airtime spread over each hour); when none may play the zone shows the layout
beneath it, without a black frame, and wakes when one may. The next item is prepared
``preload_ns`` before its deadline and switched in on the first frame at or after the
deadline. A zone can start where it would be coming from an earlier ``ZonePosition``: a
layout resuming after an interrupt keeps its deadlines as if it had played on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pygame

from core import SignageError, ZoneError
from player._clock import NS_PER_MS, NS_PER_S, Clock
from player._share import Cursor, Pick, ZonePlan
from protocol import Item, Playlist
from zones import RenderContext, Renderer, ZoneView, create_renderer

log = logging.getLogger(__name__)

RETRY_AFTER_ALL_FAILED_NS = 10 * NS_PER_S  # a zone whose every item is broken retries this often
MIN_RESUMED_NS = NS_PER_S  # a resumed item with less left than this gives way to the next


@dataclass(frozen=True)
class Switch:
    """Something a zone did that the timeline reports once the frame is presented."""

    kind: str  # "start" | "end" | "error"; "interrupt" (item: its id, state: start | end)
    zone: str
    item: str
    due_ns: int | None
    error: str | None = None
    layout: str | None = None
    load_ns: int | None = None  # a start: how long preparing the item took (media clock)
    state: str | None = None
    group_due_ns: int | None = None  # a sync group's deadline in group time (ns since 1970)


@dataclass(frozen=True)
class ZonePosition:
    """Where a zone is: the item on screen was picked after ``cursor`` and was due at
    ``due_wall_ns`` (``cursor`` None: the playlist starts afresh then). From it
    ``ZonePlan.advance`` finds where the zone would be later."""

    cursor: Cursor | None
    due_wall_ns: int


class WallMap(Protocol):
    """Media instants to wall-clock nanoseconds and back (``player.WallClock``)."""

    def wall_ns_at(self, media_ns: int) -> int: ...

    def media_ns_at(self, wall_ns: int) -> int: ...


@dataclass
class _Upcoming:
    index: int
    item: Item
    renderer: Renderer
    task: asyncio.Task[int]  # the preparation; its result is how long it took
    cursor: Cursor  # after this item's pick
    before: Cursor  # the pick was made from this one
    due_ns: int | None = None  # None: as soon as the current item ends
    staged: bool = False
    planned: tuple[int, int | None] | None = None  # resumed: (due, end) in wall ns


class ZoneSequencer:
    """Plays one zone's playlist in a loop; ``player._share.ZonePlan`` picks each item."""

    def __init__(
        self,
        view: ZoneView,
        playlist: Playlist,
        context: RenderContext,
        *,
        clock: Clock,
        preload_ns: int,
        wall: WallMap,
        on_loaded: Callable[[Item, int], None] | None = None,
    ) -> None:
        self.view = view
        self._on_loaded = on_loaded
        self.playlist = playlist
        self.plan = ZonePlan(playlist, context.timezone)
        self.context = context
        self._clock = clock
        self._wall = wall
        self._preload_ns = preload_ns
        self._next: _Upcoming | None = None
        self.current: Item | None = None
        self._current_index = -1
        self._current_due: int | None = None
        self._current_end: int | None = None  # deadline of the current item; None: until ended
        self._cursor = Cursor()  # after the current item's pick
        self._position: ZonePosition | None = None  # of the current item
        self._pending: Pick | None = None  # decided for the current item's deadline
        self._blank_until: int | None = None  # media ns; set while the zone shows nothing
        self._blank = False
        self._failures = 0
        self.switches: list[Switch] = []
        view.on_error = self._draw_failed

    def _pick(self, cursor: Cursor, at_ns: int) -> Pick:
        return self.plan.pick(cursor, self._wall.wall_ns_at(at_ns))

    def _prepare(self, pick: Pick, before: Cursor, due_ns: int | None) -> _Upcoming:
        assert pick.index is not None
        item = self.playlist.items[pick.index]
        context, clock = self.context, self._clock
        renderer, task = start_preparing(item, self.view, context, clock, self._on_loaded)
        return _Upcoming(pick.index, item, renderer, task, pick.cursor, before, due_ns)

    async def prime(self, at_ns: int, position: ZonePosition | None = None) -> None:
        """Prepare the item on screen at media instant ``at_ns``: the playlist's first when it
        starts anew, else the one it would show coming from ``position`` (resuming); items
        that fail to prepare are skipped."""
        at_wall = self._wall.wall_ns_at(at_ns)
        if position is None:
            cursor, due_wall = self.plan.start(at_wall), at_wall
        else:
            due_wall = min(position.due_wall_ns, at_wall)
            cursor = position.cursor or self.plan.start(due_wall)
        before, pick, due_wall = self.plan.advance(cursor, due_wall, at_wall)
        planned = None
        if position is not None and pick.index is not None:
            duration = self.plan.duration_ns(pick.index)
            end = None if duration is None else due_wall + duration
            if end is not None and end - at_wall < MIN_RESUMED_NS:
                # A glimpse of the item that was about to end would only flash: the next one
                # comes in now instead, keeping its own deadline.
                before, pick, due_wall = pick.cursor, self.plan.pick(pick.cursor, end), end
                duration = None if pick.index is None else self.plan.duration_ns(pick.index)
                end = None if duration is None else due_wall + duration
            planned = (due_wall, end)
        for _ in range(len(self.playlist.items)):
            if pick.index is None:
                self._cursor = pick.cursor
                wake = pick.wake_ns
                self._blank_until = None if wake is None else self._wall.media_ns_at(wake)
                self._blank = True
                return
            upcoming = self._prepare(pick, before, None)
            upcoming.planned = planned
            with contextlib.suppress(SignageError):
                await upcoming.task
            error = preparation_failure(upcoming.task)
            if error is None:
                self._next = upcoming
                return
            self.switches.append(
                Switch("error", self.view.zone_id, upcoming.item.id, None, str(error))
            )
            upcoming.renderer.release()
            before, planned = upcoming.cursor, None
            pick = self.plan.pick(before, at_wall)
        log.error("zone has nothing playable", extra={"fields": {"zone": self.view.zone_id}})

    def start(self, t0_ns: int) -> None:
        """Anchor the deadlines: the first item is due at ``t0_ns``; a resumed item keeps the
        end it was planned to have."""
        upcoming = self._next
        if upcoming is not None:
            upcoming.due_ns = t0_ns
            return
        if not self._blank:
            self._current_end = t0_ns + RETRY_AFTER_ALL_FAILED_NS

    def position(self) -> ZonePosition | None:
        """Where the zone stands now (for ``prime`` to resume from); None before it started."""
        if self._blank:
            return ZonePosition(self._cursor, self._wall.wall_ns_at(self._clock.now_ns()))
        return self._position

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
        self._next = None
        if self._failures >= len(self.playlist.items):
            # Everything in the playlist is broken: hold the last frame, retry later.
            self._failures = 0
            self._cursor = upcoming.cursor
            self._current_index = upcoming.index
            self._current_end = max(upcoming.due_ns or now_ns, now_ns) + RETRY_AFTER_ALL_FAILED_NS
            return
        pick = self._pick(upcoming.cursor, upcoming.due_ns or now_ns)
        if pick.index is None:
            self._cursor = upcoming.cursor
            self._pending = pick  # nothing valid: the zone goes blank at the deadline
            return
        self._next = self._prepare(pick, upcoming.cursor, upcoming.due_ns)

    def _draw_failed(self, view: ZoneView, renderer: Renderer, error: ZoneError) -> None:
        item = self.current.id if self.current else "?"
        self.switches.append(Switch("error", view.zone_id, item, self._current_due, str(error)))
        self._current_end = self._clock.now_ns()  # move on at once: prepare the next item

    def tick(self, now_ns: int) -> None:
        """Start preloads, switch items whose deadline has come, skip broken ones."""
        renderer = self.view.renderer
        if self._current_end is None and renderer is not None:
            self._follow_open_end(renderer, now_ns)
        if self._blank and self._blank_until is not None and self._next is None:
            self._wake_blank(self._blank_until, now_ns)
        end = self._current_end
        if self._next is None and end is not None and now_ns >= end - self._preload_ns:
            if self._pending is None:
                self._pending = self._pick(self._cursor, end)
            pick = self._pending
            if pick.index is None:
                if now_ns >= end:
                    self._go_blank(end, pick)
                return
            if pick.index == self._current_index and self._continues(end, now_ns, pick):
                return
            self._pending = None
            self._next = self._prepare(pick, self._cursor, end)
        upcoming = self._next
        if upcoming is None or not upcoming.task.done():
            return
        error = preparation_failure(upcoming.task)
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

    def _wake_blank(self, until_ns: int, now_ns: int) -> None:
        """A blank zone: look for an item ``preload_ns`` before an item's window opens."""
        if now_ns < until_ns - self._preload_ns:
            return
        pick = self._pick(self._cursor, until_ns)
        if pick.index is None:
            self._cursor = pick.cursor
            wake = pick.wake_ns
            self._blank_until = None if wake is None else self._wall.media_ns_at(wake)
            return
        self._next = self._prepare(pick, self._cursor, until_ns)

    def _go_blank(self, end_ns: int, pick: Pick) -> None:
        """No item may play from ``end_ns``: the zone shows the layout beneath until one may."""
        if self.current is not None:
            self.switches.append(Switch("end", self.view.zone_id, self.current.id, end_ns))
        log.info(
            "no item may play now; zone blank",
            extra={"fields": {"zone": self.view.zone_id, "playlist": self.playlist.id}},
        )
        self.view.blank()
        self.current, self._current_index, self._current_end = None, -1, None
        self._pending, self._cursor, self._blank = None, pick.cursor, True
        wake = pick.wake_ns
        self._blank_until = None if wake is None else self._wall.media_ns_at(wake)

    def _follow_open_end(self, renderer: Renderer, now_ns: int) -> None:
        """An item without a duration (a video to its end): switch when it has ended."""
        if renderer.ended:
            self._current_end = now_ns
            if self._next is not None and self._next.due_ns is None:
                self._next.due_ns = now_ns  # preloaded for an open end: due now
            return
        hint = _expected_end(renderer)
        if self._next is None and hint is not None and now_ns >= hint - self._preload_ns:
            pick = self._pick(self._cursor, hint)
            if pick.index is not None:
                self._next = self._prepare(pick, self._cursor, None)  # gapless: load ahead

    def _continues(self, end_ns: int, now_ns: int, pick: Pick) -> bool:
        """The item on screen is picked again and is still running: it plays on (a ticker
        keeps scrolling).

        Each period still counts as a play (end + start events) and keeps its own deadline.
        """
        item = self.current
        renderer = self.view.renderer
        if item is None or renderer is None or renderer.ended:
            return False
        if now_ns < end_ns:
            return True  # wait for the deadline itself
        duration = item.duration_ms
        if duration is None:
            return False
        self.switches.append(Switch("end", self.view.zone_id, item.id, end_ns))
        self.switches.append(Switch("start", self.view.zone_id, item.id, end_ns))
        self._position = ZonePosition(self._cursor, self._wall.wall_ns_at(end_ns))
        self._cursor, self._pending = pick.cursor, None
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
        self._blank, self._blank_until = False, None
        self.view.show(upcoming.renderer, due or 0, upcoming.item.transition)
        self.current = upcoming.item
        self._current_index = upcoming.index
        self._current_due = due
        self._cursor = upcoming.cursor
        duration = upcoming.item.duration_ms
        self._current_end = None if duration is None or due is None else due + duration * NS_PER_MS
        planned_due = None if due is None else self._wall.wall_ns_at(due)
        if upcoming.planned is not None:
            # Resumed: the item keeps the deadline it had, as if nothing had pre-empted it.
            planned_due, planned_end = upcoming.planned
            if planned_end is not None and due is not None:
                end = self._wall.media_ns_at(planned_end)
                self._current_end = end if end > due else self._current_end
        if planned_due is not None:
            self._position = ZonePosition(upcoming.before, planned_due)
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
        if self._blank:
            until = self._blank_until
            return None if until is None else max(now_ns, until - self._preload_ns)
        if self._current_end is None:
            renderer = self.view.renderer
            hint = None if renderer is None else _expected_end(renderer)
            return None if hint is None else max(now_ns, hint - self._preload_ns)
        if self._pending is not None:
            return max(now_ns, self._current_end)  # blank, or continue, at the deadline
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
            drop_preparation(self.view, self._next.renderer, self._next.task)
            self._next = None

    def release(self) -> None:
        self.release_upcoming()
        self.view.clear()


def start_preparing(
    item: Item,
    view: ZoneView,
    context: RenderContext,
    clock: Clock,
    on_loaded: Callable[[Item, int], None] | None,
) -> tuple[Renderer, asyncio.Task[int]]:
    """A renderer for ``item`` and the task preparing it (its result: how long it took); an
    item no renderer can play gets one that fails like any broken file."""
    try:
        renderer: Renderer = create_renderer(item.type, context)
    except ZoneError as exc:
        renderer = _Broken(exc)

    async def prepare() -> int:
        async with clock.busy():
            started = clock.now_ns()
            await renderer.prepare(item, view.rect.size)
            took = clock.now_ns() - started
        if on_loaded is not None:
            on_loaded(item, took)
        return took

    task = asyncio.create_task(prepare())
    task.add_done_callback(lambda _: context.wake())
    return renderer, task


def preparation_failure(task: asyncio.Task[int]) -> BaseException | None:
    """Why a finished preparation failed (None: it succeeded, or is still running)."""
    if not task.done():
        return None
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception()


def drop_preparation(view: ZoneView, renderer: Renderer, task: asyncio.Task[int]) -> None:
    """Cancel a preparation and release its renderer (staged or not)."""
    task.cancel()
    view.unstage(renderer)
    renderer.release()


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
