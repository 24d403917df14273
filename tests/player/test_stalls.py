"""The loop-stall probe sees a callback that holds the loop, and little else."""

from __future__ import annotations

import asyncio
import time

from player import LoopStallProbe


def _hold_the_loop(seconds: float) -> None:
    """Compute for ``seconds`` of this thread's CPU time (wall time may be longer: load)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def test_a_callback_that_holds_the_loop_is_a_stall_of_its_length() -> None:
    probe = LoopStallProbe()
    async with probe.running():
        await asyncio.sleep(0.02)
        asyncio.get_running_loop().call_soon(_hold_the_loop, 0.05)
        await asyncio.sleep(0.05)
    # Our code, on the loop thread. The hold may begin up to one period before the probe's next
    # tick is due, so its lateness can be a period shorter than the busy time it reports.
    assert 45 <= probe.max_busy_ms <= probe.max_ms + probe.period_s * 1000 + 1
    assert probe.max_ms < 5000
    assert probe.over(40) >= 1
    assert len(probe.stalls_ns) > 5


async def test_an_idle_loop_has_no_stall_of_a_frame() -> None:
    probe = LoopStallProbe()
    async with probe.running():
        await asyncio.sleep(0.05)
    assert probe.stalls_ns and probe.percentile_ms(0.5) < 16.7


async def test_waiting_on_another_thread_is_late_but_not_busy() -> None:
    probe = LoopStallProbe()
    async with probe.running():
        await asyncio.sleep(0.01)
        asyncio.get_running_loop().call_soon(time.sleep, 0.05)  # blocked, not computing
        await asyncio.sleep(0.05)
    assert probe.max_ms >= 45
    assert probe.max_busy_ms < 20
