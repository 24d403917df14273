"""The scheduler: which layout plays at a wall-clock instant, and until when.

``resolve`` is a pure function of the manifest and the instant, evaluated on the device, so
schedules work offline and there is no delayed job to cancel or miss. Windows of local time
become intervals of absolute time as ``player._windows`` says (DST included).

Precedence, highest first:

1. interrupts (``manifest.interrupts``) active at the instant: the highest ``priority``, then
   the one that started last, then list order. They start and end at absolute instants, so an
   interrupt expires on time offline too;
2. schedule entries whose window contains the instant: the highest ``priority``, then the
   earlier entry in the list. An entry with a ``share`` (a campaign asking for a share of
   airtime) counts only inside its slots: n slots of ``slot_ms`` per local hour, each centred
   in an n-th of the hour (``hour + (j + 1/2) * 3600 s / n``), so it takes over from the
   entries of lower priority that often, and they resume where they would be;
3. ``default_layout``.

A layout for which ``playable`` says no (its assets are not all verified) is passed over for
the next candidate. ``interrupts=False`` answers for the schedule beneath the interrupts: what
would play had no interrupt been sent (the layout that resumes after one); ``shares=False``
likewise leaves out the entries with a share (the layout their slots take time from).
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from player._clock import NS_PER_MS, NS_PER_S
from player._wall import from_ns, to_ns
from player._windows import HOUR_NS, Windows, hour_start_ns, is_active, window
from protocol import Interrupt, Layout, Manifest, ScheduleEntry

UTC = dt.UTC

__all__ = ["Resolution", "is_active", "resolve", "resolve_at", "share_slots", "window"]


@dataclass(frozen=True)
class Resolution:
    """What plays at an instant, until when, and the interrupt or the share entry that chose
    it (an overlay: the layout beneath resumes after it)."""

    layout: Layout | None
    next_change: dt.datetime | None
    interrupt: Interrupt | None = None
    share: ScheduleEntry | None = None

    @property
    def overlay(self) -> bool:
        return self.interrupt is not None or self.share is not None


def _slot(entry: ScheduleEntry, hour_ns: int, j: int) -> tuple[int, int]:
    assert entry.share is not None
    count = entry.share.slots_per_hour()
    length = entry.share.slot_ms * NS_PER_MS
    # Whole microseconds (wall times are datetimes): the edges resolve() reports are exact.
    start = hour_ns + (2 * j + 1) * (HOUR_NS // 1000) // (2 * count) * 1000 - length // 2
    return start, start + length


def share_slots(entry: ScheduleEntry, hour_ns: int) -> list[tuple[int, int]]:
    """[start, end) (wall ns) of ``entry``'s slots in the local hour starting at ``hour_ns``
    (its window aside)."""
    if entry.share is None:
        return []
    return [_slot(entry, hour_ns, j) for j in range(entry.share.slots_per_hour())]


def _first_slot(entry: ScheduleEntry, hour_ns: int, at_ns: int) -> int:
    """The index of the first slot of the hour ending after ``at_ns`` (or the count)."""
    assert entry.share is not None
    count = entry.share.slots_per_hour()
    j = max(0, (at_ns - hour_ns) * count // HOUR_NS - 1)
    while j < count and _slot(entry, hour_ns, j)[1] <= at_ns:
        j += 1
    return j


def _in_slot(entry: ScheduleEntry, when: dt.datetime, windows: Windows) -> bool:
    assert entry.share is not None
    at = to_ns(when)
    hour = hour_start_ns(at, windows.tz)
    j = _first_slot(entry, hour, at)
    return j < entry.share.slots_per_hour() and _slot(entry, hour, j)[0] <= at


def _slot_start(entry: ScheduleEntry | None, when: dt.datetime, windows: Windows) -> int | None:
    """The start (wall ns) of ``entry``'s slot holding ``when``: each slot is a play of its own,
    also where slots touch (a share that fills the hour)."""
    if entry is None or entry.share is None:
        return None
    at = to_ns(when)
    hour = hour_start_ns(at, windows.tz)
    j = _first_slot(entry, hour, at)
    return _slot(entry, hour, j)[0] if j < entry.share.slots_per_hour() else None


def _interrupts_at(manifest: Manifest, when: dt.datetime) -> list[Interrupt]:
    active = [i for i in manifest.interrupts if i.active(when)]
    # sorted() is stable: list order breaks the remaining ties.
    return sorted(active, key=lambda i: (-i.priority, -i.starts_at.timestamp()))


Chosen = tuple[Layout | None, Interrupt | None, ScheduleEntry | None]


def _choose(
    manifest: Manifest,
    when: dt.datetime,
    windows: Windows,
    playable: Callable[[Layout], bool] | None,
    interrupts: bool,
    shares: bool,
) -> Chosen:
    candidates: list[tuple[str, Interrupt | None, ScheduleEntry | None]] = []
    if interrupts:
        candidates += [(i.layout, i, None) for i in _interrupts_at(manifest, when)]
    today = windows.today(when)
    ranked = sorted(
        (
            e
            for e in manifest.schedule
            if windows.active(e, when, today)
            and (e.share is None or (shares and _in_slot(e, when, windows)))
        ),
        key=lambda e: -e.priority,  # sorted() is stable: list order breaks ties
    )
    candidates += [(e.layout, None, e if e.share is not None else None) for e in ranked]
    if manifest.default_layout is not None:
        candidates.append((manifest.default_layout, None, None))
    for layout_id, interrupt, share in candidates:
        layout = manifest.layout(layout_id)
        if playable is None or playable(layout):
            return layout, interrupt, share
    return None, None, None


def _boundaries(
    manifest: Manifest, when: dt.datetime, windows: Windows, interrupts: bool, shares: bool
) -> Iterator[dt.datetime]:
    """The instants after ``when`` at which the answer may change, in order: window edges,
    interrupts' starts and ends, and the edges of share entries' slots.

    Slots recur every hour, so their edges are generated lazily, for the two hours after
    ``when`` and after each window edge: the first change a slot can make is among them (a
    later slot is preceded by one of these, or by a window edge where the answer changes).
    """
    edges = set(windows.edges_after(manifest.schedule, when))
    if interrupts:
        for interrupt in manifest.interrupts:
            for edge in (interrupt.starts_at, interrupt.ends_at):
                if edge is not None and edge > when:
                    edges.add(edge.astimezone(UTC))
    shared = [e for e in manifest.schedule if e.share is not None] if shares else []
    after = to_ns(when)
    pending: list[tuple[int, int, Iterator[int]]] = []
    order = itertools.count()

    def anchor(at_ns: int) -> None:
        for entry in shared:
            slots = _slot_edges(entry, at_ns, windows)
            first = next(slots, None)
            if first is not None:
                heapq.heappush(pending, (first, next(order), slots))

    anchor(after)
    last = after
    for edge in [*sorted(edges), None]:
        limit = None if edge is None else to_ns(edge)
        while pending and (limit is None or pending[0][0] < limit):
            at_ns, _, slots = heapq.heappop(pending)
            following = next(slots, None)
            if following is not None:
                heapq.heappush(pending, (following, next(order), slots))
            if at_ns > last:
                last = at_ns
                yield from_ns(at_ns)
        if edge is not None and limit is not None:
            if limit > last:
                last = limit
                yield edge
            anchor(limit)


def _slot_edges(entry: ScheduleEntry, after_ns: int, windows: Windows) -> Iterator[int]:
    """The edges of ``entry``'s slots after ``after_ns``, in order, for two local hours."""
    assert entry.share is not None
    count = entry.share.slots_per_hour()
    hour = hour_start_ns(after_ns, windows.tz)
    for _ in range(2):
        for j in range(_first_slot(entry, hour, after_ns), count):
            for edge in _slot(entry, hour, j):
                if edge > after_ns:
                    yield edge
        hour = hour_start_ns(hour + HOUR_NS + NS_PER_S, windows.tz)


