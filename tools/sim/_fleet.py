"""The fleet simulator: many lightweight devices on one asyncio loop, for load on a server.

Each device speaks the real wire protocol through ``sync.DeviceClient`` (pairing claimed by
the admin API, heartbeats with ±20 % jitter at the interval the server asks for, one SSE stream),
but renders nothing and downloads no media. Halfway through, the admin changes the content every
device plays, and the report says how long the change took to reach every SSE stream.

Load only belongs on one's own machine: non-loopback servers are refused unless the caller
passes ``allow_remote``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import random
import resource
import socket
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from core import ConfigError, RetryPolicy, SignageError, honour_retry_after, spread
from protocol import ManifestEvent, Metrics, PairingPaired, PairingRequest
from server import AdminClient
from sync import DeviceClient, RequestFailed
from tools.sim._summary import distribution

GROUP = "fleet"
PLAYLIST = "fleet-news"
LAYOUT = "fleet-layout"
EXTRA_FDS_PER_DEVICE = 4  # its SSE stream and heartbeat on both ends (server in-process)
# A device's event-stream reconnects (sync.WatcherTiming's defaults).
RECONNECT = RetryPolicy(initial_s=1.0, max_s=60.0)


@dataclass(frozen=True)
class FleetOptions:
    devices: int
    duration_s: float
    server_url: str
    admin_token: str
    concurrency: int = 50
    sse_read_timeout_s: float = 45.0
    seed: int | None = None


@dataclass
class FleetStats:
    paired: int = 0
    pairing_s: float | None = None
    heartbeats: int = 0
    heartbeat_ms: list[float] = field(default_factory=list)
    streams: int = 0
    reconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    published_at: float | None = None
    heard: dict[str, float] = field(default_factory=dict)
    wanted_streams: int = 0
    all_streams: asyncio.Event = field(default_factory=asyncio.Event)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def stream_opened(self) -> None:
        self.streams += 1
        if self.streams >= self.wanted_streams:
            self.all_streams.set()


def is_loopback_url(url: str) -> bool:
    """True when every address the URL's host resolves to is a loopback address."""
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def require_loopback(url: str, *, allow_remote: bool) -> None:
    if not allow_remote and not is_loopback_url(url):
        raise ConfigError(
            [
                f"{url} is not this machine: the fleet simulator puts real load on a server. "
                "Pass --allow-remote if that server is yours to load."
            ]
        )


