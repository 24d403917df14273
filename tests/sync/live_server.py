"""The real reference server on 127.0.0.1, behind an ASGI layer that injects faults, and a
sync agent with a fake host wired to it: the harness of the fault tests and the benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr

from core import ServerConfig, Settings, SyncConfig
from server import AdminClient, create_app

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Faults:
    """What the server should get wrong. Keys are path suffixes."""

    status: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    stall_events: bool = False
    corrupt_manifest: bool = False
    lose_response: set[str] = field(default_factory=set)  # handled, then the answer is lost
    hits: dict[str, int] = field(default_factory=dict)


class FaultyApp:
    def __init__(self, app: App, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def _respond(self, send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        for suffix, (status, retry_after) in self.faults.status.items():
            if path.endswith(suffix):
                self.faults.hits[suffix] = self.faults.hits.get(suffix, 0) + 1
                problem = {"title": "Injected", "status": status, "code": "injected_fault"}
                headers = {"content-type": "application/problem+json"}
                if retry_after is not None:
                    headers["retry-after"] = str(retry_after)
                await self._respond(send, status, json.dumps(problem).encode(), headers)
                return
        if self.faults.corrupt_manifest and path.endswith("/device/manifest"):
            body = json.dumps({"version": 99, "default_layout": "nowhere"}).encode()
            headers = {"content-type": "application/json", "etag": '"corrupt"'}
            await self._respond(send, 200, body, headers)
            return
        if any(path.endswith(suffix) for suffix in self.faults.lose_response):
            await self.app(scope, receive, self._discard)
            await self._respond(send, 502, b"", {"content-type": "text/plain"})
            return
        if self.faults.stall_events and path.endswith("/device/events"):
            await self.app(scope, receive, self._stalling(send))
            return
        await self.app(scope, receive, send)

    async def _discard(self, message: Message) -> None:
        return None

    def _stalling(self, send: Send) -> Send:
        """Pass the headers and the first chunk, then swallow everything: open but silent."""
        chunks = 0

        async def stalled(message: Message) -> None:
            nonlocal chunks
            if message["type"] == "http.response.body":
                chunks += 1
                if chunks > 1:
                    return
            await send(message)

        return stalled


class LiveServer:
    """Start, stop (a kill, as seen from the device) and restart on the same port."""

    def __init__(self, data_dir: Path, *, sse_ping_s: float = 1.0) -> None:
        self.data_dir = data_dir
        # The server's clock: real time plus ``skew_s``, which a test moves forward (token
        # expiry) while rate limits and presence still see time pass normally.
        self.skew_s = 0.0
        self.admin_token = secrets.token_urlsafe(24)
        self.settings = Settings(
            server=ServerConfig(
                admin_token=SecretStr(self.admin_token),
                sse_ping_s=sse_ping_s,
                heartbeat_interval_s=5.0,
            )
        )
        self.faults = Faults()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        app = FaultyApp(
            create_app(self.settings, self.data_dir, clock=lambda: time.time() + self.skew_s),
            self.faults,
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
            ws="none",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(15)
            self._server = self._thread = None

    def admin(self) -> AdminClient:
        return AdminClient(self.url, self.admin_token)


def device_settings(**sync: Any) -> Settings:
    values: dict[str, Any] = {
        "device_name": "Lobby",
        "hardware_id": "hw-test",
        "heartbeat_interval_s": 5.0,
        "poll_interval_s": 0.5,
        "backoff_max_s": 0.5,
    }
    values.update(sync)
    return Settings(sync=SyncConfig(**values), server=ServerConfig(sse_ping_s=1.0))


def publish(admin: AdminClient, device_id: str, text: str, layout: str = "l1") -> None:
    """Put a one-zone text layout on the device (a version bump each time)."""
    admin.put_playlist({"id": f"p-{layout}", "items": [{"id": "t1", "type": "text", "text": text}]})
    admin.put_layout(
        {
            "id": layout,
            "width": 640,
            "height": 360,
            "zones": [{"id": "main", "w": 640, "h": 360, "playlist": f"p-{layout}"}],
        }
    )
    admin.assign(device_id, default_layout=layout)


async def wait_for(condition: Callable[[], bool], within_s: float = 30.0, what: str = "") -> None:
    """Poll ``condition`` (bounded): the fault tests wait for behaviour, not for a fixed time."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(task_coro: Awaitable[None]) -> Any:
    task = asyncio.ensure_future(task_coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
