"""Writing event streams (``text/event-stream``) straight to ASGI, as cheaply as possible.

A replica holds one stream per screen, thousands of them, so a stream costs one task (the
request's own, which writes), one small task that notices the client leaving, and its
``server._hub.Subscriber`` inbox: no task per event, no timer per stream. Keep-alive comments
come from ``Pings``, one timer shared by every stream of the process, which wakes them all
each ``server.sse_ping_s``.

A slow reader is the transport's to pace: while a write waits for the client to drain, events
wait in the inbox, and an inbox that overflows closes the stream (the client reconnects and
replays what it missed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from sse_starlette.sse import AppStatus
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from server._hub import Event, Subscriber

RETRY_MS = 3000
SEP = "\r\n"
PING = b": ping\r\n\r\n"
EXIT_POLL_S = 0.5
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
]


def _clean(value: str) -> str:
    return value.replace("\r", "").replace("\n", "")


def frame(
    *,
    event: str | None = None,
    data: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One event (or comment) in the ``text/event-stream`` format."""
    lines = []
    if comment is not None:
        lines += [f": {part}" for part in comment.splitlines() or [""]]
    if id is not None:
        lines.append(f"id: {_clean(id)}")
    if event is not None:
        lines.append(f"event: {_clean(event)}")
    if data is not None:
        lines += [f"data: {part}" for part in data.splitlines() or [""]]
    if retry is not None:
        lines.append(f"retry: {retry}")
    return (SEP.join(lines) + SEP + SEP).encode()


class Pings:
    """One timer for every stream of the process: each tick wakes them all, and each writes
    a keep-alive comment (proxies and clients take a silent stream for a dead one)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.tick = 0
        self._subscribers: set[Subscriber] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.period_s, self._fire)

    def discard(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def _fire(self) -> None:
        self.tick += 1
        for subscriber in self._subscribers:
            subscriber.wake()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.period_s, self._fire) if self._subscribers else None


def encode(event: Event, retry: int | None = None) -> bytes:
    return frame(event=event.name, data=json.dumps(event.data), id=event.id, retry=retry)


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # said by the stream ending; not worth a "never retrieved" warning


def _body(chunk: bytes, more: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": chunk, "more_body": more}


class EventStream(Response):
    """A response that holds a subscriber's stream open: ``open`` (before anything is sent,
    so its errors are still problem+json) subscribes and says what the stream starts with;
    ``close`` runs once it has ended, whoever ended it. ``watch``, when given, runs beside
    the stream for its whole life (and may ``end`` it)."""

    def __init__(
        self,
        open: Callable[[], Awaitable[tuple[Subscriber, bytes]]],
        close: Callable[[Subscriber], Awaitable[None]],
        pings: Pings,
        *,
        sent: Callable[[int], None] | None = None,
        watch: Callable[[EventStream], Awaitable[None]] | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.media_type = "text/event-stream"
        self._open = open
        self._close = close
        self._pings = pings
        self._sent = sent
        self.watch = watch
        self._subscriber: Subscriber | None = None
        self._last = b""
        self._gone = False

    def end(self, last: bytes = b"") -> None:
        """Close the stream after writing ``last``."""
        self._last = last
        if self._subscriber is not None:
            self._subscriber.close()

    async def _listen(self, receive: Receive, subscriber: Subscriber) -> None:
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:  # also when receive fails: the client is as good as gone
            self._gone = True
            subscriber.wake()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber, opening = await self._open()
        self._subscriber = subscriber
        pings = self._pings
        tick = pings.tick
        pings.add(subscriber)
        listener = asyncio.ensure_future(self._listen(receive, subscriber))
        listener.add_done_callback(_retrieve)
        watcher = None if self.watch is None else asyncio.ensure_future(self.watch(self))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send(_body(opening))
            while not self._gone:
                events = subscriber.take()
                if events:
                    if self._sent is not None:
                        self._sent(len(events))
                    await send(_body(b"".join(encode(e) for e in events)))
                elif subscriber.closed:
                    await send(_body(self._last, more=False))
                    return
                elif pings.tick != tick:
                    tick = pings.tick
                    await send(_body(PING))
                else:
                    await subscriber.wait()
        finally:
            pings.discard(subscriber)
            for task in (listener, watcher):
                if task is not None:
                    task.cancel()
            await self._close(subscriber)


async def end_on_exit(close_all: Callable[[], None]) -> None:
    """End every stream once uvicorn is told to exit: it waits for open responses before it
    shuts down, and an event stream never ends by itself (its client reconnects to another
    replica, or to this one restarted). sse_starlette's hook on uvicorn's exit signal says
    when."""
    while not AppStatus.should_exit:  # noqa: ASYNC110 (a plain flag, set in a signal handler)
        await asyncio.sleep(EXIT_POLL_S)
    close_all()
