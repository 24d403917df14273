"""Manifest watcher over httpx.MockTransport: events as hints, polling fallback, bad manifests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from protocol import Command, Manifest, ManifestConfig
from sync import DeviceClient, ManifestWatcher, SyncReport, WatcherTiming
from tests.sync.device_fakes import manifest_dict

SSE = {"content-type": "text/event-stream"}


class Server:
    """A manifest endpoint plus a scripted event stream."""

    def __init__(self) -> None:
        self.manifest: dict[str, Any] = manifest_dict(1)
        self.etag = '"v1"'
        self.manifest_gets: list[httpx.Request] = []
        self.event_gets: list[httpx.Request] = []
        # Each connection takes the next: bytes (then the stream ends), None (refused) or
        # HANG (a ping, then an open stream that says nothing more).
        self.streams: list[bytes | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/device/manifest"):
            self.manifest_gets.append(request)
            if request.headers.get("if-none-match") == self.etag:
                return httpx.Response(304, headers={"ETag": self.etag})
            return httpx.Response(200, json=self.manifest, headers={"ETag": self.etag})
        self.event_gets.append(request)
        body = self.streams.pop(0) if self.streams else None
        if body is None:
            raise httpx.ConnectError("refused", request=request)
        if body == HANG:
            return httpx.Response(200, headers=SSE, content=_hang())
        return httpx.Response(200, headers=SSE, content=body)


HANG = b"<hang>"


async def _hang() -> AsyncIterator[bytes]:
    yield b": connected\n\n"
    await asyncio.sleep(3600)


def watcher_for(server: Server, **timing: Any) -> tuple[ManifestWatcher, list[Manifest]]:
    applied: list[Manifest] = []

    async def apply(manifest: Manifest, etag: str | None) -> None:
        applied.append(manifest)

    async def on_command(command: Command) -> None:
        commands.append(command)

    client = DeviceClient(
        httpx.AsyncClient(transport=httpx.MockTransport(server)), "http://s", token="t" * 20
    )
    settings: dict[str, Any] = {"ping_s": 1.0, "poll_interval_s": 0.05}
    settings.update(backoff_initial_s=0.01, backoff_max_s=0.02, **timing)
    watcher = ManifestWatcher(
        client,
        SyncReport(),
        apply,
        on_command=on_command,
        on_config=configs.append,
        timing=WatcherTiming(**settings),
        local_poll_interval_s=settings["poll_interval_s"],
    )
    return watcher, applied


commands: list[Command] = []
configs: list[ManifestConfig] = []


async def run_until(watcher: ManifestWatcher, done: Callable[[], bool]) -> None:
    task = asyncio.create_task(watcher.run())
    try:
        for _ in range(500):
            if done():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition not reached")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def event(name: str, data: Any, event_id: int) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def test_every_connect_fetches_the_manifest() -> None:
    """Plaisoram: an event is a hint; reconnecting re-fetches the truth."""
    server = Server()
    server.streams = [b": connected\n\n", b": connected\n\n"]
    watcher, applied = watcher_for(server)
    await run_until(watcher, lambda: len(server.event_gets) >= 2 and len(server.manifest_gets) >= 2)
    assert [m.version for m in applied] == [1]
    assert server.manifest_gets[1].headers["if-none-match"] == '"v1"'


async def test_manifest_event_fetches_the_new_version_and_last_event_id_is_resent() -> None:
    server = Server()
    watcher, applied = watcher_for(server)
    await watcher.refresh()
    server.manifest, server.etag = manifest_dict(2, "new"), '"v2"'
    server.streams = [event("manifest", {"etag": '"v2"'}, 41), b": again\n\n"]
    await run_until(watcher, lambda: len(applied) == 2 and len(server.event_gets) >= 2)
    assert [m.version for m in applied] == [1, 2]
    assert server.event_gets[1].headers["last-event-id"] == "41"
    assert watcher.report.manifest_version == 2


async def test_commands_and_config_events_are_dispatched() -> None:
    commands.clear()
    configs.clear()
    server = Server()
    server.streams = [
        event("command", {"id": "c9", "name": "identify"}, 1)
        + event("config", {"heartbeat_interval_s": 10, "poll_interval_s": 20, "sse_ping_s": 5}, 2)
        + event("command", {"id": "bad", "name": "format_disk"}, 3)
    ]
    watcher, _ = watcher_for(server)
    await run_until(watcher, lambda: any(c.sse_ping_s == 5 for c in configs))
    assert [c.id for c in commands] == ["c9"]


def test_server_timing_sets_the_stall_timeout_and_a_shorter_local_poll_wins() -> None:
    watcher, _ = watcher_for(Server())
    watcher.adopt_config(ManifestConfig(heartbeat_interval_s=10, poll_interval_s=20, sse_ping_s=5))
    assert watcher.timing.ping_s == 5.0
    assert watcher.timing.read_timeout_s > 2 * 5.0
    assert watcher.timing.poll_interval_s == 0.05
    watcher.local_poll_interval_s = 600
    watcher.adopt_config(ManifestConfig(poll_interval_s=20))
    assert watcher.timing.poll_interval_s == 20


async def test_after_three_failures_it_polls_and_keeps_retrying_sse() -> None:
    server = Server()
    server.streams = [None, None, None, None, None]
    watcher, applied = watcher_for(server)
    await run_until(watcher, lambda: watcher.polls >= 2 and len(server.event_gets) >= 5)
    assert watcher.polling
    assert applied and applied[0].version == 1, "polling delivered the manifest"
    # SSE comes back: polling stops.
    watcher2, _ = watcher_for(server)
    server.streams = [None, None, None, HANG]
    await run_until(watcher2, lambda: watcher2.polls >= 1 and watcher2.connects >= 1)
    assert not watcher2.polling
    assert watcher2.failures == 0


async def test_malformed_manifest_is_rejected_reported_and_last_good_kept() -> None:
    server = Server()
    watcher, applied = watcher_for(server)
    assert await watcher.refresh()
    broken = manifest_dict(2)
    broken["layouts"][0]["zones"][0]["playlist"] = "missing"
    server.manifest, server.etag = broken, '"v2"'
    assert not await watcher.refresh()
    assert [m.version for m in applied] == [1]
    assert watcher.report.manifest_error is not None
    assert "missing" in watcher.report.manifest_error
    assert watcher.report.manifest_etag == '"v1"'
    # The same bad version hinted again is not refetched.
    before = len(server.manifest_gets)
    watcher.hint('"v2"')
    assert not watcher._refresh_wanted.is_set()
    assert len(server.manifest_gets) == before
    # A fixed version replaces it and clears the report.
    server.manifest, server.etag = manifest_dict(3), '"v3"'
    assert await watcher.refresh()
    assert watcher.report.manifest_error is None


async def test_a_proxy_that_refuses_event_streams_leaves_the_device_polling() -> None:
    server = Server()
    watcher, applied = watcher_for(server)

    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/device/events"):
            server.event_gets.append(request)
            return httpx.Response(404, text="no such route")
        return server(request)

    watcher.client.http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    await run_until(watcher, lambda: watcher.polls >= 2 and len(server.event_gets) >= 5)
    assert watcher.polling and applied


async def test_a_busy_servers_retry_after_slows_the_polling() -> None:
    """Polling every 50 ms, a 503 with Retry-After: 2 holds the next poll back two seconds."""
    server = Server()
    watcher, _ = watcher_for(server)

    def busy(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/device/manifest"):
            server.manifest_gets.append(request)
            return httpx.Response(503, text="busy", headers={"Retry-After": "2"})
        return server(request)

    watcher.client.http = httpx.AsyncClient(transport=httpx.MockTransport(busy))
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.sleep(1.0)  # twenty poll intervals: only the first poll may go out
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert watcher.polling and watcher.polls == 1
