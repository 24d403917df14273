"""The manifest watcher: server-sent events when they work, polling when they do not.

An event is only a hint; the manifest is the truth. Every (re)connect fetches the manifest
(``If-None-Match``), so a change published while the device was away is never missed. A stream
that stalls without closing is caught by a read timeout above twice the server's ping interval.
Reconnects follow the retry policy (``core.RetryPolicy``: full-jitter exponential backoff,
capped, at least the server's Retry-After), so a fleet that lost its server does not
reconnect in lockstep. After ``failures_before_poll`` failed attempts the
manifest is polled at the poll interval (or after the server's Retry-After, up to the same cap)
while SSE keeps being retried in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from core import ProtocolError, RetryPolicy, honour_retry_after, retry_after_of, retrying
from protocol import Command, Manifest, ManifestConfig, ManifestEvent
from sync._client import DeviceClient, MalformedManifest, RequestFailed
from sync._heartbeat import SyncReport

if TYPE_CHECKING:
    from tenacity import RetryCallState

log = logging.getLogger(__name__)

ApplyManifest = Callable[[Manifest, str | None], Awaitable[None]]


@dataclass
class WatcherTiming:
    ping_s: float = 15.0
    poll_interval_s: float = 60.0
    failures_before_poll: int = 3
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0

    @property
    def read_timeout_s(self) -> float:
        return 2.5 * self.ping_s


class StreamLost(RequestFailed):
    """The event stream ended or broke soon after it opened."""


def _retryable(exc: Exception) -> bool:
    # Even a 4xx: a proxy that refuses event streams must not stop the device polling and
    # retrying. DeviceRevoked (401) is not a RequestFailed and ends the session.
    return isinstance(exc, RequestFailed)


class ManifestWatcher:
    def __init__(
        self,
        client: DeviceClient,
        report: SyncReport,
        apply: ApplyManifest,
        *,
        on_command: Callable[[Command], Awaitable[None]],
        on_config: Callable[[ManifestConfig], None],
        timing: WatcherTiming,
        local_poll_interval_s: float,
    ) -> None:
        self.client = client
        self.report = report
        self.apply = apply
        self.on_command = on_command
        self.on_config = on_config
        self.timing = timing
        self.local_poll_interval_s = local_poll_interval_s
        self.last_event_id: str | None = None
        self.rejected_etag: str | None = None
        self.failures = 0
        self.connects = 0
        self.polls = 0
        self.connected = False
        self._refresh_wanted = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self._polling = asyncio.Event()
        self._retry = RetryPolicy(initial_s=timing.backoff_initial_s, max_s=timing.backoff_max_s)

    # --- manifest ---------------------------------------------------------------------------

    def hint(self, etag: str | None = None) -> None:
        """Something says the manifest changed; fetch it unless we already have that ETag."""
        if etag is not None and etag in (self.report.manifest_etag, self.rejected_etag):
            return
        self._refresh_wanted.set()

    def adopt_config(self, config: ManifestConfig) -> None:
        """The server's timing: its ping interval, and its poll interval unless ours is shorter."""
        self.timing.ping_s = float(config.sse_ping_s)
        self.timing.poll_interval_s = min(float(config.poll_interval_s), self.local_poll_interval_s)

    async def refresh(self) -> bool:
        """Fetch the manifest (If-None-Match); apply it when new. True when one was applied."""
        async with self._refresh_lock:
            try:
                fetched = await self.client.manifest(self.report.manifest_etag)
            except MalformedManifest as exc:
                self.rejected_etag = exc.etag
                self.report.manifest_error = str(exc)[:500]
                log.error(
                    "manifest rejected; still playing the last good one",
                    extra={"fields": {"error": str(exc), "etag": exc.etag}},
                )
                return False
            if fetched.manifest is None:
                return False
            manifest = fetched.manifest
            self.report.manifest_error = None
            self.rejected_etag = None
            self.report.manifest_etag = fetched.etag
            self.report.manifest_version = manifest.version
            self.adopt_config(manifest.config)
            self.on_config(manifest.config)
            log.info(
                "new manifest",
                extra={"fields": {"version": manifest.version, "etag": fetched.etag}},
            )
            await self.apply(manifest, fetched.etag)
            return True

    async def _refresher(self) -> None:
        while True:
            await self._refresh_wanted.wait()
            self._refresh_wanted.clear()
            try:
                await self.refresh()
            except (RequestFailed, ProtocolError) as exc:
                # The next reconnect, poll or heartbeat ETag asks again.
                log.warning("manifest fetch failed", extra={"fields": {"error": str(exc)}})

    # --- polling fallback -------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            await self._polling.wait()
            self.polls += 1
            retry_after = None
            try:
                await self.refresh()
            except (RequestFailed, ProtocolError) as exc:
                retry_after = retry_after_of(exc)
                log.warning(
                    "manifest poll failed",
                    extra={"fields": {"error": str(exc), "retry_after_s": retry_after}},
                )
            # A busy server's Retry-After (up to the retry policy's cap) outweighs the interval.
            await asyncio.sleep(honour_retry_after(self.timing.poll_interval_s, retry_after))

    @property
    def polling(self) -> bool:
        return self._polling.is_set()

    # --- server-sent events -----------------------------------------------------------------

    async def _handle_event(self, name: str, data: str) -> None:
        try:
            if name == "manifest":
                self.hint(ManifestEvent.model_validate_json(data).etag)
            elif name == "command":
                await self.on_command(Command.model_validate_json(data))
            elif name == "config":
                config = ManifestConfig.model_validate_json(data)
                self.adopt_config(config)
                self.on_config(config)
        except ValidationError as exc:
            log.warning(
                "ignoring an event the protocol does not allow",
                extra={"fields": {"event": name, "error": str(exc)[:300]}},
            )

    async def _stream_once(self) -> None:
        opened = time.monotonic()
        async with self.client.events(
            last_event_id=self.last_event_id, read_timeout_s=self.timing.read_timeout_s
        ) as source:
            self.failures = 0
            self.connects += 1
            self.connected = True
            self._polling.clear()
            self._refresh_wanted.set()
            log.info("event stream connected", extra={"fields": {"connects": self.connects}})
            try:
                async for event in source.aiter_sse():
                    if event.id:
                        self.last_event_id = event.id
                    if event.data:  # keepalive comments arrive as empty events
                        await self._handle_event(event.event, event.data)
            finally:
                self.connected = False
        lived = time.monotonic() - opened
        if lived < self.timing.ping_s:
            # Opened and closed at once: count it as a failure so backoff applies.
            raise StreamLost(f"event stream closed after {lived:.1f}s")

    async def _after_failure(self, state: RetryCallState) -> None:
        # Counted since the last good connection (tenacity's count also spans short-lived ones,
        # which keeps the backoff growing against a server that accepts and drops at once).
        self.failures += 1
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "event stream failed",
            extra={"fields": {"attempt": self.failures, "error": str(exc)}},
        )
        if self.failures >= self.timing.failures_before_poll and not self.polling:
            log.warning(
                "event stream unavailable; polling the manifest",
                extra={"fields": {"interval_s": self.timing.poll_interval_s}},
            )
            self._polling.set()

    async def _sse_loop(self) -> None:
        while True:
            async for attempt in retrying(
                self._retry, retry_on=_retryable, before_sleep=self._after_failure
            ):
                with attempt:
                    await self._stream_once()

    async def run(self) -> None:
        """Watch until cancelled; ``DeviceRevoked`` propagates."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._refresher(), name="manifest-refresh")
            group.create_task(self._poll_loop(), name="manifest-poll")
            group.create_task(self._sse_loop(), name="manifest-events")
