"""The scheduler: which layout plays at a wall-clock instant, and until when.

``resolve`` is a pure function of the manifest and the instant, evaluated on the device, so
schedules work offline and there is no delayed job to cancel or miss.

Each schedule entry opens one window per local start date D (within ``start``..``end``, on one of
``days``): from the first instant the local wall clock reads ``from`` on D to the first instant
after that it reads ``to`` (on D+1 when ``to`` is earlier: the window crosses midnight and
belongs to the day it starts on). Without ``from``/``to`` the window is the whole local day.
Windows are intervals of absolute time, which settles the DST cases:

- spring forward: a ``from`` inside the skipped hour opens at the transition; a window wholly
  inside the skipped hour plays its nominal length from the transition (nothing is skipped);
- fall back: a time that occurs twice means its first occurrence, so a window never plays twice.

Among the entries whose window contains the instant, the highest ``priority`` wins, then the
earlier entry in the list; with none, ``default_layout``. A layout for which ``playable`` says
no (its assets are not all verified) is passed over for the next candidate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

from protocol import DAYS, Layout, Manifest, ScheduleEntry, minutes_of

UTC = dt.UTC
_HORIZON_DAYS = 8  # covers a whole week of day-of-week patterns plus a midnight crossing


def _first_instant(date: dt.date, minutes: int, tz: ZoneInfo) -> dt.datetime:
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


def _runs_on(entry: ScheduleEntry, date: dt.date) -> bool:
    if entry.start is not None and date < entry.start:
        return False
    if entry.end is not None and date > entry.end:
        return False
    return entry.days is None or DAYS[date.weekday()] in entry.days


def window(entry: ScheduleEntry, date: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The absolute [start, end) of ``entry``'s window that starts on local ``date``."""
    if entry.from_ is None or entry.to is None:
        begin, finish = 0, 1440
    else:
        begin, finish = minutes_of(entry.from_), minutes_of(entry.to)
        if finish <= begin:
            finish += 1440
    start = _first_instant(date, begin, tz)
    end = _first_instant(date, finish, tz)
    nominal = dt.timedelta(minutes=finish - begin)
    if end - start < nominal and end - start < dt.timedelta(minutes=1):
        end = start + nominal  # wholly inside a skipped hour: play it from the transition
    return start, end


def is_active(entry: ScheduleEntry, when: dt.datetime, tz: ZoneInfo) -> bool:
    """Whether one of ``entry``'s windows contains ``when``."""
    return _Windows(tz).active(entry, when, when.astimezone(tz).date())


class _Windows:
    """Windows by (entry, local date), computed once per ``resolve`` call.

    ``resolve`` evaluates the schedule at every candidate boundary; without the cache that is
    a time-zone conversion per entry per candidate, quadratic in the schedule's length.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._cache: dict[tuple[int, dt.date], tuple[dt.datetime, dt.datetime] | None] = {}

    def get(self, entry: ScheduleEntry, date: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        key = (id(entry), date)
        if key not in self._cache:
            self._cache[key] = window(entry, date, self.tz) if _runs_on(entry, date) else None
        return self._cache[key]

    def active(self, entry: ScheduleEntry, when: dt.datetime, today: dt.date) -> bool:
        for date in (today - dt.timedelta(days=1), today):
            span = self.get(entry, date)
            if span is not None and span[0] <= when < span[1]:
                return True
        return False


def _choose(
    manifest: Manifest,
    when: dt.datetime,
    windows: _Windows,
    playable: Callable[[Layout], bool] | None,
) -> Layout | None:
    today = when.astimezone(windows.tz).date()
    ranked = sorted(
        (e for e in manifest.schedule if windows.active(e, when, today)),
        key=lambda e: -e.priority,  # sorted() is stable: list order breaks ties
    )
    candidates = [e.layout for e in ranked]
    if manifest.default_layout is not None:
        candidates.append(manifest.default_layout)
    for layout_id in candidates:
        layout = manifest.layout(layout_id)
        if playable is None or playable(layout):
            return layout
    return None


def _boundary_dates(manifest: Manifest, today: dt.date) -> Iterator[dt.date]:
    around = {today + dt.timedelta(days=d) for d in range(-2, _HORIZON_DAYS + 1)}
    for entry in manifest.schedule:
        for edge, before, after in ((entry.start, 1, _HORIZON_DAYS), (entry.end, 1, 1)):
            if edge is not None and edge > today:
                around.update(edge + dt.timedelta(days=d) for d in range(-before, after + 1))
    yield from sorted(around)


def _boundaries(manifest: Manifest, when: dt.datetime, windows: _Windows) -> list[dt.datetime]:
    today = when.astimezone(windows.tz).date()
    instants: set[dt.datetime] = set()
    for date in _boundary_dates(manifest, today):
        for entry in manifest.schedule:
            span = windows.get(entry, date)
            if span is not None:
                instants.update(i for i in span if i > when)
    return sorted(instants)


def resolve(
    manifest: Manifest,
    wall_time: dt.datetime,
    *,
    playable: Callable[[Layout], bool] | None = None,
) -> tuple[Layout | None, dt.datetime | None]:
    """The layout to play at ``wall_time`` and the first later instant the answer changes.

    ``next_change_at`` is None when nothing in the schedule changes the answer any more.
    Readiness (``playable``) is not predicted: when assets arrive, resolve again.
    """
    if wall_time.tzinfo is None:
        raise ValueError(f"wall_time must be timezone-aware, got {wall_time!r}")
    windows = _Windows(ZoneInfo(manifest.timezone))
    when = wall_time.astimezone(UTC)
    current = _choose(manifest, when, windows, playable)
    current_id = current.id if current else None
    for instant in _boundaries(manifest, when, windows):
        chosen = _choose(manifest, instant, windows, playable)
        if (chosen.id if chosen else None) != current_id:
            return current, instant
    return current, None
