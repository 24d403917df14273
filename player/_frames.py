"""The frame loop: compose on deadlines and announced changes, sleep in between.

``Player`` inherits it; the attributes declared here are the player's own. Each pass swaps in a
pre-rolled layout whose instant has come, lets the presentation switch items, composes and
presents a frame if anything changed, reports the switches of that frame with the time it was
presented (read right after the display's present call returned, before any listener runs),
then sleeps until the next deadline (warming a switch frame's memory first, see
``player._warmup``) or until woken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from player._clock import NS_PER_S, Clock
from player._events import EventSink
from player._presentation import Presentation, Switch
from player._warmup import SwitchWarmup
from zones import Compositor


class FrameLoop:
    clock: Clock
    compositor: Compositor | None
    events: EventSink
    frames: int
    dropped_frames: int
    _armed: tuple[Presentation, int] | None
    _current: Presentation | None
    # From this media instant the screen goes off: nothing starts (the player halts).
    _halt_at: int | None
    _unreported: list[Switch]
    _tick_listeners: list[Callable[[], None]]
    # Called with the presented instant after each presented frame, once its switches are
    # reported and its time is taken (Player.add_frame_listener).
    _frame_listeners: list[Callable[[int], None]]
    _frame_ns: int
    _frame_wake: asyncio.Event
    _warmup: SwitchWarmup
    # Makes a pre-rolled presentation the current one (Player._swap_in).
    _swap_in: Callable[[Presentation], None]

    async def _frame_loop(self) -> None:
        compositor = self.compositor
        assert compositor is not None
        wanted: int | None = None
        last_present: int | None = None
        while True:
            now = self.clock.now_ns()
            halting = self._halt_at is not None and now >= self._halt_at
            if self._armed is not None and now >= self._armed[1] and not halting:
                armed, self._armed = self._armed[0], None
                self._swap_in(armed)
            current = self._current
            if current is not None and not halting:
                current.tick(now)
            if compositor.compose(now):
                presented = self.clock.now_ns()
                self.frames += 1
                if wanted is not None and presented - wanted > self._frame_ns:
                    self.dropped_frames += (presented - wanted) // self._frame_ns
                last_present = presented
                switches, self._unreported = self._unreported, []
                if current is not None:
                    switches += current.take_switches()
                self._report(switches, presented)
                for listener in self._frame_listeners:
                    listener(presented)
            elif current is not None:
                self._report([s for s in current.take_switches() if s.kind == "error"], now)
            for callback in self._tick_listeners:
                callback()
            wanted = self._next_frame(now, last_present)
            await self._warmup.before(wanted, self._current, compositor, self._frame_wake)
            await self.clock.sleep_until(wanted, self._frame_wake)
            self._frame_wake.clear()

    def _next_frame(self, now: int, last_present: int | None) -> int | None:
        compositor = self.compositor
        assert compositor is not None
        times = []
        if (t := compositor.next_change_ns(now)) is not None:
            # Animation never runs above frame_rate_hz...
            times.append(t if last_present is None else max(t, last_present + self._frame_ns))
        if self._current is not None and (t := self._current.next_wake_ns(now)) is not None:
            times.append(t)  # ...but a deadline is presented on the first frame after it.
        if self._armed is not None:
            times.append(self._armed[1])
        if self._tick_listeners:
            times.append(now + NS_PER_S)
        return min(times) if times else None

    def _report(self, switches: list[Switch], presented_ns: int) -> None:
        layout = self._current.layout.id if self._current is not None else None
        self.events.switches(switches, presented_ns, layout)
