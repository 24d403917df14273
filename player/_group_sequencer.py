"""One zone of a sync group's layout playing its cycle on group time (``player._group``).

The rule, a pure function of group time ``t`` so every screen of the group agrees whenever it
joined, restarted or came back from an interrupt: the item on screen at ``t`` is the one whose
slot holds ``t`` in the cycle, counted from the group's epoch, of the items valid at ``t``
(each item's ``valid`` window evaluated on group time in the manifest's time zone). While the
set of valid items stays the same, items follow each other on the fixed grid of that cycle;
when a window opens or closes the cycle changes with it, at the same group instant on every
screen, and the item then due comes in mid-slot where needed. When no item is valid the zone
shows the layout beneath until one is. A broken item keeps its slot (the previous picture
stays up) so the cycle does not shift against the other screens.

Deadlines here are group time; ``GroupTime`` converts at the edges, so everything handed out
(frames to wake for, instants to show at, reported deadlines) is on the media clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from core import SignageError, ZoneError
from player._clock import Clock
from player._group import Cycle, GroupTime, Slot
from player._sequencer import (
    RETRY_AFTER_ALL_FAILED_NS,
    Switch,
    drop_preparation,
    preparation_failure,
    start_preparing,
)
from player._share import ZonePlan
from protocol import Item, Playlist
from zones import RenderContext, Renderer, ZoneView

log = logging.getLogger(__name__)


@dataclass
class _Upcoming:
    slot: Slot  # the playlist index, where its slot starts and when it ends (group time)
    item: Item
    renderer: Renderer
    task: asyncio.Task[int]  # the preparation; its result is how long it took
    due_ns: int | None = None  # group time; None until ``start`` anchors the first item
    staged: bool = False


class GroupSequencer:
    """Plays one zone's playlist as the sync group's cycle (the rule above)."""

    def __init__(
        self,
        view: ZoneView,
        playlist: Playlist,
        context: RenderContext,
        *,
        clock: Clock,
        preload_ns: int,
        time: GroupTime,
        cycle: Cycle,
        on_loaded: Callable[[Item, int], None] | None = None,
    ) -> None:
        self.view = view
        self.playlist = playlist
        self.context = context
        self._clock = clock
        self._preload_ns = preload_ns
        self._time = time
        self._cycle = cycle
        self._plan = ZonePlan(playlist, context.timezone)
        self._on_loaded = on_loaded
        self._next: _Upcoming | None = None
        self._first: Slot | None = None  # the slot ``prime`` chose
        self.current: Item | None = None
        self._current_index = -1
        self._current_due: int | None = None
        self._current_end: int | None = None  # group time; None: nothing ever again
        self._slot_cache: tuple[int, Slot | None] | None = None
        self.switches: list[Switch] = []
        view.on_error = self._draw_failed

    # -- the rule ----------------------------------------------------------------------------

    def slot_at(self, group_ns: int) -> Slot | None:
        """The slot on screen at ``group_ns``, ending early where the valid items change; None:
        no item is valid then (the slot's end: when one may be)."""
        cached = self._slot_cache
        if cached is not None and cached[0] == group_ns:
            return cached[1]
        slot = self._compute_slot(group_ns)
        self._slot_cache = (group_ns, slot)
        return slot

    def _compute_slot(self, group_ns: int) -> Slot | None:
        plan = self._plan
        change = plan.next_validity_change(group_ns)
        valid = [i for i in range(len(self.playlist.items)) if plan.valid(i, group_ns)]
        if not valid:
            return None if change is None else Slot(-1, group_ns, change)
        if len(valid) == len(self.playlist.items):
            slot = self._cycle.slot_at(group_ns)
        else:
            durations = tuple(self._cycle.durations_ns[i] for i in valid)
            within = Cycle(self._cycle.epoch_ns, durations).slot_at(group_ns)
            slot = Slot(valid[within.index], within.start_ns, within.end_ns)
        if change is not None and change < slot.end_ns:
            slot = Slot(slot.index, slot.start_ns, change)
        return slot

    # -- preparing ---------------------------------------------------------------------------

    def _prepare(self, slot: Slot, due_ns: int | None) -> _Upcoming:
        item = self.playlist.items[slot.index]
        context, clock = self.context, self._clock
        renderer, task = start_preparing(item, self.view, context, clock, self._on_loaded)
        return _Upcoming(slot, item, renderer, task, due_ns)

    async def prime(self, at_group_ns: int) -> None:
        """Prepare the item whose slot holds group instant ``at_group_ns``; a broken one keeps
        its slot (the zone starts with the layout beneath, the next slot comes on time)."""
        slot = self._first = self.slot_at(at_group_ns)
        if slot is None or slot.index < 0:
            return
        upcoming = self._prepare(slot, None)
        with contextlib.suppress(SignageError):
            await upcoming.task
        error = preparation_failure(upcoming.task)
        if error is None:
            self._next = upcoming
            return
        self.switches.append(Switch("error", self.view.zone_id, upcoming.item.id, None, str(error)))
        upcoming.renderer.release()

    def start(self, t0_ns: int) -> None:
        """Show the primed item at media instant ``t0_ns``; it runs to the end of its slot."""
        t0 = self._time.from_media(t0_ns)
        if self._next is not None:
            self._next.due_ns = t0
            return
        first = self._first
        if first is None:
            self._current_end = None  # no item will ever be valid
        elif first.index < 0:
            self._current_end = first.end_ns  # none valid yet: blank until one is
            self.view.blank()
        else:
            self._current_end = max(first.end_ns, t0)  # its item broke: keep the slot

    # -- playing -----------------------------------------------------------------------------

    def _report_failure(self, upcoming: _Upcoming, error: BaseException) -> None:
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
        self._next = None
        # The slot is kept: what is on screen stays until the slot after it, on time.
        self._current_end = upcoming.slot.end_ns
        if len(self.playlist.items) == 1:
            self._current_end += RETRY_AFTER_ALL_FAILED_NS

    def _draw_failed(self, view: ZoneView, renderer: Renderer, error: ZoneError) -> None:
        item = self.current.id if self.current else "?"
        self.switches.append(Switch("error", view.zone_id, item, self._current_due, str(error)))
        # In a sync group the slot is kept: the next item comes on time.

    def tick(self, now_ns: int) -> None:
        """Start preloads, switch items whose deadline has come, skip broken ones."""
        now = self._time.from_media(now_ns)
        end = self._current_end
        if self._next is None and end is not None and now >= end - self._preload_ns:
            slot = self.slot_at(end)
            if slot is None or slot.index < 0:
                if now >= end:
                    self._go_blank(end, slot)
                return
            if slot.index == self._current_index and self._continues(end, now, slot):
                return
            self._next = self._prepare(slot, end)
        upcoming = self._next
        if upcoming is None or not upcoming.task.done():
            return
        error = preparation_failure(upcoming.task)
        if error is not None:
            self._report_failure(upcoming, error)
            return
        if upcoming.due_ns is None:
            return
        if upcoming.due_ns > now:
            if not upcoming.staged:
                upcoming.staged = True
                self.view.stage(upcoming.renderer, self._time.to_media(upcoming.due_ns))
            return
        self._switch(upcoming)

    def _go_blank(self, end_ns: int, slot: Slot | None) -> None:
        """No item is valid from ``end_ns``: the layout beneath shows until one is."""
        if self.current is not None:
            self.switches.append(Switch("end", self.view.zone_id, self.current.id, end_ns))
            log.info(
                "no item may play now; zone blank",
                extra={"fields": {"zone": self.view.zone_id, "playlist": self.playlist.id}},
            )
        self.view.blank()
        self.current, self._current_index = None, -1
        self._current_end = None if slot is None else slot.end_ns

    def _continues(self, end_ns: int, now_ns: int, slot: Slot) -> bool:
        """The item on screen owns the next slot too and is still running: it plays on (a lone
        item, a ticker keeps scrolling). Each slot still counts as a play (end + start)."""
        item = self.current
        renderer = self.view.renderer
        if item is None or renderer is None or renderer.ended or slot.start_ns != end_ns:
            return False
        if now_ns < end_ns:
            return True  # wait for the deadline itself
        self.switches.append(Switch("end", self.view.zone_id, item.id, end_ns))
        self.switches.append(Switch("start", self.view.zone_id, item.id, end_ns))
        self._current_due = end_ns
        self._current_end = slot.end_ns
        self.view.touch()  # present a frame so the events carry a presented time
        return True

    def _switch(self, upcoming: _Upcoming) -> None:
        due = upcoming.due_ns
        assert due is not None
        if self.current is not None:
            self.switches.append(Switch("end", self.view.zone_id, self.current.id, due))
        self._next = None
        # The item's own time zero is where its slot began: joined mid-slot, a video plays
        # from the group's position and a ticker scrolls from it.
        zero = min(due, upcoming.slot.start_ns)
        self.view.show(upcoming.renderer, self._time.to_media(zero), upcoming.item.transition)
        self.current = upcoming.item
        self._current_index = upcoming.slot.index
        self._current_due = due
        self._current_end = max(upcoming.slot.end_ns, due)
        load = upcoming.task.result()
        self.switches.append(
            Switch("start", self.view.zone_id, upcoming.item.id, due, load_ns=load)
        )

    def next_wake_ns(self, now_ns: int) -> int | None:
        """The next instant ``tick`` has something to do (None: only when woken)."""
        now = self._time.from_media(now_ns)
        upcoming = self._next
        if upcoming is not None:
            if not upcoming.task.done() or upcoming.due_ns is None:
                return None
            return self._time.to_media(upcoming.due_ns)
        end = self._current_end
        if end is None:
            return None
        if now >= end - self._preload_ns:
            return self._time.to_media(max(now, end))  # blank, or continue, at the deadline
        return self._time.to_media(end - self._preload_ns)

    def switches_by(self, at_ns: int) -> bool:
        """True when a prepared item is due at or before ``at_ns`` (a switch frame)."""
        at = self._time.from_media(at_ns)
        upcoming = self._next
        return (
            upcoming is not None
            and upcoming.due_ns is not None
            and upcoming.due_ns <= at
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
