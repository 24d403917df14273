"""Windows of local time as intervals of absolute time: schedule entries, item validity, power.

A window (``protocol.Window``, or the same fields on a schedule entry) opens once per local
start date D (within ``start``..``end``, on one of ``days``): from the first instant the local
wall clock reads ``from`` on D to the first instant after that it reads ``to`` (on D+1 when
``to`` is earlier: the window crosses midnight and belongs to the day it starts on). Without
``from``/``to`` it is the whole local day. Intervals of absolute time settle the DST cases:

- spring forward: a ``from`` inside the skipped hour opens at the transition; a window wholly
  inside the skipped hour plays its nominal length from the transition (nothing is skipped);
- fall back: a time that occurs twice means its first occurrence, so a window never opens twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

from player._clock import NS_PER_S
from protocol import DAYS, WindowFields, minutes_of

UTC = dt.UTC
HORIZON_DAYS = 8  # covers a whole week of day-of-week patterns plus a midnight crossing
_CACHE_MAX = 4096  # windows remembered per evaluator (a long-running zone's stays bounded)


HOUR_NS = 3600 * NS_PER_S


def hour_start_ns(at_ns: int, tz: ZoneInfo) -> int:
    """The start of the local hour holding ``at_ns`` (wall ns since the epoch)."""
    local = dt.datetime.fromtimestamp(at_ns // NS_PER_S, tz)
    return at_ns - (local.minute * 60 + local.second) * NS_PER_S - at_ns % NS_PER_S


def first_instant(date: dt.date, minutes: int, tz: ZoneInfo) -> dt.datetime:
    """The first UTC instant at which the local wall clock reads ``date`` + ``minutes`` or later."""
    day = date + dt.timedelta(days=minutes // 1440)
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes % 1440)
    first = naive.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == naive:
        return utc
    # In the spring-forward gap: the answer is the transition, between the two readings.
    low = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    high = int(utc.timestamp())
    while high - low > 1:
        mid = (low + high) // 2
        if dt.datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            high = mid
        else:
            low = mid
    return dt.datetime.fromtimestamp(high, UTC)


def runs_on(window: WindowFields, date: dt.date) -> bool:
    """Whether ``window`` opens on local ``date``."""
    if window.start is not None and date < window.start:
        return False
    if window.end is not None and date > window.end:
        return False
    return window.days is None or DAYS[date.weekday()] in window.days


def window(entry: WindowFields, date: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The absolute [start, end) of ``entry``'s window that starts on local ``date``."""
    if entry.from_ is None or entry.to is None:
        begin, finish = 0, 1440
    else:
        begin, finish = minutes_of(entry.from_), minutes_of(entry.to)
        if finish <= begin:
            finish += 1440
    start = first_instant(date, begin, tz)
    end = first_instant(date, finish, tz)
    nominal = dt.timedelta(minutes=finish - begin)
    if end - start < nominal and end - start < dt.timedelta(minutes=1):
        end = start + nominal  # wholly inside a skipped hour: play it from the transition
    return start, end


class Windows:
    """Windows by (window, local date), each computed once.

    A scheduler evaluates many instants against the same windows; without the cache that is a
    time-zone conversion per window per instant.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._cache: dict[tuple[int, dt.date], tuple[dt.datetime, dt.datetime] | None] = {}
        self._keep: dict[int, WindowFields] = {}  # id() stays meaningful while cached

    def get(self, entry: WindowFields, date: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        key = (id(entry), date)
        if key not in self._cache:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
                self._keep.clear()
            self._keep[id(entry)] = entry
            self._cache[key] = window(entry, date, self.tz) if runs_on(entry, date) else None
        return self._cache[key]

    def today(self, when: dt.datetime) -> dt.date:
        return when.astimezone(self.tz).date()

    def active(self, entry: WindowFields, when: dt.datetime, today: dt.date | None = None) -> bool:
        """Whether one of ``entry``'s windows contains ``when``."""
        today = self.today(when) if today is None else today
        for date in (today - dt.timedelta(days=1), today):
            span = self.get(entry, date)
            if span is not None and span[0] <= when < span[1]:
                return True
        return False

    def any_active(self, entries: Iterable[WindowFields], when: dt.datetime) -> bool:
        today = self.today(when)
        return any(self.active(e, when, today) for e in entries)

    def edges_after(self, entries: Sequence[WindowFields], when: dt.datetime) -> list[dt.datetime]:
        """Every instant after ``when`` at which one of ``entries`` opens or closes, within the
        horizon (a week ahead, and around each future ``start``/``end`` date), sorted."""
        today = self.today(when)
        instants: set[dt.datetime] = set()
        for date in boundary_dates(entries, today):
            for entry in entries:
                span = self.get(entry, date)
                if span is not None:
                    instants.update(i for i in span if i > when)
        return sorted(instants)

    def next_change(self, entries: Sequence[WindowFields], when: dt.datetime) -> dt.datetime | None:
        """The first instant after ``when`` at which "one of ``entries`` is active" changes."""
        now = self.any_active(entries, when)
        for instant in self.edges_after(entries, when):
            if self.any_active(entries, instant) != now:
                return instant
        return None


def boundary_dates(entries: Iterable[WindowFields], today: dt.date) -> Iterator[dt.date]:
    """Local dates whose windows can hold the next changes after ``today``."""
    around = {today + dt.timedelta(days=d) for d in range(-2, HORIZON_DAYS + 1)}
    for entry in entries:
        for edge, before, after in ((entry.start, 1, HORIZON_DAYS), (entry.end, 1, 1)):
            if edge is not None and edge > today:
                around.update(edge + dt.timedelta(days=d) for d in range(-before, after + 1))
    yield from sorted(around)


def is_active(entry: WindowFields, when: dt.datetime, tz: ZoneInfo) -> bool:
    """Whether one of ``entry``'s windows contains ``when``."""
    return Windows(tz).active(entry, when)
