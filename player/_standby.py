"""The screen's power in the player: standby draws nothing, and the screen comes back on
with the right item on its deadline.

``Player`` inherits it; the attributes declared here are the player's own. While the screen is
off (``player._power`` decides when) the presentation is halted (where its zones stood is kept,
``player._resume``), one black frame is presented, the backend puts the screen in standby and
the frame loop sleeps (only its watchdog tick runs). ``wake_lead_s`` (at least the longest
pre-roll) before the screen is due on, the backend wakes it and the layout due then is
prepared and armed, so its first frame is presented on the on-time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

from player._clock import Clock
from player._events import EventSink
from player._machine import PlayerState
from player._power import Decision, PowerController
from player._presentation import Presentation
from player._resume import content_key
from player._schedule import resolve_at
from player._wall import WallClock
from protocol import Interrupt, Layout, Manifest
from zones import Compositor, Scene


class ScreenPower:
    clock: Clock
    wall: WallClock
    events: EventSink
    compositor: Compositor | None
    power: PowerController
    state: PlayerState
    _manifest: Manifest | None
    _current: Presentation | None
    _target: tuple[Manifest, Layout] | None
    _target_key: str | None
    _target_interrupt: Interrupt | None
    _target_overlay: bool
    _start_at: int | None
    _load_pending: bool
    _screen_off: bool
    _power_boundary: dt.datetime | None
    _halt_at: int | None
    _wake_lead_ns: int
    _frame_wake: asyncio.Event
    _schedule_wake: asyncio.Event
    _fire: Callable[[str], Coroutine[Any, Any, None]]
    _playable: Callable[[Layout], bool]
    _preroll_ns: Callable[[Manifest, dt.datetime], int]
    _reschedule: Callable[[], Coroutine[Any, Any, dt.datetime | None]]
    _show_idle: Callable[[], None]

    @property
    def standby(self) -> bool:
        """The screen is off: nothing is drawn (until the layout due at power-on is swapped
        in)."""
        return self._screen_off and self._current is None

    async def display_power(self, on: bool, seconds: float | None = None) -> None:
        """``display_on``/``display_off``: for ``seconds``, else until the power schedule
        next changes (player._power)."""
        self.power.set_command(self._manifest, on, self.wall.now(), seconds)
        if self.compositor is not None:
            await self._reschedule()
            self._schedule_wake.set()

    async def _standby(
        self, manifest: Manifest, power: Decision, schedule_change: dt.datetime | None
    ) -> dt.datetime | None:
        """The screen is to be off now: stop drawing, let the backend put it in standby, and
        near the instant it comes back on (by its schedule, or for an interrupt), wake it and
        prepare what is due then."""
        changes = [c for c in (power.next_change, schedule_change) if c is not None]
        on_at = min(changes) if changes else None
        now_ns = self.clock.now_ns()
        if on_at is not None and self._on_at(manifest, on_at):
            due = self.wall.media_ns_of(on_at)
            if due - now_ns <= self._preroll_ns(manifest, on_at):
                await self._apply_power(True)
                upcoming = resolve_at(manifest, on_at, playable=self._playable)
                if upcoming.layout is not None:
                    key = content_key(manifest, upcoming.layout)
                    if key != self._target_key:
                        self._target, self._target_key = (manifest, upcoming.layout), key
                        self._start_at, self._target_interrupt = due, upcoming.interrupt
                        self._target_overlay = upcoming.overlay
                        await self._fire("load")
                return on_at
        if not self._screen_off:
            boundary = self._power_boundary
            self._screen_off = True
            if self.state is not PlayerState.IDLE or self._current is not None:
                await self._fire("halt")
            self._target_key = None
            if self.compositor is not None:
                size = self.compositor.display.size
                self.compositor.present(Scene("standby", size, "#000000"))
                self._frame_wake.set()
            self.events.power("off", power.reason, self._due_of(boundary), now_ns)
        self._halt_at = None  # halted: what is prepared next may start on its instant
        self._power_boundary = on_at
        await self._apply_power(False)
        return on_at

    def _on_at(self, manifest: Manifest, when: dt.datetime) -> bool:
        """Whether the screen will be on at ``when``."""
        interrupted = resolve_at(manifest, when, playable=self._playable).interrupt is not None
        return self.power.on_at(manifest, when, interrupted=interrupted)

    async def _wake(self, power: Decision) -> None:
        """The screen is to be on now."""
        was_off, self._screen_off = self._screen_off, False
        await self._apply_power(True)
        if was_off:
            self.events.power(
                "on", power.reason, self._due_of(self._power_boundary), self.clock.now_ns()
            )
            if self.state is PlayerState.IDLE and not self._load_pending:
                self._show_idle()

    async def _apply_power(self, on: bool) -> None:
        # Busy: a virtual clock waits for the backend's worker thread, as for a decode.
        async with self.clock.busy():
            await self.power.apply(on)

    def _due_of(self, boundary: dt.datetime | None) -> int | None:
        """The media instant of a scheduled power change that has come, if one has."""
        if boundary is None or boundary > self.wall.now():
            return None
        return self.wall.media_ns_of(boundary)
