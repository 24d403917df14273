"""Group time on the media clock, without steps.

A sync group's screens share one time base, the server's clock (or, where configured, the
NTP-synchronised system clock); the sync layer estimates it (``sync.ClockEstimate``: an
offset from the media clock and its drift). ``Timebase`` maps between the two:

    group time = media time + offset(media time)

The applied offset follows the estimate's own line (its drift included) plus a residual left
by the last correction, and the residual shrinks at ``max_slew_ppm`` at most: a correction of
2 ms is absorbed in 0.4 s with a clock running 0.5 % fast or slow, so item boundaries move
smoothly and a video's speed stays within the ±1 % a viewer does not notice. Group time is
therefore continuous and strictly increasing on the media clock. Two things step it instead:
the first estimate (nothing to slew from) and a correction beyond ``step_ns`` (the reference
itself stepped, the device slept); listeners hear about each step and the player re-anchors a
sync group's presentation on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, Protocol

from player._clock import NS_PER_MS, Clock

log = logging.getLogger(__name__)

MAX_SLEW_PPM = 5_000  # 0.5 %
STEP_NS = 100 * NS_PER_MS
Source = Literal["server", "system"]


class Estimate(Protocol):
    """What the sync layer estimates (``sync.ClockEstimate`` has this shape)."""

    @property
    def source(self) -> Source: ...

    @property
    def error_ns(self) -> int: ...

    @property
    def drift_ppm(self) -> float: ...

    @property
    def samples(self) -> int: ...

    def offset_at(self, media_ns: int) -> int: ...


class Timebase:
    """Maps media time to group time and back once an estimate has come; see the module doc."""

    def __init__(
        self, clock: Clock, *, max_slew_ppm: int = MAX_SLEW_PPM, step_ns: int = STEP_NS
    ) -> None:
        if max_slew_ppm <= 0 or step_ns <= 0:
            raise ValueError("max_slew_ppm and step_ns must be positive")
        self._clock = clock
        self.max_slew_ppm = max_slew_ppm
        self.step_ns = step_ns
        self._estimate: Estimate | None = None
        self._residual = 0  # applied minus estimated offset at ``_since``
        self._since = 0
        self._listeners: list[Callable[[int], None]] = []
        self.steps = 0
        self.corrections = 0

    @property
    def synced(self) -> bool:
        return self._estimate is not None

    @property
    def estimate(self) -> Estimate | None:
        return self._estimate

    @property
    def source(self) -> str:
        return "unsynced" if self._estimate is None else self._estimate.source

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """``callback(step_ns)`` after each step of group time (and after losing the estimate,
        with 0: group time then comes from the wall clock's own sources again)."""
        self._listeners.append(callback)

    def _notify(self, step_ns: int) -> None:
        for callback in list(self._listeners):
            callback(step_ns)

    def update(self, estimate: Estimate | None) -> int:
        """A new estimate (None: group time is no longer kept). Returns the step it caused."""
        now = self._clock.now_ns()
        previous = self.offset_ns(now) if self._estimate is not None else None
        self._estimate = estimate
        if estimate is None:
            self._residual = 0
            if previous is not None:
                self._notify(0)
            return 0
        target = estimate.offset_at(now)
        self._since = now
        if previous is not None and abs(previous - target) <= self.step_ns:
            self._residual = previous - target  # slewed away from here
            self.corrections += 1
            return 0
        self._residual = 0
        step = 0 if previous is None else target - previous
        self.steps += 1
        log.info(
            "group time set" if previous is None else "group time stepped",
            extra={
                "fields": {
                    "source": estimate.source,
                    "step_ms": round(step / NS_PER_MS, 3),
                    "error_ms": round(estimate.error_ns / NS_PER_MS, 3),
                }
            },
        )
        self._notify(step)
        return step

    def offset_ns(self, media_ns: int) -> int:
        """Group time minus media time at ``media_ns`` (needs an estimate)."""
        estimate = self._estimate
        if estimate is None:
            raise RuntimeError("no group time yet: check Timebase.synced first")
        target = estimate.offset_at(media_ns)
        residual = self._residual
        if residual == 0:
            return target
        absorbed = max(0, media_ns - self._since) * self.max_slew_ppm // 1_000_000
        if absorbed >= abs(residual):
            return target
        return target + (residual - absorbed if residual > 0 else residual + absorbed)

    def group_ns(self, media_ns: int) -> int:
        return media_ns + self.offset_ns(media_ns)

    def media_ns(self, group_ns: int) -> int:
        """The first media instant at which group time has reached ``group_ns``.

        The offset moves by at most drift plus slew (well under 1 %) per unit of media time,
        so a fixed-point iteration converges by a factor of 100 per round; the last
        nanoseconds are settled exactly, so a deadline woken for at ``media_ns(t)`` is never
        found a nanosecond short of ``t`` (a frame loop would spin on it).
        """
        media = group_ns - self.offset_ns(self._clock.now_ns())
        for _ in range(4):
            media = group_ns - self.offset_ns(media)
        while self.group_ns(media) < group_ns:
            media += 1
        while self.group_ns(media - 1) >= group_ns:
            media -= 1
        return media
