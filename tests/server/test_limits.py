"""Rate limit windows in this process: batch reservations, told apart from failures until
they are settled."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from server._limits import RESERVATION_STALE_S, KeyedBatches, SlidingWindow
from tests.server.conftest import FakeClock


async def test_a_batch_reserves_as_many_as_the_window_has_room_for() -> None:
    clock = FakeClock()
    window = SlidingWindow(5, 60.0, clock)
    assert await window.hit("ip") == 0
    wait, reserved = await window.reserve_many("ip", 10)
    assert wait == 0 and len(reserved) == 4
    assert await window.retry_after("ip") == 0, "reservations in flight are not failures"
    assert await window.reserve_many("ip", 3) == (0, []), "full with work in flight: ask again"
    await window.settle("ip", released=reserved[:3], kept=reserved[3:])
    assert await window.count("ip") == 2
    wait, again = await window.reserve_many("ip", 10)
    assert wait == 0 and len(again) == 3
    await window.settle("ip", released=[], kept=again)
    wait, none = await window.reserve_many("ip", 1)
    assert wait == 60 and none == [], "full of failures: refused for the window's rest"
    assert await window.retry_after("ip") == 60
    clock.advance(60)
    assert await window.count("ip") == 0


async def test_a_reservation_never_settled_turns_into_a_failure() -> None:
    clock = FakeClock()
    window = SlidingWindow(2, 300.0, clock)
    _, reserved = await window.reserve_many("ip", 2)
    assert len(reserved) == 2
    assert await window.reserve_many("ip", 1) == (0, [])
    clock.advance(RESERVATION_STALE_S)
    wait, _ = await window.reserve_many("ip", 1)
    assert wait > 0, "its replica died with it: it counts as failed"
    assert await window.retry_after("ip") > 0


async def test_keyed_batches_take_what_queued_meanwhile_one_batch_at_a_time() -> None:
    batches: list[list[int]] = []
    running = 0

    async def work(items: list[int]) -> list[int | Exception]:
        nonlocal running
        running += 1
        assert running == 1, "one batch at a time per key"
        batches.append(items)
        await asyncio.sleep(0)
        running -= 1
        done: list[int | Exception] = [ValueError(n) if n == 13 else n * 10 for n in items]
        return done[:3]  # as much as it has room for: the rest waits for the next batch

    queue: KeyedBatches[int, int] = KeyedBatches(size=5)
    results = await asyncio.gather(
        *(queue.submit("ip", n, work) for n in range(12, 20)), return_exceptions=True
    )
    assert results[0] == 120 and isinstance(results[1], ValueError)
    assert results[2:] == [n * 10 for n in range(14, 20)]
    # Up to 5 of what queued, 3 of them done; those left come first in the next batch.
    assert batches == [[12, 13, 14, 15, 16], [15, 16, 17, 18, 19], [18, 19]]
    assert len(queue) == 0, "a key's queue is dropped once empty"


async def test_keyed_batches_skip_callers_gone_and_fail_a_batch_together() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    seen: list[list[str]] = []

    async def work(items: list[str]) -> Sequence[str | Exception]:
        seen.append(items)
        if items == ["first"]:
            started.set()
            await release.wait()
        if "boom" in items:
            raise ConnectionError("down")
        return items

    queue: KeyedBatches[str, str] = KeyedBatches(size=10)
    first = asyncio.create_task(queue.submit("ip", "first", work))
    await started.wait()
    gone = asyncio.create_task(queue.submit("ip", "gone", work))
    boom = [asyncio.create_task(queue.submit("ip", n, work)) for n in ("boom", "x")]
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await first == "first"
    outcomes = await asyncio.gather(*boom, return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert seen == [["first"], ["boom", "x"]], "the caller that went away is not looked up"
