"""Faults the simulator injects into its in-process server, as an ASGI layer in front of it.

``EventStreamBreaker`` breaks only the devices' event streams (``GET /api/v1/device/events``):
while broken, the streams open at that moment end and new ones are answered 503, so the sync
agents fall back to polling the manifest; every other route keeps working. It is the
simulator's own (``server.run_in_thread(wrap=...)``), never part of the server's API.

``refuse`` and ``accept`` are called from the simulator's thread; the layer runs on the
server's, so open streams are told through their loop's ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

EVENTS_PATH = "/api/v1/device/events"
_DISCONNECT: Message = {"type": "http.disconnect"}


class EventStreamBreaker:
    """Wraps the server app; ``refuse()`` breaks device event streams until ``accept()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refusing = False
        self._open: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.refused = 0  # stream requests answered 503
        self.closed = 0  # open streams ended by refuse()

    @property
    def refusing(self) -> bool:
        return self._refusing

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The ASGI app to serve: ``app`` behind this layer."""

        async def layer(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"] != EVENTS_PATH:
                await app(scope, receive, send)
            elif self._refusing:
                self.refused += 1
                await _refuse(send)
            else:
                await self._stream(app, scope, receive, send)

        return layer

    def refuse(self) -> None:
        """End every open event stream and answer new ones 503, until ``accept``."""
        with self._lock:
            self._refusing = True
            streams = list(self._open)
        for loop, broken in streams:
            with contextlib.suppress(RuntimeError):  # that server's loop has closed
                loop.call_soon_threadsafe(broken.set)

    def accept(self) -> None:
        with self._lock:
            self._refusing = False

    async def _stream(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one stream; when broken, the app sees the client leave and the response ends."""
        broken = asyncio.Event()
        entry = (asyncio.get_running_loop(), broken)
        with self._lock:
            self._open.add(entry)
        response: MutableMapping[str, Any] = {"started": False, "done": False}

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                response["done"] = True
            await send(message)

        async def receive_or_break() -> Message:
            if broken.is_set():
                return _DISCONNECT
            message = asyncio.ensure_future(receive())
            cut = asyncio.ensure_future(broken.wait())
            done, pending = await asyncio.wait({message, cut}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            return message.result() if message in done else _DISCONNECT

        try:
            await app(scope, receive_or_break, tracked_send)
            if broken.is_set():
                self.closed += 1
                if response["started"] and not response["done"]:
                    # The stream stopped mid-response: end it, as a server closing it would.
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with self._lock:
                self._open.discard(entry)


async def _refuse(send: Send) -> None:
    problem = {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "code": "events_unavailable",
        "detail": "event streams are broken on purpose by the simulator (break_sse)",
    }
    body = json.dumps(problem).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
