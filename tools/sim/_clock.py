"""Time for the simulator: which clock the players run on, and how fast it moves.

``--speed 1`` runs the real ``MediaClock``: lateness is real lateness, measured from presented
frames. Any other speed runs a ``VirtualClock`` (``SimClock``) that this module's ``TimeDriver``
moves: paced at N times real time, or at ``max`` straight from one deadline to the next.

Each device sees the shared clock through a ``DeviceClock`` with its own wall-clock offset, so
one device's clock can be stepped (an NTP step) while the others keep theirs, and its own
oscillator: ``drift_ppm`` makes its media clock (and the system clock that follows it) run
that much fast or slow against the shared clock, which is true time (and the server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from player import NS_PER_S, Clock, MediaClock, VirtualClock

_PACE_STEP_S = 0.005  # how often a paced virtual clock catches up with real time
_BUSY_POLL_S = 0.002  # longest wait for busy work before the loop is looked at again
_PPB = 1_000_000_000


class SimClock(VirtualClock):
    """A ``VirtualClock`` whose settling ends as soon as the loop has nothing runnable.

    The base class yields a fixed 100 times per deadline; a simulated day has tens of
    thousands of deadlines (a clock zone ticks every second), so the simulator stops yielding
    once the loop's ready queue is empty (twice in a row, as the base class does).
    """

    def __init__(self, *, start_ns: int = 0, wall_start_ns: int | None = None) -> None:
        super().__init__(start_ns=start_ns, wall_start_ns=wall_start_ns)
        self._calm = asyncio.Event()  # set whenever a busy section ends

    async def settle(self) -> None:
        loop = asyncio.get_running_loop()
        # asyncio has no public "anything runnable?"; tests/test_dependency_privates.py checks it.
        ready = getattr(loop, "_ready", None)
        if ready is None:  # not a standard asyncio loop: keep the generic behaviour
            await super().settle()
            return
        quiet_rounds = 0
        while quiet_rounds < 2:
            await asyncio.sleep(0)
            if ready:
                quiet_rounds = 0
                continue
            if self.is_busy:
                quiet_rounds = 0
                # Work in a thread (a decode) needs real time; the virtual clock waits for it,
                # but no longer than it takes: a cached decode is done in a fraction of the
                # 2 ms a plain sleep would cost (thousands of times in a simulated day).
                self._calm.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._calm.wait(), _BUSY_POLL_S)
                continue
            quiet_rounds += 1

    @contextlib.asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        try:
            async with super().busy():
                yield
        finally:
            self._calm.set()


class RealDeviceClock:
    """One device's view of the shared clock: its own wall-clock offset and, with
    ``drift_ppm``, its own rate (media time then agrees with the shared clock's at creation)."""

    def __init__(self, base: Clock, *, wall_offset_ns: int = 0, drift_ppm: float = 0.0) -> None:
        self.base = base
        self.wall_offset_ns = wall_offset_ns
        self.drift_ppm = drift_ppm
        self.rate = 1.0 + drift_ppm * 1e-6
        # The rate as an exact ratio (to the part per billion): times convert in integers, so a
        # sleeper woken at ``to_base_ns(d)`` reads ``d`` itself, not a rounding away from it.
        self._num = _PPB + round(drift_ppm * 1_000)
        self._origin = base.now_ns()

    def now_ns(self) -> int:
        base = self.base.now_ns()
        if self._num == _PPB:
            return base
        return self._origin + (base - self._origin) * self._num // _PPB

    def to_base_ns(self, media_ns: int) -> int:
        """The shared clock's instant at which this device's media clock reads ``media_ns``
        (the first nanosecond at or after it: a sleeper never wakes early)."""
        if self._num == _PPB:
            return media_ns
        return self._origin - (-(media_ns - self._origin) * _PPB // self._num)

    def wall_ns(self) -> int:
        return self.base.wall_ns() + self.wall_offset_ns + (self.now_ns() - self.base.now_ns())

    def step_wall(self, delta_ns: int) -> None:
        """The device's system clock jumps (an NTP step, an operator's change)."""
        self.wall_offset_ns += delta_ns

    async def sleep_until(self, deadline_ns: int | None, wake: asyncio.Event | None = None) -> bool:
        deadline = None if deadline_ns is None else self.to_base_ns(deadline_ns)
        return await self.base.sleep_until(deadline, wake)

    def busy(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.base.busy()


class DeviceClock(RealDeviceClock):
    """The same over a virtual clock; ``advance_to`` tells the player it needs no polling."""

    def __init__(
        self, base: VirtualClock, *, wall_offset_ns: int = 0, drift_ppm: float = 0.0
    ) -> None:
        super().__init__(base, wall_offset_ns=wall_offset_ns, drift_ppm=drift_ppm)
        self.virtual = base

    async def advance_to(self, target_ns: int) -> None:
        await self.virtual.advance_to(self.to_base_ns(target_ns))


def device_clock(
    base: Clock, *, wall_offset_ns: int = 0, drift_ppm: float = 0.0
) -> RealDeviceClock:
    if isinstance(base, VirtualClock):
        return DeviceClock(base, wall_offset_ns=wall_offset_ns, drift_ppm=drift_ppm)
    return RealDeviceClock(base, wall_offset_ns=wall_offset_ns, drift_ppm=drift_ppm)


Speed = float | None  # None: as fast as possible


class TimeDriver:
    """Moves the shared clock; ``speed`` None is "max". A real clock only runs at 1."""

    def __init__(self, clock: Clock, speed: Speed) -> None:
        if not isinstance(clock, VirtualClock) and speed != 1:
            raise ValueError("a real clock runs at speed 1 only")
        self.clock = clock
        self.speed = speed

    @property
    def virtual(self) -> bool:
        return isinstance(self.clock, VirtualClock)

    async def run_until(self, target_ns: int, *, speed: Speed | str = "default") -> None:
        """Let media time reach ``target_ns`` (at ``speed``, default the driver's own)."""
        pace = self.speed if speed == "default" else speed
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            delay = (target_ns - clock.now_ns()) / NS_PER_S
            if delay > 0:
                await asyncio.sleep(delay)
            return
        if pace is None:
            await clock.advance_to(target_ns)
            return
        assert isinstance(pace, float | int)
        await self._paced(clock, target_ns, float(pace))

    async def _paced(self, clock: VirtualClock, target_ns: int, pace: float) -> None:
        media0, real0 = clock.now_ns(), time.monotonic()
        while clock.now_ns() < target_ns:
            allowed = media0 + int((time.monotonic() - real0) * pace * NS_PER_S)
            await clock.advance_to(min(target_ns, allowed))
            if clock.now_ns() >= target_ns:
                return
            await asyncio.sleep(_PACE_STEP_S)

    async def run_while(
        self, condition: asyncio.Event, limit_ns: int, *, speed: Speed | str = "default"
    ) -> bool:
        """Run until ``condition`` is set or media time reaches ``limit_ns``; True if set."""
        step = NS_PER_S // 20
        while not condition.is_set() and self.clock.now_ns() < limit_ns:
            await self.run_until(min(limit_ns, self.clock.now_ns() + step), speed=speed)
        return condition.is_set()


def make_clock(speed: Speed) -> Clock:
    """The shared clock for a run: the real media clock at speed 1, else a virtual one.

    Its wall time is the host's; devices shift it (``--start``) through their offsets.
    """
    if speed == 1:
        return MediaClock()
    return SimClock(start_ns=time.monotonic_ns(), wall_start_ns=time.time_ns())
