"""Where a layout resumes after something pre-empted it: an interrupt, or the screen's standby.

When a layout leaves the screen the player keeps where its zones stood (``Suspended``). When
the schedule beneath the overlays (interrupts, the slots of entries with a share) brings it
back, ``resume_positions`` says where it starts:

- the same layout, same content, scheduled without a break since it left: where its zones
  would be by now had it played on (each item keeps its absolute deadline);
- the schedule changed to it while it was away (at instant R): from its first items at R,
  played on to now, as if it had started then;
- otherwise (boot, new content, a reload): from its first items, now (None).

The reckoning reads the manifest only, so it works offline and across clock steps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from player._schedule import resolve_at
from player._sequencer import ZonePosition
from player._wall import to_ns
from protocol import Layout, Manifest

MAX_CHANGES = 10_000  # schedule changes walked between leaving and coming back


def content_key(manifest: Manifest, layout: Layout) -> str:
    """Identifies what a layout plays: equal keys need no reload (a schedule-only edit)."""
    parts = [manifest.timezone, layout.model_dump_json()]
    parts += [manifest.playlist(z.playlist).model_dump_json() for z in layout.zones]
    if manifest.sync is not None:
        parts.append(manifest.sync.model_dump_json())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Suspended:
    """A layout that left the screen, its content key and where its zones stood."""

    key: str
    layout: str
    positions: dict[str, ZonePosition]
    at: dt.datetime


def resume_positions(
    manifest: Manifest,
    layout: Layout,
    key: str,
    suspended: Suspended | None,
    start: dt.datetime,
    *,
    playable: Callable[[Layout], bool] | None = None,
) -> dict[str, ZonePosition] | None:
    """Where ``layout`` (content ``key``) starting at ``start`` would have been; None: anew."""
    if suspended is None or start < suspended.at:
        return None
    beneath = resolve_at(manifest, suspended.at, playable=playable, interrupts=False, shares=False)
    current = beneath.layout.id if beneath.layout else None
    began: dt.datetime | None = None if current == suspended.layout else suspended.at
    change = beneath.next_change
    for _ in range(MAX_CHANGES):
        if change is None or change > start:
            break
        beneath = resolve_at(manifest, change, playable=playable, interrupts=False, shares=False)
        now_playing = beneath.layout.id if beneath.layout else None
        if now_playing != current:
            current, began = now_playing, change
        change = beneath.next_change
    if current != layout.id:
        return None
    if began is None:
        return dict(suspended.positions) if suspended.key == key else None
    return {zone.id: ZonePosition(None, to_ns(began)) for zone in layout.zones}
