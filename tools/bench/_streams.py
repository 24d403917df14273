"""Device event streams for ``signage bench server``, held over raw sockets (httpx would cost
more than the server), reconnecting as the player does.

The reconnect policy is the player's event watcher's (``sync.ManifestWatcher`` with its default
``sync.WatcherTiming``): a stream that breaks, or ends sooner than one ping interval after it
opened, is a failure and the next attempt waits a full-jitter exponential back-off
(``core.RetryPolicy``: up to 1 s after the first failure, doubling to 60 s), at least the
server's ``Retry-After``; a stream that ends cleanly after living longer reconnects at once.
The player ignores the SSE ``retry:`` field (it is for browsers' EventSource): so does this.
Every reconnect sends ``Last-Event-ID`` and fetches the manifest with ``If-None-Match``, as the
watcher does; as its refresher, a device fetches one manifest at a time, and a ``manifest``
event naming another ETag while a fetch is under way asks for one more after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

from core import RetryPolicy
from sync import WatcherTiming
from tools.bench._http import RawPool
from tools.bench._nginx import UPSTREAM_HEADER

EVENTS_PATH = "/api/v1/device/events"
MANIFEST_PATH = "/api/v1/device/manifest"


class _Failed(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__()
        self.retry_after = retry_after


@dataclass
class Device:
    """One device's stream: what it saw, and when (``time.perf_counter``)."""

    token: str
    last_id: str | None = None
    etag: str | None = None
    upstream: str = ""  # the replica behind the proxy that holds the current stream
    connects: int = 0
    failures: int = 0
    opened_at: list[float] = field(default_factory=list)  # each stream's first line
    manifests: list[tuple[float, str]] = field(default_factory=list)  # (when, etag)
    configs: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    fetching: bool = False  # a manifest fetch is under way
    wanted: bool = False  # another was asked for meanwhile: it follows this one


@dataclass
class Holder:
    """Streams of many devices, each reconnecting on its own; ``stop`` ends them all."""

    pool: RawPool  # the streams (one connection each) and the manifest fetches
    timing: WatcherTiming = field(default_factory=WatcherTiming)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    fetches: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        # The watcher's own policy object, built as ManifestWatcher builds it.
        self.retry = RetryPolicy(
            initial_s=self.timing.backoff_initial_s, max_s=self.timing.backoff_max_s
        )

    def start(self, device: Device) -> None:
        self.tasks.append(asyncio.create_task(self._hold(device)))

    async def settled(self, timeout_s: float) -> None:
        """Wait for the manifest fetches under way (a burst of connects makes many)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.fetches:
                    await asyncio.gather(*self.fetches, return_exceptions=True)

    async def stop(self) -> None:
        tasks = [*self.tasks, *self.fetches]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        self.pool.close()

    def _fetch(self, device: Device) -> None:
        """As the watcher's refresher: one fetch at a time per device; one asked for while
        another is under way follows it, with the ETag that one got (most often a 304)."""
        if device.fetching:
            device.wanted = True
            return
        device.fetching = True
        task = asyncio.get_running_loop().create_task(self._fetch_manifests(device))
        self.fetches.add(task)
        task.add_done_callback(self.fetches.discard)

    async def _fetch_manifests(self, device: Device) -> None:
        try:
            while True:
                device.wanted = False
                await self._fetch_manifest(device)
                if not device.wanted:
                    return
        finally:
            device.fetching = False

    async def _hold(self, device: Device) -> None:
        while True:
            opened = time.monotonic()
            try:
                clean = await self._stream_once(device)
                if not clean or time.monotonic() - opened < self.timing.ping_s:
                    raise _Failed
            except (_Failed, OSError, ConnectionError, ValueError, IndexError) as exc:
                device.failures += 1
                retry_after = exc.retry_after if isinstance(exc, _Failed) else None
                await asyncio.sleep(self.retry.delay(device.failures, retry_after))

    async def _stream_once(self, device: Device) -> bool:
        """One stream until it ends: True when it ended cleanly (the last chunk came)."""
        lines = self.pool.stream_lines(EVENTS_PATH, device.token, device.last_id)
        status = int((await anext(lines)).split()[1])
        headers: dict[str, str] = {}
        async for line in lines:
            if not line:
                break
            key, _, value = line.decode().partition(": ")
            headers[key] = value
        if status != 200:
            retry_after = headers.get("retry-after", "")
            raise _Failed(float(retry_after) if retry_after.isdigit() else None)
        device.upstream = headers.get(UPSTREAM_HEADER, "")
        first = True
        name = b""
        data = b""
        last = b""
        async for line in lines:
            if first:
                first = False
                device.failures = 0
                device.connects += 1
                device.opened_at.append(time.perf_counter())
                device.connected.set()
                # As the watcher does on each connect: the manifest, unless it is unchanged.
                self._fetch(device)
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"id:"):
                device.last_id = line[3:].strip().decode()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
            elif not line and name:
                self._dispatch(device, name, data)
                name, data = b"", b""
            last = line if line else last
        return last == b"0"  # chunked encoding's last chunk: the server ended the stream

    def _dispatch(self, device: Device, name: bytes, data: bytes) -> None:
        if name == b"manifest":
            etag = json.loads(data)["etag"]
            device.manifests.append((time.perf_counter(), etag))
            if etag != device.etag:  # an event is a hint: the player fetches what it names
                self._fetch(device)
        elif name == b"config":
            device.configs += 1

    async def _fetch_manifest(self, device: Device) -> None:
        headers = {"If-None-Match": device.etag} if device.etag else {}
        request = self.pool.prepare("GET", MANIFEST_PATH, token=device.token, headers=headers)
        response = await self.pool.request(request)
        if response.status == 200:
            device.etag = response.headers.get("etag", device.etag)


async def wait_connected(devices: list[Device], timeout_s: float) -> int:
    """Wait until every device's stream is open (or the time is up); how many are."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(d.connected.wait() for d in devices)), timeout=timeout_s
        )
    return sum(1 for d in devices if d.connected.is_set())


async def wait_for_etag(devices: list[Device], etag: str, timeout_s: float) -> None:
    """Wait until every device has had a ``manifest`` event for ``etag`` (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(any(e == etag for _, e in d.manifests) for d in devices):
            return
        await asyncio.sleep(0.02)
