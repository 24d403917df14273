"""The heartbeat: metrics up, server time, interval, manifest ETag and pending commands down."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core import ProtocolError, honour_retry_after, retry_after_of, spread
from protocol import Command, HeartbeatResponse, Metrics
from sync._client import DeviceClient, RequestFailed
from sync._host import DeviceHost
from sync._metrics import HostSampler

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """Sync-side facts the heartbeat carries; updated by the watcher and the impression queue."""

    manifest_version: int | None = None
    manifest_etag: str | None = None
    manifest_error: str | None = None
    impressions_dropped: int = 0


class HeartbeatLoop:
    def __init__(
        self,
        client: DeviceClient,
        host: DeviceHost,
        sampler: HostSampler,
        report: SyncReport,
        *,
        interval_s: float,
        player_version: str,
        on_commands: Callable[[list[Command]], Awaitable[None]],
        on_manifest_etag: Callable[[str], None],
        on_token_due: Callable[[], Awaitable[None]] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.host = host
        self.sampler = sampler
        self.report = report
        self.interval_s = interval_s
        self.player_version = player_version
        self.on_commands = on_commands
        self.on_manifest_etag = on_manifest_etag
        self.on_token_due = on_token_due
        self.rng = rng
        self.beats = 0
        self.failures = 0
        self._wake = asyncio.Event()

    def set_interval(self, interval_s: float) -> None:
        if interval_s != self.interval_s:
            log.info("heartbeat interval changed", extra={"fields": {"interval_s": interval_s}})
            self.interval_s = interval_s
            self._wake.set()

    def metrics(self) -> Metrics:
        host = self.sampler.sample()
        status = self.host.status()
        return Metrics(
            cpu_percent=host.cpu_percent,
            memory_percent=host.memory_percent,
            memory_used_bytes=host.memory_used_bytes,
            disk_free_bytes=host.disk_free_bytes,
            disk_total_bytes=host.disk_total_bytes,
            temperature_c=host.temperature_c,
            uptime_s=host.uptime_s,
            player_version=self.player_version,
            python_version=host.python_version,
            state=status.state,
            layout=status.layout,
            items=dict(list(status.items.items())[:64]),
            cache=status.cache,
            dropped_frames=status.dropped_frames,
            impressions_dropped=self.report.impressions_dropped,
            manifest_version=self.report.manifest_version,
            manifest_error=self.report.manifest_error,
            power=status.power,
            interrupt=status.interrupt,
            quarantined=status.quarantined[:64],
            time=status.time,
        )

    async def beat(self) -> HeartbeatResponse:
        response, _headers = await self.client.heartbeat(self.metrics())
        self.beats += 1
        self.host.feed_server_time(response.server_time.astimezone(dt.UTC))
        self.set_interval(float(response.heartbeat_interval_s))
        if response.manifest_etag and response.manifest_etag != self.report.manifest_etag:
            self.on_manifest_etag(response.manifest_etag)
        if response.commands:
            await self.on_commands(response.commands)
        due = response.token_refresh_at
        # Compared with the server's time: a Pi without a real-time clock may be far off.
        if due is not None and due <= response.server_time and self.on_token_due is not None:
            await self.on_token_due()
        return response

    async def run(self) -> None:
        """Beat forever; ``DeviceRevoked`` propagates, anything transient is retried."""
        while True:
            retry_after = None
            try:
                await self.beat()
                self.failures = 0
            except (RequestFailed, ProtocolError) as exc:
                # A body the contract does not allow is a server bug: retried like an outage.
                self.failures += 1
                retry_after = retry_after_of(exc)
                log.warning(
                    "heartbeat failed",
                    extra={"fields": {"error": str(exc), "retry_after_s": retry_after}},
                )
            # A failed beat waits a full interval too: a fleet must not hammer a sick server;
            # longer when the server says so (Retry-After, up to the retry policy's cap).
            await self._sleep(honour_retry_after(spread(self.interval_s, self.rng), retry_after))

    async def _sleep(self, delay: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=delay)
        except TimeoutError:
            return
        # The server changed the interval mid-sleep: the new one counts from now.
        await asyncio.sleep(spread(self.interval_s, self.rng))
