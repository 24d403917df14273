"""How long the event loop stays busy: a probe for benchmarks and the simulator.

Everything the player does runs on one event loop, so a callback that runs for 40 ms delays
every frame, switch and sync task by up to 40 ms. The probe is a task that asks to be woken
every millisecond, and measures two things between wake-ups:

- *busy*: the CPU time the loop's thread spent (``time.thread_time``): code that ran on the
  loop without yielding. This is what a change to the player moves, load or no load.
- *late*: how much later than asked the probe woke (wall time). It adds what the machine did
  to the loop: other processes taking the CPU, other threads holding the GIL. On a quiet
  machine the two agree; on a loaded one *late* is the larger.

It costs a thousand wake-ups a second: a measuring instrument, not something the daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

PERIOD_S = 0.001


class LoopStallProbe:
    """Records the loop's stalls while started (``async with probe.running():``)."""

    def __init__(self, period_s: float = PERIOD_S) -> None:
        self.period_s = period_s
        self.stalls_ns: list[int] = []  # one per wake-up: how late it came
        self.busy_ns: list[int] = []  # one per wake-up: the loop thread's CPU time since the last
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LoopStallProbe]:
        self._task = asyncio.create_task(self._run(), name="loop-stall-probe")
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        period_ns = int(self.period_s * 1e9)
        cpu = time.thread_time_ns()
        while True:
            due = time.monotonic_ns() + period_ns
            await asyncio.sleep(self.period_s)
            self.stalls_ns.append(max(0, time.monotonic_ns() - due))
            now_cpu = time.thread_time_ns()
            self.busy_ns.append(now_cpu - cpu)
            cpu = now_cpu

    @property
    def max_ms(self) -> float:
        """The longest wake-up came this late (0 before any sample): a stall as the loop's
        callbacks felt it, whatever caused it."""
        return max(self.stalls_ns, default=0) / 1e6

    @property
    def max_busy_ms(self) -> float:
        """The most CPU time the loop's thread spent between two wake-ups: the longest our own
        code held the loop."""
        return max(self.busy_ns, default=0) / 1e6

    def percentile_ms(self, q: float) -> float:
        if not self.stalls_ns:
            return 0.0
        ordered = sorted(self.stalls_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    def over(self, limit_ms: float) -> int:
        """How many stalls lasted longer than ``limit_ms``."""
        limit_ns = limit_ms * 1e6
        return sum(1 for s in self.stalls_ns if s > limit_ns)

    def reset(self) -> None:
        self.stalls_ns.clear()
        self.busy_ns.clear()
