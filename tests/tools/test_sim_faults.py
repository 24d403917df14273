"""The simulator's fault layer in front of its server: only device event streams break."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tools.sim._faults import EVENTS_PATH, EventStreamBreaker


async def _ticks() -> AsyncIterator[ServerSentEvent]:
    n = 0
    while True:
        n += 1
        yield ServerSentEvent(data=str(n), event="tick")
        await asyncio.sleep(0.01)


async def _server(scope: Scope, receive: Receive, send: Send) -> None:
    """A stand-in for the reference server: an endless event stream and a plain route."""
    if scope["path"] == EVENTS_PATH:
        await EventSourceResponse(_ticks(), ping=0)(scope, receive, send)
    else:
        await PlainTextResponse("manifest")(scope, receive, send)


class Client:
    """One request through the ASGI app; keeps what was sent back."""

    def __init__(self, path: str) -> None:
        self.scope: Scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "headers": [],
            "query_string": b"",
        }
        self.sent: list[Message] = []
        self.body = asyncio.Event()
        self._requested = False
        self._gone = asyncio.Event()  # the client never leaves on its own here

    async def receive(self) -> Message:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.body.set()

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def finished(self) -> bool:
        last = self.sent[-1] if self.sent else {}
        return last.get("type") == "http.response.body" and not last.get("more_body")


async def _serve(app: ASGIApp, client: Client) -> None:
    await app(client.scope, client.receive, client.send)


async def _request(app: ASGIApp, path: str) -> Client:
    client = Client(path)
    await asyncio.wait_for(_serve(app, client), 5)
    return client


async def test_refusing_ends_open_streams_and_answers_new_ones_503() -> None:
    breaker = EventStreamBreaker()
    app = breaker.wrap(_server)
    stream = Client(EVENTS_PATH)
    task = asyncio.create_task(_serve(app, stream))
    await asyncio.wait_for(stream.body.wait(), 5)  # the stream is flowing
    assert not task.done()

    breaker.refuse()
    await asyncio.wait_for(task, 5)  # the open stream ended...
    assert stream.status == 200 and stream.finished  # ...cleanly, as a server closing it
    assert breaker.closed == 1

    refused = await _request(app, EVENTS_PATH)
    assert refused.status == 503 and refused.finished
    problem = json.loads(b"".join(m.get("body", b"") for m in refused.sent[1:]))
    assert problem["code"] == "events_unavailable"
    other = await _request(app, "/api/v1/device/manifest")  # the rest of the API works
    assert other.status == 200 and other.sent[1]["body"] == b"manifest"
    assert breaker.refused == 1


async def test_accepting_again_lets_streams_through() -> None:
    breaker = EventStreamBreaker()
    app = breaker.wrap(_server)
    breaker.refuse()
    assert (await _request(app, EVENTS_PATH)).status == 503
    breaker.accept()
    stream = Client(EVENTS_PATH)
    task = asyncio.create_task(_serve(app, stream))
    await asyncio.wait_for(stream.body.wait(), 5)
    assert stream.status == 200 and not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
