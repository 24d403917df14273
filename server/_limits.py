"""In-memory rate limits: a sliding window per key, bounded in size, and per-key locks."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable

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

    def count(self, key: str) -> int:
        return len(self._recent(key))

    def reset(self, key: str) -> None:
        self._events.pop(key, None)


class KeyedLocks:
    """One asyncio lock per key (a client address), dropped when nobody holds or awaits it.

    Makes a rate limit's check, the awaited work it guards and the count one step per key,
    without slowing down other keys.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
