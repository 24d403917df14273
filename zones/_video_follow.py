"""Keeping a playing video where its item's own time says it should be (a sync group).

The screens of a sync group start a clip on the same group instant, but each decodes and plays
it on its own clock, which runs a little fast or slow against group time (tens of ppm: a few
milliseconds a minute), and a screen that joins mid-item starts it where the group is. So each
renderer compares the position mpv reports with the position group time gives, and corrects:

- beyond ``SEEK_BEYOND_NS`` (a screen joining late, a stall, a loop's restart that took its
  time): an exact seek to where the group will be when it has landed, the landing time learnt
  from how far off the previous seek came out;
- otherwise the playback speed, proportionally to the error (converging in about
  ``CONVERGE_NS``), within ±``MAX_SPEED_DELTA`` (1 %: no viewer sees or hears it), and back to
  1.0 inside ``DEADBAND_NS``, so mpv is not told something new at every frame.

The error is taken at the instant mpv reported the position, so neither the age of the report
nor the frame loop's timing counts as error. A looping clip's position wraps: errors are taken
modulo its length. ``PlaybackFollower`` is pure arithmetic; the renderer applies what it says.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
MAX_SPEED_DELTA = 0.01
SEEK_BEYOND_NS = 50_000_000
DEADBAND_NS = 2_000_000
CONVERGE_NS = 2 * NS_PER_S
SEEK_LANDING_NS = 60_000_000  # first guess of how long a seek takes to show; then learnt
SPEED_STEP = 0.0005  # smaller changes of speed are not worth a command


@dataclass(frozen=True)
class Correction:
    speed: float | None = None  # set this speed (None: unchanged)
    seek_to_s: float | None = None  # seek here (None: no seek)


class PlaybackFollower:
    """Decides speed changes and seeks from (expected, reported) position pairs."""

    def __init__(self, *, duration_ns: int | None = None, loop: bool = False) -> None:
        self.duration_ns = duration_ns
        self.loop = loop
        self.speed = 1.0
        self.seeks = 0
        self.landing_ns = SEEK_LANDING_NS
        self._seek_sent: int | None = None  # monotonic instant of the last seek, until landed
        self.errors_ns: deque[int] = deque(maxlen=4096)  # recent errors (reports after seeks)

    def _error(self, position_ns: int, expected_ns: int) -> int:
        error = position_ns - expected_ns
        length = self.duration_ns
        if self.loop and length:
            error = (error + length // 2) % length - length // 2
        return error

    def observe(self, position_ns: int, expected_ns: int, seen_ns: int) -> Correction:
        """mpv showed ``position_ns`` at monotonic ``seen_ns``, where group time says
        ``expected_ns`` (same instant). What to do, if anything."""
        length = self.duration_ns
        if not self.loop and length is not None and expected_ns >= length:
            return Correction()  # past the clip's end: it holds its last frame, as it should
        error = self._error(position_ns, expected_ns)
        if self._seek_sent is not None:
            if seen_ns <= self._seek_sent:
                return Correction()  # a report from before the seek
            # Landed ``error`` away from the target: the seek took that much less than guessed.
            guess = max(0, min(NS_PER_S, self.landing_ns - error))
            self.landing_ns = (self.landing_ns + guess) // 2
            self._seek_sent = None
        if abs(error) > SEEK_BEYOND_NS:
            target = expected_ns + self.landing_ns
            if length:
                target = target % length if self.loop else min(target, length - 1)
            self.seeks += 1
            self._seek_sent = seen_ns
            self.speed = 1.0
            return Correction(speed=1.0, seek_to_s=max(0, target) / NS_PER_S)
        self.errors_ns.append(error)
        if abs(error) <= DEADBAND_NS:
            wanted = 1.0
        else:
            wanted = 1.0 - max(-MAX_SPEED_DELTA, min(MAX_SPEED_DELTA, error / CONVERGE_NS))
        if abs(wanted - self.speed) < SPEED_STEP and not (wanted == 1.0 != self.speed):
            return Correction()
        self.speed = wanted
        return Correction(speed=wanted)

    def seek_sent(self, monotonic_ns: int) -> None:
        """When the renderer actually sent the seek (reports before it are stale)."""
        self._seek_sent = monotonic_ns
