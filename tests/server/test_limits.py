"""Rate limit windows in this process: batch reservations, told apart from failures until
they are settled."""

from __future__ import annotations

from server._limits import RESERVATION_STALE_S, SlidingWindow
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
