"""Media clocks: the monotonic one the player runs on, and a virtual one for tests and simulation.

Every deadline in the player is an absolute instant on a media clock (nanoseconds), never a
chained ``sleep(duration)``, so error does not accumulate. ``VirtualClock`` has the same
interface but its time only moves when the driver advances it, jumping straight from one
deadline to the next: a day of schedule runs in seconds and every result is deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from typing import Protocol

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class Clock(Protocol):
    """What the player needs from a clock. All methods run on the event-loop thread."""

    def now_ns(self) -> int:
        """Media time: monotonic, arbitrary origin."""
        ...

    def wall_ns(self) -> int:
        """The system's wall clock (ns since the Unix epoch); it may jump."""
        ...

    async def sleep_until(self, deadline_ns: int | None, wake: asyncio.Event | None = None) -> bool:
        """Wait until ``deadline_ns`` (None: no deadline) or until ``wake`` is set.

        True when woken by ``wake``.
        """
        ...

    def busy(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Mark work in progress that time must not run past (a decode in a thread)."""
        ...


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class MediaClock:
    """The real media clock, on ``time.monotonic_ns()`` (does not jump with NTP or the RTC)."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def wall_ns(self) -> int:
        return time.time_ns()

    async def sleep_until(self, deadline_ns: int | None, wake: asyncio.Event | None = None) -> bool:
        delay = (
            None
            if deadline_ns is None
            else max(0.0, (deadline_ns - time.monotonic_ns()) / NS_PER_S)
        )
        if wake is None:
            if delay is None:
                raise ValueError("sleeping forever needs a wake event")
            await asyncio.sleep(delay)
            return False
        if wake.is_set():
            return True
        try:
            await asyncio.wait_for(wake.wait(), delay)
        except TimeoutError:
            return False
        return True

    @contextlib.asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        yield


class VirtualClock:
    """A discrete-event clock: time stands still until ``advance_to`` moves it.

    ``advance_to(t)`` visits every pending deadline up to ``t`` in order, waking its sleepers and
    letting the loop settle (including work marked ``busy``) before the next one, so code under
    test sees exactly the instants it asked for. ``run_forever()`` advances whenever nothing is
    runnable: the simulator's "as fast as possible" mode.
    """

    def __init__(self, *, start_ns: int = 0, wall_start_ns: int | None = None) -> None:
        self._now = start_ns
        wall = time.time_ns() if wall_start_ns is None else wall_start_ns
        self._wall_offset = wall - start_ns
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._busy = 0

    def now_ns(self) -> int:
        return self._now

    def wall_ns(self) -> int:
        return self._now + self._wall_offset

    def step_wall(self, delta_ns: int) -> None:
        """Make the simulated system clock jump (an NTP step, a manual change)."""
        self._wall_offset += delta_ns

    async def sleep_until(self, deadline_ns: int | None, wake: asyncio.Event | None = None) -> bool:
        if wake is not None and wake.is_set():
            return True
        if deadline_ns is None:
            if wake is None:
                raise ValueError("sleeping forever needs a wake event")
            await wake.wait()
            return True
        if deadline_ns <= self._now:
            await asyncio.sleep(0)
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_ns, next(self._seq), future))
        if wake is None:
            await future
            return False
        waiter: asyncio.Future[bool] = asyncio.ensure_future(wake.wait())
        waiter.add_done_callback(lambda _: _resolve(future))
        try:
            await future
        finally:
            waiter.cancel()
            future.cancel()
        return wake.is_set()

    @contextlib.asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    @property
    def is_busy(self) -> bool:
        """Work marked ``busy`` is running: the clock waits for it before it moves on."""
        return self._busy > 0

    def next_deadline(self) -> int | None:
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    async def settle(self) -> None:
        """Let every runnable task run, and every ``busy`` section finish, at the current time."""
        quiet_rounds = 0
        while quiet_rounds < 2:  # twice: what finished busy work schedules must run too
            for _ in range(50):
                await asyncio.sleep(0)
            if self._busy == 0:
                quiet_rounds += 1
                continue
            quiet_rounds = 0
            # Work in a thread (a decode) needs real time; the virtual clock waits for it.
            await asyncio.sleep(0.002)

    async def advance_to(self, target_ns: int) -> None:
        await self.settle()
        while (deadline := self.next_deadline()) is not None and deadline <= target_ns:
            self._now = max(self._now, deadline)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            await self.settle()
        self._now = max(self._now, target_ns)
        await self.settle()

    async def advance(self, delta_ns: int) -> None:
        await self.advance_to(self._now + delta_ns)

    async def run_forever(self) -> None:
        """Jump to the next deadline whenever the loop is idle (until cancelled)."""
        while True:
            await self.settle()
            deadline = self.next_deadline()
            if deadline is None:
                await asyncio.sleep(0.001)
                continue
            await self.advance_to(deadline)
