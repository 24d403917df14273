"""Which item a zone plays next: a pure function of its playlist, a cursor and an instant.

At each of a zone's deadlines ``ZonePlan.pick`` chooses the next item, in this order:

1. an item with a ``share`` whose play is due. An item asking for n plays per hour has n
   slots in each local hour, centred in equal parts of it (slot j at
   ``hour + (j + 1/2) * 3600 s / n``), counted only where the item is inside its validity
   window. Its quota for the hour is its slots; a play is due once more slots have passed
   than it played this hour (the item whose next slot came first plays first, then playlist
   order). Near the end of the hour, when the quotas still to play no longer fit in what is
   left of it after the next other item, share items play at once: each hour delivers its
   quotas, counted by start time as proof of play counts them;
2. else the next item without a share, in playlist order, skipping those outside their
   ``valid`` window;
3. else, when no item without a share may play, the items with a share in turn (they fill
   the time rather than leave the zone empty, and those plays count);
4. else nothing: the zone shows the layout's background until ``wake_ns``, the next instant an
   item's validity window opens.

A quota is per hour: slots missed in one hour (an hour shorter than its quotas) are not
carried into the next, so an item never plays in a burst after a gap. Each full hour delivers
exactly the quotas when they and the longest item fit in it (``protocol.Playlist`` refuses
shares above the hour). ``percent`` shares ask for the whole number of plays nearest the
percentage (``protocol.Share.plays_per_hour``), within half a play of it. An item without a
duration (a video to its end) counts as taking no time in that reckoning.

Everything is computed in wall-clock nanoseconds (UTC) and the manifest's time zone, from the
manifest alone: the same manifest and the same instants give the same sequence on any device,
online or not, and the simulator can predict it. ``advance`` fast-forwards a cursor to a later
instant: where the zone would be had it played all along (a layout resuming after an
interrupt, or the screen coming back on).
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from player._clock import NS_PER_MS, NS_PER_S
from player._windows import HOUR_NS, Windows, hour_start_ns
from protocol import Item, Playlist

log = logging.getLogger(__name__)

MAX_STEPS = 200_000  # fast-forward bound: a pathological playlist must not stall the loop


def _from_ns(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1_000)


def _to_ns(when: dt.datetime) -> int:
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


@dataclass(frozen=True)
class Cursor:
    """Where a zone stands in its playlist.

    ``filler``: where the turn of items without a share goes on; ``fill``: the same for items
    with a share when they fill; ``hour``: the local hour (its start, wall ns) ``played``
    counts, per item with a share in playlist order, the plays started in.
    """

    filler: int = 0
    fill: int = 0
    hour: int | None = None
    played: tuple[int, ...] = ()


@dataclass(frozen=True)
class Pick:
    """The item to play (its playlist index; None: none may play) and the cursor after it."""

    index: int | None
    cursor: Cursor
    wake_ns: int | None = None  # index None: when an item may next become valid (None: never)


class ZonePlan:
    """The rules above for one playlist in one time zone."""

    def __init__(self, playlist: Playlist, timezone: str) -> None:
        self.playlist = playlist
        self.items: list[Item] = list(playlist.items)
        self.tz = ZoneInfo(timezone)
        self.shared = [i for i, item in enumerate(self.items) if item.share is not None]
        self.fillers = [i for i, item in enumerate(self.items) if item.share is None]
        self.plays = {i: self.items[i].plays_per_hour() for i in self.shared}
        self._windows = Windows(self.tz)
        self._slots: dict[tuple[int, int], list[int]] = {}
        self._validity_changes: dict[int, tuple[int, int | None]] = {}

    @property
    def simple(self) -> bool:
        """No shares and no validity windows: items play in turn, always."""
        return not self.shared and all(item.valid is None for item in self.items)

    def duration_ns(self, index: int) -> int | None:
        duration = self.items[index].duration_ms
        return None if duration is None else duration * NS_PER_MS

    # -- validity ----------------------------------------------------------------------------

    def valid(self, index: int, at_ns: int) -> bool:
        window = self.items[index].valid
        return window is None or self._windows.active(window, _from_ns(at_ns))

    def _validity_change(self, index: int, at_ns: int) -> int | None:
        """The first instant after ``at_ns`` at which item ``index`` becomes valid or invalid."""
        window = self.items[index].valid
        if window is None:
            return None
        cached = self._validity_changes.get(index)
        if cached is not None and cached[0] <= at_ns and (cached[1] is None or at_ns < cached[1]):
            return cached[1]
        change = self._windows.next_change([window], _from_ns(at_ns))
        # Window edges fall on whole minutes: microseconds lose nothing.
        change_ns = None if change is None else _to_ns(change)
        self._validity_changes[index] = (at_ns, change_ns)
        return change_ns

    def next_validity_change(self, at_ns: int) -> int | None:
        changes = [
            c for i in range(len(self.items)) if (c := self._validity_change(i, at_ns)) is not None
        ]
        return min(changes) if changes else None

    # -- share slots -------------------------------------------------------------------------

    def hour_start(self, at_ns: int) -> int:
        """The start of the local hour holding ``at_ns`` (wall ns)."""
        return hour_start_ns(at_ns, self.tz)

    def slots(self, index: int, hour: int) -> list[int]:
        """When the slots of item ``index`` in the local hour starting at ``hour`` fall, those
        inside its validity window: its quota for that hour."""
        key = (index, hour)
        cached = self._slots.get(key)
        if cached is None:
            if len(self._slots) >= 1024:
                self._slots.clear()
            n = self.plays[index]
            dues = (hour + (2 * j + 1) * HOUR_NS // (2 * n) for j in range(n))
            cached = self._slots[key] = [d for d in dues if self.valid(index, d)]
        return cached

    def _played(self, cursor: Cursor, hour: int) -> tuple[int, ...]:
        if cursor.hour == hour and len(cursor.played) == len(self.shared):
            return cursor.played
        return (0,) * len(self.shared)  # a new hour (or another playlist's cursor)

    # -- the rules ---------------------------------------------------------------------------

    def start(self, at_ns: int) -> Cursor:
        """A zone that starts at ``at_ns``: slots of the hour before it are not owed."""
        hour = self.hour_start(at_ns)
        passed = tuple(bisect.bisect_left(self.slots(i, hour), at_ns) for i in self.shared)
        return Cursor(hour=hour, played=passed)

    def _need_ns(self, hour: int, played: tuple[int, ...]) -> int:
        """Airtime the quotas of ``hour`` still ask for."""
        need = 0
        for index, count in zip(self.shared, played, strict=True):
            left = len(self.slots(index, hour)) - count
            if left > 0:
                need += left * (self.duration_ns(index) or 0)
        return need

    def _due_share(self, cursor: Cursor, at_ns: int, next_other_ns: int | None) -> int | None:
        """Position among the shared items of the one to play at ``at_ns``, if one is due."""
        hour = self.hour_start(at_ns)
        played = self._played(cursor, hour)
        need = self._need_ns(hour, played)
        if need == 0:
            return None
        # Would the next other item leave too little of the hour for the quotas?
        urgent = next_other_ns is None or need + next_other_ns > hour + HOUR_NS - at_ns
        best: tuple[int, int] | None = None
        for position, (index, count) in enumerate(zip(self.shared, played, strict=True)):
            dues = self.slots(index, hour)
            if count >= len(dues) or not self.valid(index, at_ns):
                continue
            if (dues[count] <= at_ns or urgent) and (best is None or dues[count] < best[0]):
                best = (dues[count], position)
        return None if best is None else best[1]

    def pick(self, cursor: Cursor, at_ns: int) -> Pick:
        """The item due at ``at_ns`` after ``cursor`` (see the module docstring)."""
        hour = self.hour_start(at_ns)
        played = self._played(cursor, hour)
        filler = self._next_valid(self.fillers, cursor.filler, at_ns)
        other = None if filler is None else (self.duration_ns(self.fillers[filler]) or 0)
        shared = self._due_share(cursor, at_ns, other)
        if shared is None and filler is not None:
            after = (filler + 1) % len(self.fillers)
            moved = replace(cursor, filler=after, hour=hour, played=played)
            return Pick(self.fillers[filler], moved)
        fill = False
        if shared is None:
            shared = self._next_valid(self.shared, cursor.fill, at_ns)
            fill = shared is not None
        if shared is None:
            moved = replace(cursor, hour=hour, played=played)
            return Pick(None, moved, self.next_validity_change(at_ns))
        counts = (*played[:shared], played[shared] + 1, *played[shared + 1 :])
        moved = replace(cursor, hour=hour, played=counts)
        if fill:
            moved = replace(moved, fill=(shared + 1) % len(self.shared))
        return Pick(self.shared[shared], moved)

    def _next_valid(self, members: list[int], turn: int, at_ns: int) -> int | None:
        """The position in ``members``, from ``turn`` on in a circle, of the first valid item."""
        for step in range(len(members)):
            position = (turn + step) % len(members)
            if self.valid(members[position], at_ns):
                return position
        return None

    def advance(self, cursor: Cursor, at_ns: int, until_ns: int) -> tuple[Cursor, Pick, int]:
        """Play from ``at_ns`` (a pick due then, after ``cursor``) up to ``until_ns``, by the
        items' durations: ``(cursor before the pick, the pick, the instant it is due)`` of the
        item on screen at ``until_ns``. An item without a duration (a video to its end) stops
        the reckoning: it is the one on screen."""
        t = at_ns
        for _ in range(MAX_STEPS):
            pick = self.pick(cursor, t)
            if pick.index is None:
                if pick.wake_ns is None or pick.wake_ns > until_ns:
                    return cursor, pick, t
                cursor, t = pick.cursor, pick.wake_ns
                continue
            duration = self.duration_ns(pick.index)
            if duration is None or t + duration > until_ns:
                return cursor, pick, t
            cursor, t = pick.cursor, t + duration
            t = self._skip_turns(cursor, t, until_ns)
        log.warning(
            "playlist position not reckoned to the end",
            extra={"fields": {"playlist": self.playlist.id, "steps": MAX_STEPS}},
        )
        return cursor, self.pick(cursor, t), t

    def _skip_turns(self, cursor: Cursor, at_ns: int, until_ns: int) -> int:
        """Skip whole turns of the items without a share while nothing else can change: no
        share due, no slot passing, no validity window opening or closing, no hour ending
        (a turn leaves the cursor as it was)."""
        members = [i for i in self.fillers if self.valid(i, at_ns)]
        durations = [d for i in members if (d := self.duration_ns(i)) is not None]
        if not members or len(durations) < len(members):
            return at_ns
        turn = sum(durations)
        hour = self.hour_start(at_ns)
        played = self._played(cursor, hour)
        horizon = min(until_ns, hour + HOUR_NS)
        if (change := self.next_validity_change(at_ns)) is not None:
            horizon = min(horizon, change)
        need = self._need_ns(hour, played)
        if need:
            # Past here the quotas may turn urgent; before it, only a passing slot makes a
            # share due.
            horizon = min(horizon, hour + HOUR_NS - need - max(durations) - turn)
            for index, count in zip(self.shared, played, strict=True):
                dues = self.slots(index, hour)
                if count < len(dues):
                    horizon = min(horizon, dues[count])
        turns = (horizon - at_ns) // turn - 1
        return at_ns + turns * turn if turns > 0 else at_ns
