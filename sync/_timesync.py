"""Group time: this device's clock against the server's, estimated NTP-style and tracked.

The screens of a sync group share one time base, the server's clock. Each device estimates
``offset(t) = server time - media time`` from exchanges (``GET /api/v1/device/time``): it
reads its media clock when it sends (t1) and when the answer arrives (t4); the server answers
with its clock at receipt (t2) and when answering (t3). One exchange gives

    offset = ((t2 - t1) + (t3 - t4)) / 2        round trip = (t4 - t1) - (t3 - t2)

and its offset is wrong by at most half the round trip (by exactly half the difference
between the two one-way delays). So ``ClockEstimator`` keeps a window of samples, uses the
half with the shortest round trips, weighs them by how close they come to the shortest, fits
offset and drift (the media clock's frequency error against the server's) by weighted least
squares (the drift held towards what was believed, as much as the samples' noise says),
and drops residual outliers. A run of short-round-trip samples that all disagree with
the fit means a clock stepped: the window starts again from them.

``TimeSync`` runs the exchanges: a burst at start (the estimate is usable after a second),
one a second for a minute while the drift is learnt, then further apart. Where the system
clock is NTP-synchronised and the device is configured to trust it
(``sync.time_source = "system"``), samples read it locally instead (no network, no round
trip). The player turns estimates into group time on its media clock without steps
(``player._timebase``). The exchange itself is made at the socket (``sync._timewire``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from core import DeviceRevoked, ProtocolError
from protocol import TimeResponse
from sync._client import API, DeviceClient, RequestFailed, failure_of, parse_body
from sync._timewire import ExchangeFailed, TimeWire

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
Source = Literal["server", "system"]

WINDOW = 64  # samples kept
MAX_AGE_NS = 1_800 * NS_PER_S  # an oscillator's frequency wanders with temperature
MIN_FIT_SAMPLES = 4  # fewer: no outlier rejection
MAX_DRIFT_PPM = 1_000.0  # crystals stay within ±100 ppm; beyond this the fit is noise
DRIFT_PRIOR_PPM = 100.0  # how far a crystal may be from the drift believed so far
NOISE_FLOOR_NS = 500_000  # the least noise assumed of a sample's offset
WEIGHT_FLOOR_NS = 2_000_000  # a round trip this much above the shortest still counts fully
OUTLIER_MADS = 4.0  # residuals beyond this many (scaled) median deviations are dropped
OUTLIER_FLOOR_NS = NS_PER_MS
STEP_NS = 50 * NS_PER_MS  # disagreement beyond half the round trip plus this: a clock step
STEP_SAMPLES = 3  # this many agreeing in a row restart the window
FIRST_ESTIMATE_SAMPLES = 4
BURST = 8
BURST_SPACING_S = 0.25
SETTLING_S = 60.0  # after the burst, an exchange a second this long: the drift is learnt
SETTLING_SPACING_S = 1.0
FIRST_INTERVAL_S = 2.0


class MediaTime(Protocol):
    """The device's media clock (the player's ``Clock`` has this shape)."""

    def now_ns(self) -> int: ...

    async def sleep_until(
        self, deadline_ns: int | None, wake: asyncio.Event | None = None
    ) -> bool: ...


@dataclass(frozen=True)
class TimeSample:
    """One exchange: t1, t4 on the media clock; t2, t3 on the reference (ns since the epoch)."""

    t1: int
    t2: int
    t3: int
    t4: int

    @property
    def offset_ns(self) -> int:
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) // 2

    @property
    def delay_ns(self) -> int:
        return max(0, (self.t4 - self.t1) - (self.t3 - self.t2))

    @property
    def at_ns(self) -> int:
        return (self.t1 + self.t4) // 2


@dataclass(frozen=True)
class ClockEstimate:
    """Reference time = media time + ``offset_at(media time)``.

    ``error_ns`` bounds the error of the best sample in use (half its round trip); the fit's
    scatter is ``scatter_ns``. ``drift_ppm``: how fast the offset grows, i.e. how much slower
    than the reference the media clock runs.
    """

    offset_ns: int
    ref_ns: int
    drift_ppm: float
    error_ns: int
    scatter_ns: int
    samples: int
    source: Source

    def offset_at(self, media_ns: int) -> int:
        return self.offset_ns + round((media_ns - self.ref_ns) * self.drift_ppm * 1e-6)


class TimeLink(Protocol):
    """How a sample is taken: over HTTP from the server, or simulated."""

    async def exchange(self, clock: MediaTime) -> TimeSample: ...


def _utc_ns(value: dt.datetime) -> int:
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


class HttpTimeLink:
    """``GET /api/v1/device/time`` over a connection of its own, on a thread, stamped at the
    socket (``sync._timewire`` says why)."""

    def __init__(self, client: DeviceClient, *, timeout_s: float = 5.0) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._wire: TimeWire | None = None
        self._lock = threading.Lock()

    async def exchange(self, clock: MediaTime) -> TimeSample:
        token = self.client.token
        if token is None:
            raise DeviceRevoked("this device has no credentials: pair it first")
        return await asyncio.to_thread(self._exchange, clock, token)

    def _exchange(self, clock: MediaTime, token: str) -> TimeSample:
        with self._lock:
            if self._wire is None:
                self._wire = TimeWire(self.client.base_url, timeout_s=self.timeout_s)
            try:
                t1, response, t4 = self._wire.exchange(f"{API}/device/time", token, clock.now_ns)
            except ExchangeFailed as exc:
                raise RequestFailed(f"time exchange: {exc}") from exc
        if response.status_code >= 400:
            raise failure_of(response, "time exchange")
        answer = parse_body(TimeResponse, response, "time exchange")
        return TimeSample(t1, _utc_ns(answer.received_at), _utc_ns(answer.sent_at), t4)

    def close(self) -> None:
        with self._lock:
            if self._wire is not None:
                self._wire.close()
                self._wire = None


@dataclass(frozen=True)
class _Fit:
    """offset(x) = base_y + mean_y + drift * (x - base_x - mean_x): floats only for what is
    left after subtracting the integer bases (a float holds ns since 1970 to 256 ns only)."""

    base_x: int
    base_y: int
    mean_x: float
    mean_y: float
    drift: float  # ns of offset per ns of media time
    scatter_ns: float
    used: int

    def at(self, media_ns: int) -> int:
        return self.base_y + round(
            self.mean_y + (media_ns - self.base_x - self.mean_x) * self.drift
        )


Point = tuple[int, int, float]  # (media instant, offset, weight)


def _weighted_fit(points: list[Point], prior: float, noise_ns: float) -> _Fit | None:
    """Weighted least squares of (time, offset, weight), the slope held towards ``prior``.

    A slope fitted from samples a few seconds apart is mostly their noise (1 ms over 20 s is
    50 ppm): the drift is a regularised estimate, ``prior`` counting as much as samples
    spread over the span at which their noise (``noise_ns``) equals ``DRIFT_PRIOR_PPM``. With
    few or close samples it stays near what was believed; the longer they span, the more they
    decide.
    """
    total = sum(w for _, _, w in points)
    if total <= 0:
        return None
    count = len(points)
    base_x, base_y = points[0][0], points[0][1]
    rel = [(x - base_x, y - base_y, w * count / total) for x, y, w in points]  # mean weight 1
    mean_x = sum(w * x for x, _, w in rel) / count
    mean_y = sum(w * y for _, y, w in rel) / count
    sxx = sum(w * (x - mean_x) ** 2 for x, _, w in rel)
    sxy = sum(w * (x - mean_x) * (y - mean_y) for x, y, w in rel)
    held = (max(noise_ns, NOISE_FLOOR_NS) / (DRIFT_PRIOR_PPM * 1e-6)) ** 2
    drift = (sxy + held * prior) / (sxx + held)
    drift = max(-MAX_DRIFT_PPM * 1e-6, min(MAX_DRIFT_PPM * 1e-6, drift))
    residual = sum(w * (y - mean_y - drift * (x - mean_x)) ** 2 for x, y, w in rel)
    return _Fit(base_x, base_y, mean_x, mean_y, drift, math.sqrt(residual / count), count)


class ClockEstimator:
    """Offset and drift of the media clock against a reference, from exchange samples."""

    def __init__(self, source: Source = "server") -> None:
        self.source: Source = source
        self._samples: deque[TimeSample] = deque(maxlen=WINDOW)
        self._suspects: list[TimeSample] = []
        self._fit: _Fit | None = None
        self.steps = 0  # times the reference (or the media clock) was found to have stepped
        self.rejected = 0  # samples left out of a fit as outliers

    def __len__(self) -> int:
        return len(self._samples)

    def reset(self, source: Source) -> None:
        self.source = source
        self._samples.clear()
        self._suspects.clear()
        self._fit = None

    def add(self, sample: TimeSample) -> None:
        fit = self._fit
        if fit is not None and len(self._samples) >= FIRST_ESTIMATE_SAMPLES:
            miss = abs(sample.offset_ns - fit.at(sample.at_ns))
            if miss > sample.delay_ns / 2 + STEP_NS:
                self._suspect(sample)
                return
        self._suspects.clear()
        self._samples.append(sample)
        newest = sample.at_ns
        while self._samples and newest - self._samples[0].at_ns > MAX_AGE_NS:
            self._samples.popleft()
        self._fit = self._refit()

    def _suspect(self, sample: TimeSample) -> None:
        """A sample far off the fit: an outlier, unless the next ones agree with it."""
        self._suspects.append(sample)
        if len(self._suspects) < STEP_SAMPLES:
            return
        offsets = [s.offset_ns for s in self._suspects]
        spread = max(offsets) - min(offsets)
        if spread > max(s.delay_ns for s in self._suspects) + STEP_NS:
            self._suspects = self._suspects[1:]  # not one consistent new clock: keep looking
            return
        log.warning(
            "reference clock stepped",
            extra={
                "fields": {
                    "source": self.source,
                    "step_ms": round((offsets[-1] - self._fit.at(sample.at_ns)) / NS_PER_MS, 3)
                    if self._fit
                    else None,
                }
            },
        )
        self.steps += 1
        suspects = self._suspects
        self._samples.clear()
        self._suspects = []
        self._samples.extend(suspects)
        self._fit = self._refit()

    def _refit(self) -> _Fit | None:
        samples = list(self._samples)
        if not samples:
            return None
        by_delay = sorted(samples, key=lambda s: s.delay_ns)
        chosen = by_delay[: max(1, math.ceil(len(by_delay) / 2))]
        best = chosen[0].delay_ns
        points = [
            (s.at_ns, s.offset_ns, 1.0 / (s.delay_ns - best + WEIGHT_FLOOR_NS) ** 2) for s in chosen
        ]
        previous = self._fit
        prior = previous.drift if previous is not None else 0.0
        noise = previous.scatter_ns if previous is not None else 0.0
        fit = _weighted_fit(points, prior, noise)
        if fit is None or len(points) < MIN_FIT_SAMPLES:
            return fit
        residuals = sorted(abs(y - fit.at(x)) for x, y, _ in points)
        mad = residuals[len(residuals) // 2] * 1.4826
        limit = max(OUTLIER_MADS * mad, OUTLIER_FLOOR_NS)
        kept = [(x, y, w) for x, y, w in points if abs(y - fit.at(x)) <= limit]
        if len(kept) == len(points) or len(kept) < 2:
            return fit
        self.rejected += len(points) - len(kept)
        return _weighted_fit(kept, prior, noise) or fit

    def estimate(self) -> ClockEstimate | None:
        fit = self._fit
        if fit is None:
            return None
        ref = max(s.at_ns for s in self._samples)
        return ClockEstimate(
            offset_ns=fit.at(ref),
            ref_ns=ref,
            drift_ppm=fit.drift * 1e6,
            error_ns=min(s.delay_ns for s in self._samples) // 2,
            scatter_ns=round(fit.scatter_ns),
            samples=len(self._samples),
            source=self.source,
        )


class TimeSync:
    """Keeps ``on_estimate`` fed while group time is wanted (``want(True)``).

    ``system_time()`` is the system clock in ns when it is NTP-synchronised, else None; with
    ``prefer_system`` it is sampled instead of the server whenever it is synchronised.
    """

    def __init__(
        self,
        link: TimeLink,
        clock: MediaTime,
        on_estimate: Callable[[ClockEstimate | None], None],
        *,
        interval_s: float = 8.0,
        prefer_system: bool = False,
        system_time: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.link = link
        self.clock = clock
        self.on_estimate = on_estimate
        self.interval_s = interval_s
        self.prefer_system = prefer_system
        self.system_time = system_time
        self.estimator = ClockEstimator()
        self.exchanges = 0
        self.failures = 0
        self._wanted = False
        self._changed = asyncio.Event()

    @property
    def wanted(self) -> bool:
        return self._wanted

    def want(self, wanted: bool) -> None:
        """Start (or stop) keeping group time; stopping drops the estimate."""
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    async def _sample(self) -> TimeSample:
        if self.prefer_system:
            now = self.clock.now_ns()
            system = self.system_time()
            if system is not None:
                if self.estimator.source != "system":
                    self.estimator.reset("system")
                return TimeSample(now, system, system, now)
        if self.estimator.source != "server":
            self.estimator.reset("server")
        return await self.link.exchange(self.clock)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep on the media clock; True when ``want`` changed meanwhile."""
        deadline = self.clock.now_ns() + int(seconds * NS_PER_S)
        return await self.clock.sleep_until(deadline, self._changed)

    async def run(self) -> None:
        """Until cancelled. ``DeviceRevoked`` propagates; other failures are retried."""
        while True:
            self._changed.clear()
            if not self._wanted:
                self.estimator.reset(self.estimator.source)
                self.on_estimate(None)
                await self.clock.sleep_until(None, self._changed)
                continue
            await self._keep()

    async def _keep(self) -> None:
        """Exchanges while wanted: a burst, a minute of one a second (a few noisy samples
        cannot tell a drift from their noise; sixty can), then at growing intervals up to
        ``interval_s``."""
        taken = 0
        interval = FIRST_INTERVAL_S
        began = self.clock.now_ns()
        while self._wanted:
            try:
                sample = await self._sample()
            except DeviceRevoked:
                raise
            except (RequestFailed, ProtocolError) as exc:
                self.failures += 1
                log.warning("time exchange failed", extra={"fields": {"error": str(exc)}})
                retry = getattr(exc, "retry_after", None) or min(self.interval_s, 5.0)
                if await self._sleep(retry):
                    return
                continue
            self.exchanges += 1
            taken += 1
            self.estimator.add(sample)
            if len(self.estimator) >= FIRST_ESTIMATE_SAMPLES or taken >= BURST:
                self.on_estimate(self.estimator.estimate())
            if taken < BURST:
                pause = BURST_SPACING_S
            elif self.clock.now_ns() - began < SETTLING_S * NS_PER_S:
                pause = SETTLING_SPACING_S
            else:
                pause, interval = interval, min(self.interval_s, interval * 2)
            if await self._sleep(pause):
                return
