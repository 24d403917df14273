"""The frame loop: compose on deadlines and announced changes, sleep in between.

A component of the player, with state of its own: the frame counts, what wakes it, the
listeners of its ticks and frames, the pre-rolled presentation armed for an instant, the
switches waiting for the frame that shows them, and the instant the screen goes off. The
player hands it the clock, the event sink, what is on screen (``on_screen``) and how a
presentation takes the screen (``swap_in``); it runs on the compositor it is given.

Each pass swaps in an armed presentation whose instant has come, lets the presentation on
screen switch items, composes and presents a frame if anything changed, reports the switches
of that frame with the time it was presented (read right after the display's present call
returned, before any listener runs), then sleeps until the next deadline (warming a switch
frame's memory first, see ``player._warmup``) or until woken.
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
    def __init__(
        self,
        clock: Clock,
        events: EventSink,
        *,
        frame_ns: int,
        on_screen: Callable[[], Presentation | None],
        swap_in: Callable[[Presentation], None],
    ) -> None:
        """``frame_ns``: the shortest interval between frames that only animate.
        ``on_screen()``: the presentation on screen, if any. ``swap_in(presentation)``: makes
        an armed presentation the one on screen, when its instant has come."""
        self.clock = clock
        self.frame_ns = frame_ns
        self.frames = 0
        self.dropped_frames = 0
        self.warmup = SwitchWarmup(clock)
        # From this media instant the screen goes off: nothing starts, nothing advances.
        self.halt_at: int | None = None
        self._events = events
        self._on_screen = on_screen
        self._swap_in = swap_in
        self._armed: tuple[Presentation, int] | None = None
        self._unreported: list[Switch] = []  # reported with the next presented frame
        self._tick_listeners: list[Callable[[], None]] = []
        # Called with the presented instant after each presented frame, once its switches are
        # reported and its time is taken.
        self._frame_listeners: list[Callable[[int], None]] = []
        self._wake = asyncio.Event()

    # -- what the player tells it -------------------------------------------------------------

    def wake(self) -> None:
        """Look again now: something on screen changed, or will change sooner than planned."""
        self._wake.set()

    def add_tick_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` at least once a second (a watchdog ping)."""
        self._tick_listeners.append(callback)
        self._wake.set()

    def add_frame_listener(self, callback: Callable[[int], None]) -> None:
        """``callback(presented_ns)`` after every presented frame."""
        self._frame_listeners.append(callback)

    @property
    def ticking(self) -> bool:
        """Someone listens for ticks (the watchdog): the loop runs at least once a second."""
        return bool(self._tick_listeners)

    def arm(self, presentation: Presentation, at_ns: int) -> None:
        """Swap ``presentation`` in on the first pass at or after ``at_ns`` (a pre-rolled
        boundary switch; arming it again moves its instant)."""
        self._armed = (presentation, at_ns)
        self._wake.set()

    @property
    def armed(self) -> Presentation | None:
        return self._armed[0] if self._armed is not None else None

    @property
    def armed_at(self) -> int | None:
        return self._armed[1] if self._armed is not None else None

    def disarm(self) -> None:
        """Release the armed presentation, if any: it will not take the screen."""
        if self._armed is not None:
            self._armed[0].release()
            self._armed = None

    def defer(self, switches: list[Switch]) -> None:
        """Report ``switches`` with the next presented frame (the one that shows them)."""
        self._unreported += switches

    def report(self, switches: list[Switch], at_ns: int) -> None:
        """Report ``switches`` now, as of ``at_ns``, under the layout on screen."""
        current = self._on_screen()
        self._events.switches(switches, at_ns, current.layout.id if current else None)

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, compositor: Compositor) -> None:
        wanted: int | None = None
        last_present: int | None = None
        while True:
            now = self.clock.now_ns()
            halting = self.halt_at is not None and now >= self.halt_at
            if self._armed is not None and now >= self._armed[1] and not halting:
                armed, self._armed = self._armed[0], None
                self._swap_in(armed)
            current = self._on_screen()
            if current is not None and not halting:
                current.tick(now)
            if compositor.compose(now):
                presented = self.clock.now_ns()
                self.frames += 1
                if wanted is not None and presented - wanted > self.frame_ns:
                    self.dropped_frames += (presented - wanted) // self.frame_ns
                last_present = presented
                switches, self._unreported = self._unreported, []
                if current is not None:
                    switches += current.take_switches()
                self.report(switches, presented)
                for listener in self._frame_listeners:
                    listener(presented)
            elif current is not None:
                self.report([s for s in current.take_switches() if s.kind == "error"], now)
            for callback in self._tick_listeners:
                callback()
            wanted = self._next_frame(compositor, now, last_present)
            await self.warmup.before(wanted, self._on_screen(), compositor, self._wake)
            await self.clock.sleep_until(wanted, self._wake)
            self._wake.clear()

    def _next_frame(self, compositor: Compositor, now: int, last_present: int | None) -> int | None:
        times = []
        if (t := compositor.next_change_ns(now)) is not None:
            # Animation never runs above frame_rate_hz...
            times.append(t if last_present is None else max(t, last_present + self.frame_ns))
        current = self._on_screen()
        if current is not None and (t := current.next_wake_ns(now)) is not None:
            times.append(t)  # ...but a deadline is presented on the first frame after it.
        if self._armed is not None:
            times.append(self._armed[1])
        if self._tick_listeners:
            times.append(now + NS_PER_S)
        return min(times) if times else None