def raise_fd_limit(devices: int) -> None:
    """Thousands of streams need thousands of descriptors: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = devices * EXTRA_FDS_PER_DEVICE + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def fleet_metrics(version: str) -> Metrics:
    return Metrics(
        cpu_percent=3.0,
        memory_percent=20.0,
        memory_used_bytes=200 * 1024**2,
        disk_free_bytes=10 * 1024**3,
        disk_total_bytes=16 * 1024**3,
        uptime_s=60.0,
        player_version=version,
        state="playing",
        layout=LAYOUT,
    )


def seed_fleet_content(admin: AdminClient, text: str) -> None:
    """A one-zone text layout the whole fleet plays; changing ``text`` is the fan-out probe."""
    admin.put_playlist({"id": PLAYLIST, "items": [{"id": "news", "type": "text", "text": text}]})
    admin.put_layout(
        {
            "id": LAYOUT,
            "zones": [{"id": "main", "w": 1920, "h": 1080, "playlist": PLAYLIST}],
        }
    )
    admin.put_group(GROUP, "Fleet simulator")
    admin.assign(GROUP, group=True, default_layout=LAYOUT)


class FleetDevice:
    def __init__(self, index: int, client: DeviceClient, stats: FleetStats) -> None:
        self.name = f"fleet-{index:05d}"
        self.client = client
        self.stats = stats
        self.interval_s = 30.0
        self.etag: str | None = None

    async def pair(self, admin: AdminClient) -> None:
        request = PairingRequest(hardware_id=f"fleet-sim-{self.name}", name=self.name)
        created = await self.client.create_pairing(request)
        device_id = await asyncio.to_thread(admin.claim, created.code, self.name)
        await asyncio.to_thread(admin.set_group, device_id, GROUP)
        while True:
            status = await self.client.pairing_status(
                created.pairing_id, created.poll_token, wait_s=10.0
            )
            if isinstance(status, PairingPaired):
                self.client.token = status.device_token
                return

    async def fetch_manifest(self) -> None:
        fetched = await self.client.manifest(self.etag)
        self.etag = fetched.etag
        if fetched.manifest is not None:
            # The interval the server wants, before the first heartbeat answer says it again.
            self.interval_s = float(fetched.manifest.config.heartbeat_interval_s)

    async def heartbeats(self, rng: random.Random) -> None:
        metrics = fleet_metrics("fleet-sim")
        # A fleet that was paired together still spreads its heartbeats over one interval.
        await asyncio.sleep(rng.random() * self.interval_s)
        while True:
            begun = time.perf_counter()
            try:
                response, _ = await self.client.heartbeat(metrics)
            except RequestFailed as exc:
                # As a device does (sync.HeartbeatLoop): a full interval, or the server's
                # Retry-After when longer (up to the retry policy's cap).
                self.stats.error(f"heartbeat {exc.status or 'transport'}")
                await asyncio.sleep(
                    honour_retry_after(spread(self.interval_s, rng.random), exc.retry_after)
                )
                continue
            self.stats.heartbeats += 1
            self.stats.heartbeat_ms.append((time.perf_counter() - begun) * 1000)
            self.interval_s = float(response.heartbeat_interval_s)
            await asyncio.sleep(spread(self.interval_s, rng.random))

    def _heard(self, data: str) -> None:
        published = self.stats.published_at
        if published is None or self.name in self.stats.heard:
            return
        try:
            etag = ManifestEvent.model_validate_json(data).etag
        except ValidationError:
            self.stats.error("events malformed")
            return
        if etag != self.etag:
            self.stats.heard[self.name] = time.monotonic() - published

    async def events(self, read_timeout_s: float, rng: random.Random) -> None:
        connected_before = False
        reconnect = dataclasses.replace(RECONNECT, rng=rng.random)
        failures = 0
        while True:
            retry_after = None
            try:
                async with self.client.events(
                    last_event_id=None, read_timeout_s=read_timeout_s
                ) as source:
                    failures = 0
                    self.stats.stream_opened()
                    if connected_before:
                        self.stats.reconnects += 1
                    connected_before = True
                    try:
                        async for event in source.aiter_sse():
                            if event.event == "manifest":
                                self._heard(event.data)
                    finally:
                        self.stats.streams -= 1
            except RequestFailed as exc:
                self.stats.error(f"events {exc.status or 'transport'}")
                retry_after = exc.retry_after
            failures += 1
            await asyncio.sleep(reconnect.delay(failures, retry_after))


async def _pair_all(
    devices: list[FleetDevice], admin: AdminClient, stats: FleetStats, concurrency: int
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(device: FleetDevice) -> None:
        async with gate:
            try:
                await device.pair(admin)
                await device.fetch_manifest()
            except SignageError as exc:
                stats.error(f"pairing {type(exc).__name__}")
                return
            stats.paired += 1

    begun = time.monotonic()
    await asyncio.gather(*(one(d) for d in devices))
    stats.pairing_s = time.monotonic() - begun


async def _wait_for_streams(stats: FleetStats, timeout_s: float) -> None:
    if stats.streams >= stats.wanted_streams:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stats.all_streams.wait(), timeout_s)


async def run_fleet(options: FleetOptions) -> dict[str, Any]:
    """Pair, run and measure the fleet; returns the report (see ``format_fleet_report``)."""
    raise_fd_limit(options.devices)
    rng = random.Random(options.seed)  # noqa: S311 (jitter, not secrets)
    stats = FleetStats()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    admin = AdminClient(options.server_url, options.admin_token)
    try:
        await asyncio.to_thread(seed_fleet_content, admin, "fleet simulator: before")
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:
            devices = [
                FleetDevice(i + 1, DeviceClient(http, options.server_url), stats)
                for i in range(options.devices)
            ]
            await _pair_all(devices, admin, stats, options.concurrency)
            paired = [d for d in devices if d.client.token is not None]
            await _run_paired(paired, admin, stats, options, rng)
    finally:
        admin.close()
    return fleet_report(stats, options)


async def _run_paired(
    devices: list[FleetDevice],
    admin: AdminClient,
    stats: FleetStats,
    options: FleetOptions,
    rng: random.Random,
) -> None:
    begun = time.monotonic()
    stats.wanted_streams = len(devices)
    tasks = [
        task
        for d in devices
        for task in (
            asyncio.create_task(d.heartbeats(random.Random(rng.random()))),  # noqa: S311
            asyncio.create_task(
                d.events(options.sse_read_timeout_s, random.Random(rng.random()))  # noqa: S311
            ),
        )
    ]
    try:
        await _wait_for_streams(stats, timeout_s=options.duration_s / 2)
        remaining = options.duration_s / 2 - (time.monotonic() - begun)
        await asyncio.sleep(max(0.0, remaining))
        stats.published_at = time.monotonic()
        await asyncio.to_thread(seed_fleet_content, admin, "fleet simulator: after")
        await asyncio.sleep(max(0.0, options.duration_s - (time.monotonic() - begun)))
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def fleet_report(stats: FleetStats, options: FleetOptions) -> dict[str, Any]:
    elapsed = max(1e-9, options.duration_s)
    fanout = sorted(stats.heard.values())
    return {
        "server": options.server_url,
        "devices": options.devices,
        "duration_s": options.duration_s,
        "paired": stats.paired,
        "pairing_s": None if stats.pairing_s is None else round(stats.pairing_s, 3),
        "heartbeats": stats.heartbeats,
        "heartbeats_per_s": round(stats.heartbeats / elapsed, 2),
        "heartbeat_latency_ms": distribution(stats.heartbeat_ms),
        "sse_reconnects": stats.reconnects,
        "fanout": {
            "devices_reached": len(fanout),
            "of": stats.paired,
            "all_s": round(fanout[-1], 3) if fanout and len(fanout) == stats.paired else None,
            "p50_s": distribution(fanout)["p50"],
        },
        "errors": dict(sorted(stats.errors.items())),
    }


def format_fleet_report(report: dict[str, Any]) -> str:
    latency = report["heartbeat_latency_ms"]
    fanout = report["fanout"]
    errors = report["errors"]
    everyone = f"{fanout['all_s']:.3f} s" if fanout["all_s"] is not None else "not reached"
    lines = [
        f"fleet of {report['devices']} device(s) against {report['server']} "
        f"for {report['duration_s']:g} s",
        "",
        f"  paired          {report['paired']}/{report['devices']} in {report['pairing_s']} s",
        f"  heartbeats      {report['heartbeats']} ({report['heartbeats_per_s']}/s)  "
        f"latency p50 {latency['p50']} ms  p99 {latency['p99']} ms  max {latency['max']} ms",
        f"  fan-out         {fanout['devices_reached']}/{fanout['of']} devices heard the "
        f"manifest change; every device in {everyone} (p50 {fanout['p50_s']} s)",
        f"  SSE reconnects  {report['sse_reconnects']}",
        f"  errors          {sum(errors.values())}"
        + ("  " + ", ".join(f"{k}: {v}" for k, v in errors.items()) if errors else ""),
    ]
    return "\n".join(lines)
