"""Rate limits: a sliding window per key (``Window``), and per-key locks.

``SlidingWindow`` keeps the window in this process; ``server._redis_state.RedisWindow`` keeps
it in Redis for several replicas, behind the same interface. A limit that guards work which
may fail or succeed (a claim, a token lookup) *reserves* its slot before the work and
releases it when the work succeeded: however many requests run at once, on however many
replicas, at most ``limit`` failures are evaluated per window. ``reserve_many`` reserves for a
batch of such work in one step; its reservations are told apart from failures until they are
settled, so that a window full only of work in flight (valid tokens being looked up on
another replica) says "ask again" rather than refusing a valid request.

``KeyedBatches`` queues work per key (a client address) and runs it one batch at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

Clock = Callable[[], float]
T = TypeVar("T")
R = TypeVar("R")
# A reservation unsettled this long is a failure like any other (its replica died with it).
RESERVATION_STALE_S = 30.0


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

    async def reserve_many(self, key: str, count: int) -> tuple[int, list[str]]:
        """Reserve up to ``count`` events in one step, as many as the window has room for:
        ``(0, tokens)``; ``(Retry-After, [])`` when it is full; ``(0, [])`` when it is full
        only with reservations not yet settled (ask again in a moment)."""
        ...

    async def settle(self, key: str, released: Sequence[str], kept: Sequence[str]) -> None:
        """End ``reserve_many`` reservations: ``released`` are taken back (the work
        succeeded), ``kept`` stay as events (failures)."""
        ...

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
        self._pending: dict[str, dict[int, float]] = {}  # reserve_many's, unsettled
        self._tokens = itertools.count()

    def _recent(self, key: str) -> deque[tuple[float, int]]:
        now = self._clock()
        events = self._events.get(key)
        if events is None:
            events = deque()
            self._events[key] = events
            while len(self._events) > self._max_keys:
                evicted, _ = self._events.popitem(last=False)
                self._pending.pop(evicted, None)
        self._events.move_to_end(key)
        while events and events[0][0] <= now - self.window_s:
            events.popleft()
        return events

    def _wait(self, key: str) -> int:
        events = self._recent(key)
        if len(events) < self.limit:
            return 0
        return max(1, math.ceil(events[0][0] + self.window_s - self._clock()))

    def _in_flight(self, key: str) -> int:
        pending = self._pending.get(key, {})
        stale = self._clock() - RESERVATION_STALE_S
        for token in [t for t, at in pending.items() if at <= stale]:
            del pending[token]
        return len(pending)

    def _record(self, key: str) -> tuple[int, str]:
        wait = self._wait(key)
        token = next(self._tokens)
        if wait == 0:
            self._events[key].append((self._clock(), token))
        return wait, str(token)

    async def retry_after(self, key: str) -> int:
        # Reservations in flight are not failures (yet): they do not refuse a known credential.
        if len(self._recent(key)) - self._in_flight(key) < self.limit:
            return 0
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

    async def reserve_many(self, key: str, count: int) -> tuple[int, list[str]]:
        events = self._recent(key)
        now = self._clock()
        granted = [next(self._tokens) for _ in range(max(0, min(count, self.limit - len(events))))]
        if granted:
            events.extend((now, token) for token in granted)
            self._pending.setdefault(key, {}).update((token, now) for token in granted)
            return 0, [str(token) for token in granted]
        return (0 if self._in_flight(key) else self._wait(key)), []

    async def settle(self, key: str, released: Sequence[str], kept: Sequence[str]) -> None:
        pending = self._pending.get(key, {})
        for token in (*released, *kept):
            pending.pop(int(token), None)
        if not pending:
            self._pending.pop(key, None)
        gone = set(released)
        events = self._events.get(key)
        if events is not None and gone:
            self._events[key] = deque(e for e in events if str(e[1]) not in gone)

    async def count(self, key: str) -> int:
        return len(self._recent(key))

    async def reset(self, key: str) -> None:
        self._events.pop(key, None)
        self._pending.pop(key, None)


class KeyedBatches(Generic[T, R]):
    """Work queued per key (a client address), done one batch at a time per key in this
    process, each batch taking up to ``size`` of the items queued meanwhile.

    ``work`` gets a batch and returns the outcomes of its first items (at least one), in
    order: a result, or an exception for that item's caller; the items it left wait for the
    next batch. One batch at a time keeps a rate limit's check, the work it guards and the
    count one step per key; batching keeps a crowd behind one address from waiting for one
    round trip each.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._queues: dict[str, deque[tuple[T, asyncio.Future[R]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self, key: str, item: T, work: Callable[[list[T]], Awaitable[Sequence[R | Exception]]]
    ) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            # Its own task: a caller that goes away does not take its neighbours' batch along.
            task = asyncio.create_task(self._drain(key, queue, work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((item, future))
        return await future

    async def _drain(
        self,
        key: str,
        queue: deque[tuple[T, asyncio.Future[R]]],
        work: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
    ) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while queue:
                batch = []
                while queue and len(batch) < self.size:
                    entry = queue.popleft()
                    if not entry[1].done():  # its caller went away
                        batch.append(entry)
                if not batch:
                    continue
                try:
                    outcomes = await work([item for item, _ in batch])
                    if not outcomes:
                        raise RuntimeError("a batch's work did nothing")
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=False):
                    if future.done():
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                queue.extendleft(reversed(batch[len(outcomes) :]))
                batch = []
        finally:
            del self._queues[key]
            for _, future in (*batch, *queue):
                future.cancel()

    def __len__(self) -> int:
        return len(self._queues)