def resolve_at(
    manifest: Manifest,
    wall_time: dt.datetime,
    *,
    playable: Callable[[Layout], bool] | None = None,
    interrupts: bool = True,
    shares: bool = True,
) -> Resolution:
    """The layout to play at ``wall_time``, the first later instant the answer changes (None
    when nothing changes it any more) and the interrupt or share entry behind it.

    Readiness (``playable``) is not predicted: when assets arrive, resolve again.
    """
    if wall_time.tzinfo is None:
        raise ValueError(f"wall_time must be timezone-aware, got {wall_time!r}")
    windows = Windows(ZoneInfo(manifest.timezone))
    when = wall_time.astimezone(UTC)
    current, interrupt, share = _choose(manifest, when, windows, playable, interrupts, shares)
    key = _key(current, interrupt, share, _slot_start(share, when, windows))
    for instant in _boundaries(manifest, when, windows, interrupts, shares):
        layout, by, slot_owner = _choose(manifest, instant, windows, playable, interrupts, shares)
        if _key(layout, by, slot_owner, _slot_start(slot_owner, instant, windows)) != key:
            return Resolution(current, instant, interrupt, share)
    return Resolution(current, None, interrupt, share)


def _key(
    layout: Layout | None,
    interrupt: Interrupt | None,
    share: ScheduleEntry | None,
    slot: int | None,
) -> tuple[str | None, str | None, str | None, int | None]:
    # Another interrupt (or slot owner, or the next slot) showing the same layout is a change.
    return (
        layout.id if layout else None,
        interrupt.id if interrupt else None,
        share.id if share else None,
        slot,
    )


def resolve(
    manifest: Manifest,
    wall_time: dt.datetime,
    *,
    playable: Callable[[Layout], bool] | None = None,
    interrupts: bool = True,
    shares: bool = True,
) -> tuple[Layout | None, dt.datetime | None]:
    """``(layout, next_change_at)``: ``resolve_at`` without the interrupt."""
    resolution = resolve_at(
        manifest, wall_time, playable=playable, interrupts=interrupts, shares=shares
    )
    return resolution.layout, resolution.next_change
