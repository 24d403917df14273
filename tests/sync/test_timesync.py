"""Estimating group time: offset and drift from noisy exchanges, outliers, clock steps, and
the loop that keeps the estimate fed (on a virtual clock, and over the real server)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core import DeviceRevoked
from player import VirtualClock
from sync import ClockEstimate, ClockEstimator, RequestFailed, SyncAgent, TimeSample, TimeSync
from tests.sync.device_fakes import FakeHost
from tests.sync.live_server import LiveServer, device_settings, publish, running, wait_for

NS = 1_000_000_000
MS = 1_000_000
SERVER_EPOCH = 1_800_000_000 * NS


@dataclass
class Network:
    """A device whose media clock runs ``drift_ppm`` off true time, ``offset`` behind the
    server, behind a link with a fixed one-way latency plus exponential jitter each way."""

    drift_ppm: float
    offset_ns: int = 3_700 * MS
    latency_ns: int = 2 * MS
    jitter_ns: int = 10 * MS
    seed: int = 1
    server_step_ns: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def media(self, true_ns: int) -> int:
        return round(true_ns * (1 + self.drift_ppm * 1e-6))

    def server(self, true_ns: int) -> int:
        return SERVER_EPOCH + self.offset_ns + true_ns + self.server_step_ns

    def truth(self, media_ns: int) -> int:
        """The exact offset (server - media) at a media instant."""
        true_ns = round(media_ns / (1 + self.drift_ppm * 1e-6))
        return self.server(true_ns) - media_ns

    def one_way(self) -> int:
        return self.latency_ns + round(self.rng.expovariate(1.0) * self.jitter_ns)

    def sample(self, true_ns: int) -> TimeSample:
        up, down = self.one_way(), self.one_way()
        received = true_ns + up
        return TimeSample(
            self.media(true_ns),
            self.server(received),
            self.server(received + 50_000),
            self.media(received + 50_000 + down),
        )


def _run(
    estimator: ClockEstimator, net: Network, start_s: float, end_s: float, every_s: float
) -> int:
    t = start_s
    while t < end_s:
        estimator.add(net.sample(int(t * NS)))
        t += every_s
    return int(t * NS)


def _error_ms(estimate: ClockEstimate | None, net: Network, true_ns: int) -> float:
    assert estimate is not None
    media = net.media(true_ns)
    return abs(estimate.offset_at(media) - net.truth(media)) / MS


def test_one_exchange_is_exact_with_equal_one_way_delays() -> None:
    sample = TimeSample(t1=100, t2=1_000_050, t3=1_000_060, t4=130)
    assert sample.delay_ns == 20  # 30 on the device, 10 of them spent on the server
    assert sample.offset_ns == ((1_000_050 - 100) + (1_000_060 - 130)) // 2 == 999_940
    assert sample.at_ns == 115


@pytest.mark.parametrize(
    ("drift_ppm", "jitter_ms", "within_ms"),
    [
        (-100.0, 10.0, 2.0),
        (0.0, 10.0, 2.0),
        (73.0, 10.0, 2.0),
        (100.0, 10.0, 2.0),
        (100.0, 0.5, 0.3),
    ],
)
def test_offset_and_drift_are_tracked_through_jitter(
    drift_ppm: float, jitter_ms: float, within_ms: float
) -> None:
    """Mean jitter of 10 ms each way is a congested WAN; 0.5 ms a LAN."""
    net = Network(drift_ppm, jitter_ns=round(jitter_ms * MS))
    estimator = ClockEstimator()
    # The start-up burst: usable at once, within a few ms.
    end = _run(estimator, net, 0.0, 2.0, 0.25)
    assert _error_ms(estimator.estimate(), net, end) < 5.0
    # Ten minutes at 16 s: the drift is known, the offset within a fraction of a frame, and
    # still so 16 s after the last exchange (the prediction between two exchanges).
    end = _run(estimator, net, 2.0, 600.0, 16.0)
    estimate = estimator.estimate()
    assert estimate is not None and estimate.source == "server"
    # A fast media clock sees the server's time come slower: the offset shrinks.
    assert abs(estimate.drift_ppm + drift_ppm) < 5.0
    assert _error_ms(estimate, net, end) < within_ms
    assert _error_ms(estimate, net, end + 16 * NS) < within_ms
    assert estimate.error_ns <= (2 * net.latency_ns + 20 * jitter_ms * MS) // 2


def test_slow_round_trips_do_not_pull_the_estimate() -> None:
    net = Network(50.0, jitter_ns=2 * MS)
    estimator = ClockEstimator()
    end = _run(estimator, net, 0.0, 300.0, 8.0)
    # A congested link: answers delayed by up to 400 ms on the way back only (the worst
    # case, all of it asymmetric), a third of the samples.
    for i in range(10):
        t = end + i * 8 * NS
        sample = net.sample(t)
        if i % 3 == 0:
            sample = TimeSample(sample.t1, sample.t2, sample.t3, sample.t4 + 400 * MS)
        estimator.add(sample)
    assert _error_ms(estimator.estimate(), net, end + 80 * NS) < 0.5


def test_a_short_round_trip_that_disagrees_is_dropped_as_an_outlier() -> None:
    net = Network(0.0, jitter_ns=MS)
    estimator = ClockEstimator()
    end = _run(estimator, net, 0.0, 120.0, 4.0)
    # The server answered with a wrong clock reading once (a glitch, not a step).
    bad = net.sample(end)
    estimator.add(TimeSample(bad.t1, bad.t2 + 200 * MS, bad.t3 + 200 * MS, bad.t4))
    end = _run(estimator, net, end / NS + 4, end / NS + 40, 4.0)
    assert _error_ms(estimator.estimate(), net, end) < 0.5
    assert estimator.steps == 0


def test_a_stepped_server_clock_restarts_the_window() -> None:
    net = Network(20.0, jitter_ns=MS)
    estimator = ClockEstimator()
    end = _run(estimator, net, 0.0, 200.0, 4.0)
    net.server_step_ns = 1_500 * MS  # the server's NTP stepped its clock
    end = _run(estimator, net, end / NS, end / NS + 16, 4.0)
    assert estimator.steps == 1
    assert _error_ms(estimator.estimate(), net, end) < 2.0


def _sync(
    clock: VirtualClock, link: object, estimates: list[ClockEstimate | None], **kwargs: object
) -> TimeSync:
    return TimeSync(link, clock, estimates.append, interval_s=16.0, **kwargs)  # type: ignore[arg-type]


class VirtualLink:
    """Exchanges over a simulated network, on the virtual clock."""

    def __init__(self, net: Network, clock: VirtualClock) -> None:
        self.net, self.clock = net, clock
        self.calls = 0
        self.fail: BaseException | None = None

    async def exchange(self, clock: object) -> TimeSample:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        now = self.clock.now_ns()
        sample = self.net.sample(now)
        await self.clock.sleep_until(now + (sample.t4 - sample.t1))
        return sample


async def test_the_loop_bursts_then_spaces_exchanges_and_stops_when_not_wanted() -> None:
    clock = VirtualClock(start_ns=0)
    net = Network(0.0, jitter_ns=MS)
    link = VirtualLink(net, clock)
    estimates: list[ClockEstimate | None] = []
    sync = _sync(clock, link, estimates)
    task = asyncio.create_task(sync.run())
    await clock.advance(10 * NS)
    assert link.calls == 0 and estimates == [None]  # not wanted yet: no traffic
    sync.want(True)
    await clock.advance(NS)
    assert link.calls >= 4
    first = estimates[-1]
    assert first is not None and first.samples >= 4
    await clock.advance(NS)  # 2 s in: the eight of the burst (0 to 1.75 s)
    burst = link.calls
    assert burst == 8
    await clock.advance(58 * NS)
    settling = link.calls - burst
    assert 56 <= settling <= 59  # one a second for the first minute
    await clock.advance(60 * NS)
    # Then 2, 4, 8, then every 16 s.
    assert settling + burst + 5 <= link.calls <= settling + burst + 7
    assert _error_ms(estimates[-1], net, clock.now_ns()) < 1.0
    sync.want(False)
    await clock.advance(NS)
    calls = link.calls
    assert estimates[-1] is None
    await clock.advance(100 * NS)
    assert link.calls == calls
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_failures_are_retried_and_revocation_propagates() -> None:
    clock = VirtualClock(start_ns=0)
    link = VirtualLink(Network(0.0), clock)
    link.fail = RequestFailed("time exchange: HTTP 503", status=503, retry_after=3.0)
    sync = _sync(clock, link, [])
    sync.want(True)
    task = asyncio.create_task(sync.run())
    await clock.advance(10 * NS)
    assert sync.failures == link.calls == 4  # at 0, 3, 6, 9 s (the server's Retry-After)
    link.fail = DeviceRevoked("revoked")
    await clock.advance(3 * NS)
    assert task.done()
    with pytest.raises(DeviceRevoked):
        task.result()


async def test_a_synchronised_system_clock_is_used_when_preferred() -> None:
    clock = VirtualClock(start_ns=0)
    link = VirtualLink(Network(0.0), clock)
    synced: list[int | None] = [SERVER_EPOCH + 42 * MS]
    estimates: list[ClockEstimate | None] = []

    def system_time() -> int | None:
        value = synced[0]
        return None if value is None else value + clock.now_ns()

    sync = _sync(clock, link, estimates, prefer_system=True, system_time=system_time)
    sync.want(True)
    task = asyncio.create_task(sync.run())
    await clock.advance(3 * NS)
    estimate = estimates[-1]
    assert link.calls == 0
    assert estimate is not None and estimate.source == "system"
    assert estimate.offset_at(clock.now_ns()) == SERVER_EPOCH + 42 * MS
    assert estimate.error_ns == 0
    synced[0] = None  # the NTP client lost its servers: back to the group's server
    await clock.advance(60 * NS)
    assert link.calls > 0
    estimate = estimates[-1]
    assert estimate is not None and estimate.source == "server"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.slow
async def test_a_device_joining_a_sync_group_estimates_the_servers_clock(tmp_path: Path) -> None:
    """Over the real server on 127.0.0.1: the agent keeps group time only while in a group."""
    live = LiveServer(tmp_path / "server").start()
    host = FakeHost()
    try:
        async with httpx.AsyncClient() as http:
            agent = SyncAgent(
                device_settings(), tmp_path / "device", host, http=http, server_url=live.url
            )
            async with running(agent.run()):
                await wait_for(lambda: bool(host.pairing_codes), what="a pairing code")
                with live.admin() as admin:
                    device_id = await asyncio.to_thread(admin.claim, host.pairing_codes[-1], "W")
                    await asyncio.to_thread(publish, admin, device_id, "in step")
                    await wait_for(lambda: bool(host.manifests), what="content")
                    assert agent.timesync.exchanges == 0  # not in a sync group: no exchanges
                    await asyncio.to_thread(admin.put_group, "wall", "Wall")
                    await asyncio.to_thread(admin.set_group, device_id, "wall")
                    await asyncio.to_thread(admin.set_group_sync, "wall")
                await wait_for(
                    lambda: (
                        host.manifests[-1].sync is not None
                        and bool(host.estimates[-1:])
                        and host.estimates[-1] is not None
                    ),
                    what="an estimate",
                )
                estimate = host.estimates[-1]
                assert estimate is not None and estimate.source == "server"
                # The server's clock is this machine's: the truth is wall minus monotonic.
                truth = time.time_ns() - time.monotonic_ns()
                assert abs(estimate.offset_at(time.monotonic_ns()) - truth) < 5 * MS
                assert estimate.error_ns < 5 * MS  # half a loopback round trip
                with live.admin() as admin:
                    await asyncio.to_thread(admin.set_group_sync, "wall", enabled=False)
                await wait_for(lambda: host.estimates[-1] is None, what="group time dropped")
                assert host.manifests[-1].sync is None
            agent.close()
    finally:
        live.stop()


@pytest.mark.parametrize("drift_ppm", [100.0, -95.0, 30.0])
def test_between_exchanges_the_prediction_stays_close_from_the_start(drift_ppm: float) -> None:
    """The worst moment: just before each exchange, the longest since the last one. Early
    on a slope fitted from a few noisy samples is mostly noise; it must not run away."""
    net = Network(drift_ppm, jitter_ns=500_000, seed=3)
    estimator = ClockEstimator()
    schedule = [0.25 * i for i in range(8)]
    gap = 2.0
    while schedule[-1] < 600:
        schedule.append(schedule[-1] + gap)
        gap = min(8.0, gap * 2)
    worst, worst_after_2_min = 0.0, 0.0
    for i, at in enumerate(schedule[:-1]):
        estimator.add(net.sample(int(at * NS)))
        if i < 3:
            continue
        before_next = int((schedule[i + 1] - 0.01) * NS)
        error = _error_ms(estimator.estimate(), net, before_next)
        worst = max(worst, error)
        if at > 120:
            worst_after_2_min = max(worst_after_2_min, error)
    assert worst < 2.0
    assert worst_after_2_min < 0.3
