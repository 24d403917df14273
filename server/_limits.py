"""In-memory rate limits: a sliding window per key, bounded in size."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable

Clock = Callable[[], float]


class SlidingWindow:
    """At most ``limit`` events per ``window_s`` per key.

    Keys are evicted oldest-first beyond ``max_keys`` so a flood of distinct keys (IPs,
    hardware ids) cannot grow memory without bound.
    """

    def __init__(self, limit: int, window_s: float, clock: Clock, *, max_keys: int = 50_000):
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            events = deque()
            self._events[key] = events
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return events

    def retry_after(self, key: str) -> int:
        """Seconds until one more event is allowed; 0 when allowed now."""
        events = self._recent(key)
        if len(events) < self.limit:
            return 0
        return max(1, math.ceil(events[0] + self.window_s - self._clock()))

    def hit(self, key: str) -> int:
        """Record an event unless over the limit; return Retry-After seconds (0: recorded)."""
        wait = self.retry_after(key)
        if wait == 0:
            self._events[key].append(self._clock())
        return wait

    def undo(self, key: str) -> None:
        """Take back the latest event of ``key``: a slot reserved with ``hit`` before an
        outcome was known, returned when the outcome did not count (a right guess).

        Reserving first keeps the check and the count one step, so concurrent requests
        cannot all pass the check before any of them is counted.
        """
        events = self._events.get(key)
        if events:
            events.pop()

    def count(self, key: str) -> int:
        return len(self._recent(key))

    def reset(self, key: str) -> None:
        self._events.pop(key, None)
