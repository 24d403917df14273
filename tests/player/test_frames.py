"""The frame loop as a component (player/_frames.py): made and driven without a player."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from player import TimelineEvent, VirtualClock
from player._events import EventSink
from player._frames import FrameLoop
from player._presentation import Presentation, Switch
from player._wall import WallClock
from zones import Compositor, Scene, compositor_for, offscreen_display

S = 1_000_000_000
FRAME_NS = S // 60


class Stub:
    """Stands for a pre-rolled presentation: the loop only swaps it in or releases it."""

    def __init__(self) -> None:
        self.released = False

    def release(self) -> None:
        self.released = True


def as_presentation(stub: Stub) -> Presentation:
    return cast(Presentation, stub)


class Rig:
    """A frame loop handed a clock, an event sink, nothing on screen and a recording swap."""

    def __init__(self, clock: VirtualClock, compositor: Compositor) -> None:
        self.clock = clock
        self.compositor = compositor
        self.swapped: list[tuple[Any, int]] = []
        self.events: list[TimelineEvent] = []
        self.presented: list[int] = []
        sink = EventSink("test", clock, WallClock(clock), measured=False)
        sink.add(self.events.append)
        self.loop = FrameLoop(
            clock,
            sink,
            frame_ns=FRAME_NS,
            on_screen=lambda: None,
            swap_in=lambda p: self.swapped.append((p, clock.now_ns())),
        )
        self.loop.add_frame_listener(self.presented.append)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = VirtualClock()
    display = offscreen_display((64, 36))
    rig = Rig(clock, compositor_for(display, frame_ns=FRAME_NS))
    task = asyncio.create_task(rig.loop.run(rig.compositor))
    await clock.advance(0)
    try:
        yield rig
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        display.close()


async def test_an_armed_presentation_is_swapped_in_at_its_instant(rig: Rig) -> None:
    stub = Stub()
    at = rig.clock.now_ns() + 3 * S
    rig.loop.arm(as_presentation(stub), at)
    assert (rig.loop.armed, rig.loop.armed_at) == (as_presentation(stub), at)
    await rig.clock.advance(3 * S - 1)
    assert rig.swapped == []
    await rig.clock.advance(1)
    assert rig.swapped == [(stub, at)], "on the first pass at its instant, not later"
    assert (rig.loop.armed, stub.released) == (None, False)


async def test_nothing_is_swapped_in_once_the_screen_is_to_be_off(rig: Rig) -> None:
    stub = Stub()
    now = rig.clock.now_ns()
    rig.loop.halt_at = now + S
    rig.loop.arm(as_presentation(stub), now + 2 * S)
    await rig.clock.advance(3 * S)
    assert rig.swapped == []
    rig.loop.disarm()
    assert stub.released and rig.loop.armed_at is None


async def test_deferred_switches_are_reported_with_the_next_presented_frame(rig: Rig) -> None:
    rig.loop.defer([Switch("end", "main", "a", None)])
    await rig.clock.advance(2 * S)
    assert rig.events == [], "nothing presented: nothing reported"
    rig.compositor.present(Scene("black", (64, 36), "#000000"))
    rig.loop.wake()
    await rig.clock.advance(0)
    assert [(e.event, e.item) for e in rig.events] == [("end", "a")]
    assert rig.loop.frames >= 1 and rig.presented and rig.events[0].t == rig.presented[0] / S


async def test_ticks_come_at_least_once_a_second_with_nothing_to_draw(rig: Rig) -> None:
    ticks: list[int] = []
    before = rig.loop.ticking
    rig.loop.add_tick_listener(lambda: ticks.append(rig.clock.now_ns()))
    assert (before, rig.loop.ticking) == (False, True)
    await rig.clock.advance(5 * S)
    assert len(ticks) >= 5 and all(b - a <= S for a, b in itertools.pairwise(ticks))
    assert rig.loop.dropped_frames == 0
