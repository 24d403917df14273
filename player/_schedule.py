"""The scheduler: which layout plays at a wall-clock instant, and until when.

``resolve`` is a pure function of the manifest and the instant, evaluated on the device, so
schedules work offline and there is no delayed job to cancel or miss. Windows of local time
become intervals of absolute time as ``player._windows`` says (DST included).

Precedence, highest first:

1. interrupts (``manifest.interrupts``) active at the instant: the highest ``priority``, then
   the one that started last, then list order. They start and end at absolute instants, so an
   interrupt expires on time offline too;
2. schedule entries whose window contains the instant: the highest ``priority``, then the
   earlier entry in the list;
3. ``default_layout``.

A layout for which ``playable`` says no (its assets are not all verified) is passed over for
the next candidate. ``interrupts=False`` answers for the schedule beneath the interrupts: what
would play had no interrupt been sent (the layout that resumes after one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from player._windows import Windows, is_active, window
from protocol import Interrupt, Layout, Manifest

UTC = dt.UTC

__all__ = ["Resolution", "is_active", "resolve", "resolve_at", "window"]


@dataclass(frozen=True)
class Resolution:
    """What plays at an instant, until when, and the interrupt that chose it (if one did)."""

    layout: Layout | None
    next_change: dt.datetime | None
    interrupt: Interrupt | None = None


def _interrupts_at(manifest: Manifest, when: dt.datetime) -> list[Interrupt]:
    active = [i for i in manifest.interrupts if i.active(when)]
    # sorted() is stable: list order breaks the remaining ties.
    return sorted(active, key=lambda i: (-i.priority, -i.starts_at.timestamp()))


def _choose(
    manifest: Manifest,
    when: dt.datetime,
    windows: Windows,
    playable: Callable[[Layout], bool] | None,
    interrupts: bool,
) -> tuple[Layout | None, Interrupt | None]:
    candidates: list[tuple[str, Interrupt | None]] = []
    if interrupts:
        candidates += [(i.layout, i) for i in _interrupts_at(manifest, when)]
    today = windows.today(when)
    ranked = sorted(
        (e for e in manifest.schedule if windows.active(e, when, today)),
        key=lambda e: -e.priority,  # sorted() is stable: list order breaks ties
    )
    candidates += [(e.layout, None) for e in ranked]
    if manifest.default_layout is not None:
        candidates.append((manifest.default_layout, None))
    for layout_id, interrupt in candidates:
        layout = manifest.layout(layout_id)
        if playable is None or playable(layout):
            return layout, interrupt
    return None, None


def _boundaries(
    manifest: Manifest, when: dt.datetime, windows: Windows, interrupts: bool
) -> list[dt.datetime]:
    instants = set(windows.edges_after(manifest.schedule, when))
    if interrupts:
        for interrupt in manifest.interrupts:
            for edge in (interrupt.starts_at, interrupt.ends_at):
                if edge is not None and edge > when:
                    instants.add(edge.astimezone(UTC))
    return sorted(instants)


def resolve_at(
    manifest: Manifest,
    wall_time: dt.datetime,
    *,
    playable: Callable[[Layout], bool] | None = None,
    interrupts: bool = True,
) -> Resolution:
    """The layout to play at ``wall_time``, the first later instant the answer changes (None
    when nothing changes it any more) and the interrupt behind it.

    Readiness (``playable``) is not predicted: when assets arrive, resolve again.
    """
    if wall_time.tzinfo is None:
        raise ValueError(f"wall_time must be timezone-aware, got {wall_time!r}")
    windows = Windows(ZoneInfo(manifest.timezone))
    when = wall_time.astimezone(UTC)
    current, interrupt = _choose(manifest, when, windows, playable, interrupts)
    key = _key(current, interrupt)
    for instant in _boundaries(manifest, when, windows, interrupts):
        if _key(*_choose(manifest, instant, windows, playable, interrupts)) != key:
            return Resolution(current, instant, interrupt)
    return Resolution(current, None, interrupt)


def _key(layout: Layout | None, interrupt: Interrupt | None) -> tuple[str | None, str | None]:
    # Another interrupt showing the same layout is a change too: it ends at another time.
    return (layout.id if layout else None, interrupt.id if interrupt else None)


def resolve(
    manifest: Manifest,
    wall_time: dt.datetime,
    *,
    playable: Callable[[Layout], bool] | None = None,
    interrupts: bool = True,
) -> tuple[Layout | None, dt.datetime | None]:
    """``(layout, next_change_at)``: ``resolve_at`` without the interrupt."""
    resolution = resolve_at(manifest, wall_time, playable=playable, interrupts=interrupts)
    return resolution.layout, resolution.next_change
