"""Time exchanges over a simulated network, for the simulated devices of a sync group.

On a virtual clock a real HTTP round trip takes no media time at all (or, worse, whatever
the virtual clock jumped over meanwhile), so the simulator puts a model in place of the wire:
the request travels ``latency + jitter`` one way, the server reads the run's true clock (the
shared clock, shifted to the run's ``--start``), the answer travels back the same way with its
own draw. Jitter is exponential (mean ``jitter_ms``), independently each way, so most
exchanges are asymmetric, as on a real network; the estimator (``sync._timesync``) has to find
the short, nearly symmetric ones. The device stamps t1 and t4 on its own (drifting) media
clock, as a device does. Everything else in a simulated device's time sync is the real code.

``JitteredLink`` adds the same delays around a real link (``signage bench sync``: the real
endpoint, on the real clock, with a worse network than loopback).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from player import Clock
from sync import MediaTime, TimeLink, TimeSample

NS_PER_MS = 1_000_000
SERVER_NS = 50_000  # the server's own time between receipt and answer


@dataclass(frozen=True)
class NetworkModel:
    """One-way delay = ``latency_ms`` + an exponential draw of mean ``jitter_ms``."""

    latency_ms: float = 1.0
    jitter_ms: float = 2.0

    def one_way_ns(self, rng: random.Random) -> int:
        extra = rng.expovariate(1.0) * self.jitter_ms if self.jitter_ms > 0 else 0.0
        return round((self.latency_ms + extra) * NS_PER_MS)


class SimulatedLink:
    """The server's clock is ``true_clock``'s wall time plus ``world_offset_ns``."""

    def __init__(
        self, true_clock: Clock, network: NetworkModel, rng: random.Random, *, world_offset_ns: int
    ) -> None:
        self.true_clock = true_clock
        self.network = network
        self.rng = rng
        self.world_offset_ns = world_offset_ns
        self.exchanges = 0

    async def exchange(self, clock: MediaTime) -> TimeSample:
        t1 = clock.now_ns()
        up, down = self.network.one_way_ns(self.rng), self.network.one_way_ns(self.rng)
        true = self.true_clock
        await true.sleep_until(true.now_ns() + up)
        t2 = true.wall_ns() + self.world_offset_ns
        await true.sleep_until(true.now_ns() + SERVER_NS + down)
        self.exchanges += 1
        return TimeSample(t1, t2, t2 + SERVER_NS, clock.now_ns())


class JitteredLink:
    """A real link with simulated network delays added on the way out and back.

    The delays are added to the exchange's own timestamps (t1 earlier, t4 later) rather than
    slept: the server's t2 and t3 then fall exactly where a slower network would put them, and
    no sleep on a busy event loop adds a delay of its own to the figure.
    """

    def __init__(self, inner: TimeLink, network: NetworkModel, rng: random.Random) -> None:
        self.inner = inner
        self.network = network
        self.rng = rng

    async def exchange(self, clock: MediaTime) -> TimeSample:
        up, down = self.network.one_way_ns(self.rng), self.network.one_way_ns(self.rng)
        sample = await self.inner.exchange(clock)
        return TimeSample(sample.t1 - up, sample.t2, sample.t3, sample.t4 + down)
