"""Rate limits: a sliding window per key (``Window``), and per-key locks.

``SlidingWindow`` keeps the window in this process; ``server._redis_state.RedisWindow`` keeps
it in Redis for several replicas, behind the same interface. A limit that guards work which
may fail or succeed (a claim, a token lookup) *reserves* its slot before the work and
releases it when the work succeeded: however many requests run at once, on however many
replicas, at most ``limit`` failures are evaluated per window.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

Clock = Callable[[], float]


class Window(Protocol):
    """At most ``limit`` events per ``window_s`` per key."""

    limit: int
    window_s: float

    async def retry_after(self, key: str) -> int:
        """Seconds until one more event is allowed; 0 when allowed now."""
        ...

    async def hit(self, key: str) -> int:
        """Record an event unless over the limit; Retry-After seconds (0: recorded)."""
        ...

    async def reserve(self, key: str) -> tuple[int, str]:
        """Like ``hit``, and a token that ``release`` takes back (when the work succeeded)."""
        ...

    async def release(self, key: str, token: str) -> None: ...

    async def count(self, key: str) -> int: ...

    async def reset(self, key: str) -> None: ...


class SlidingWindow:
    """A ``Window`` in this process's memory.

    Keys are evicted oldest-first beyond ``max_keys`` so a flood of distinct keys (IPs,
    hardware ids) cannot grow memory without bound.
    """

    def __init__(self, limit: int, window_s: float, clock: Clock, *, max_keys: int = 50_000):
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()
        self._tokens = itertools.count()

    def _recent(self, key: str) -> deque[tuple[float, int]]:
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            events = deque()
            self._events[key] = events
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        while events and events[0][0] <= now - self.window_s:
            events.popleft()
        return events

    def _wait(self, key: str) -> int:
        events = self._recent(key)
        if len(events) < self.limit:
            return 0
        return max(1, math.ceil(events[0][0] + self.window_s - self._clock()))

    def _record(self, key: str) -> tuple[int, str]:
        wait = self._wait(key)
        token = next(self._tokens)
        if wait == 0:
            self._events[key].append((self._clock(), token))
        return wait, str(token)

    async def retry_after(self, key: str) -> int:
        return self._wait(key)

    async def hit(self, key: str) -> int:
        return self._record(key)[0]

    async def reserve(self, key: str) -> tuple[int, str]:
        return self._record(key)

    async def release(self, key: str, token: str) -> None:
        events = self._events.get(key)
        if events is not None:
            for entry in events:
                if str(entry[1]) == token:
                    events.remove(entry)
                    return

    async def count(self, key: str) -> int:
        return len(self._recent(key))

    async def reset(self, key: str) -> None:
        self._events.pop(key, None)


class KeyedLocks:
    """One asyncio lock per key (a client address), dropped when nobody holds or awaits it.

    Makes a rate limit's check, the awaited work it guards and the count one step per key in
    this process, without slowing down other keys.
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
