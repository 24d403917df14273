"""Wall time for schedules, mapped from the media clock.

A Raspberry Pi has no real-time clock: after a power cut the system clock starts wherever it
was saved and is stepped when NTP syncs. So wall time is ``media time + offset``. While the
system clock is synchronised the offset follows it; until then the sync layer feeds the
server's time (``feed_server_time``) and the offset comes from that. On a device of a sync
group, wall time is group time (``follow``: ``player._timebase``) as soon as it is known, so
schedule boundaries and item deadlines fall on the same instant on every screen. Whenever the
offset moves by more than ``jump_threshold_ns`` (an NTP step, a manual change, the first server
time) the listeners hear about it, and the player re-evaluates its schedule: nothing stalls
waiting for a wall-clock instant that moved, nothing plays twice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import functools
import logging
from collections.abc import Callable

from player._clock import NS_PER_S, Clock
from player._timebase import Timebase

log = logging.getLogger(__name__)

_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # find_library runs ldconfig: once per process, not at every clock check.
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def system_clock_synchronised() -> bool:
    """True when the kernel says an NTP client has disciplined the clock (adjtimex)."""
    libc = _libc()
    if libc is None:
        return False
    try:
        # struct timex is < 256 bytes everywhere; modes=0 only reads the state.
        buffer = ctypes.create_string_buffer(512)
        state = int(libc.adjtimex(buffer))
    except (OSError, AttributeError):
        return False
    return state not in (-1, _TIME_ERROR)


def to_ns(when: dt.datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"wall times must be timezone-aware, got {when!r}")
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def from_ns(ns: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1_000)


class WallClock:
    """``now()`` as an aware UTC datetime; ``media_ns_of(when)`` for sleeping until a wall time."""

    def __init__(
        self,
        clock: Clock,
        *,
        synchronised: Callable[[], bool] = system_clock_synchronised,
        jump_threshold_ns: int = 2 * NS_PER_S,
    ) -> None:
        self._clock = clock
        self._synchronised = synchronised
        self._threshold = jump_threshold_ns
        self._server_offset: int | None = None
        self._listeners: list[Callable[[int], None]] = []
        self._timebase: Timebase | None = None
        self._offset = self._current_offset()

    def follow(self, timebase: Timebase) -> None:
        """Take wall time from ``timebase`` whenever it has an estimate (group time)."""
        self._timebase = timebase
        timebase.add_listener(self._group_stepped)

    def _group_stepped(self, _step_ns: int) -> None:
        self.check()

    def _group(self) -> Timebase | None:
        timebase = self._timebase
        return timebase if timebase is not None and timebase.synced else None

    @property
    def source(self) -> str:
        """Where wall time comes from now: "group" (a sync group's estimate), "system"
        (synchronised), "server" (heartbeat replies) or "unsynced"."""
        if self._group() is not None:
            return "group"
        if self._synchronised():
            return "system"
        return "server" if self._server_offset is not None else "unsynced"

    def system_ns(self) -> int | None:
        """The system clock while it is synchronised (ns since the epoch), else None."""
        return self._clock.wall_ns() if self._synchronised() else None

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """``callback(jump_ns)`` runs after each jump of the wall clock."""
        self._listeners.append(callback)

    def _current_offset(self) -> int:
        if (group := self._group()) is not None:
            return group.offset_ns(self._clock.now_ns())
        if self._server_offset is not None and not self._synchronised():
            return self._server_offset
        return self._clock.wall_ns() - self._clock.now_ns()

    def check(self) -> int:
        """Re-read the offset; notify the listeners and return the jump when it moved."""
        offset = self._current_offset()
        jump = offset - self._offset
        self._offset = offset
        if abs(jump) < self._threshold:
            return 0
        log.warning(
            "wall clock jumped",
            extra={"fields": {"jump_s": round(jump / NS_PER_S, 3), "source": self.source}},
        )
        for callback in list(self._listeners):
            callback(jump)
        return jump

    def feed_server_time(self, server_time: dt.datetime, *, at_ns: int | None = None) -> None:
        """The server's time at media instant ``at_ns`` (default: now), e.g. a heartbeat reply."""
        at = self._clock.now_ns() if at_ns is None else at_ns
        self._server_offset = to_ns(server_time) - at
        self.check()

    def now_ns(self) -> int:
        return self.ns_at(self._clock.now_ns())

    def now(self) -> dt.datetime:
        return from_ns(self.now_ns())

    def ns_at(self, media_ns: int) -> int:
        """Wall time (ns since the epoch) at a media instant, with the current offset."""
        if (group := self._group()) is not None:
            return group.group_ns(media_ns)
        return media_ns + self._offset

    def media_ns_at(self, wall_ns: int) -> int:
        """The media instant at which the wall clock reads ``wall_ns``."""
        if (group := self._group()) is not None:
            return group.media_ns(wall_ns)
        return wall_ns - self._offset

    def at(self, media_ns: int) -> dt.datetime:
        """The wall time at a media instant, with the current offset."""
        return from_ns(self.ns_at(media_ns))

    def media_ns_of(self, when: dt.datetime) -> int:
        """The media instant at which the wall clock reads ``when`` (with the current offset)."""
        return self.media_ns_at(to_ns(when))

    def wall_ns_at(self, media_ns: int) -> int:
        """``at`` in nanoseconds since the epoch (no rounding to microseconds): group time in
        a sync group."""
        return self.ns_at(media_ns)
