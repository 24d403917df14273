"""Server-sent events: one stream per device (a second replaces the first), and dashboards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from server._auth import Admin, Device, State
from server._bodies import JsonRoute
from server._content import manifest_config
from server._device_api import manifest_of, mark_seen
from server._hub import Event, Subscriber
from server._problems import ApiError, problem_doc
from server._state import ServerState, client_address

router = APIRouter(tags=["events"], route_class=JsonRoute)
RETRY_MS = 3000
SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "text/event-stream", "content": {"text/event-stream": {}}}
}


def _sse(event: Event) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(event.data), event=event.name, id=str(event.id))


async def _drain(subscriber: Subscriber) -> AsyncIterator[Event]:
    """Events until the subscriber is closed (replaced, revoked or too far behind)."""
    closed = asyncio.create_task(subscriber.closed.wait())
    getter: asyncio.Task[Event] | None = None
    try:
        while not subscriber.closed.is_set():
            getter = asyncio.create_task(subscriber.queue.get())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                return
            yield getter.result()
    finally:
        closed.cancel()
        if getter is not None:
            getter.cancel()  # also when the stream is cancelled (the client left) mid-wait


async def _device_stream(
    state: ServerState, device_id: str, last_event_id: str | None
) -> AsyncIterator[ServerSentEvent]:
    subscription = state.hub.subscribe(device_id, last_event_id)
    state.counters.inc("sse_connects")
    try:
        await mark_seen(state, device_id)
        first = True
        if subscription.gap:
            # No exact replay possible: the manifest is the truth, so point at it.
            cached = await manifest_of(state, device_id)
            yield ServerSentEvent(
                data=json.dumps({"etag": cached.etag}),
                event="manifest",
                id=str(subscription.last_id),
                retry=RETRY_MS,
            )
            yield ServerSentEvent(
                data=manifest_config(state).model_dump_json(),
                event="config",
                id=str(subscription.last_id),
            )
            first = False
        for event in subscription.replay:
            sse = _sse(event)
            if first:
                sse.retry = RETRY_MS
                first = False
            yield sse
        if first:
            yield ServerSentEvent(comment="connected", retry=RETRY_MS)
        async for event in _drain(subscription.subscriber):
            state.counters.inc("sse_events")
            yield _sse(event)
    finally:
        if state.hub.unsubscribe(device_id, subscription.subscriber):
            # The current stream closed: its silence starts now; the sweeper decides later.
            state.presence.touch(device_id, state.clock())


def _limit_connects(state: ServerState, request: Request) -> None:
    """Reconnect storms from one address (a broken client, a hostile one) are refused
    before they subscribe; ``Retry-After`` spreads the retries out."""
    wait = state.sse_connects.hit(client_address(request))
    if wait:
        raise ApiError(
            429,
            "too_many_connects",
            f"too many event stream connects from this address; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )


@router.get("/api/v1/device/events", responses={**SSE_DOC, **problem_doc(400, 401, 429)})
async def device_events(
    request: Request,
    device: Device,
    state: State,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    _limit_connects(state, request)
    return EventSourceResponse(
        _device_stream(state, device.id, last_event_id),
        ping=state.config.sse_ping_s,
    )


async def _dashboard_stream(state: ServerState) -> AsyncIterator[ServerSentEvent]:
    subscriber = state.hub.dashboard_subscribe()
    try:
        yield ServerSentEvent(comment="connected", retry=RETRY_MS)
        async for event in _drain(subscriber):
            yield _sse(event)
    finally:
        state.hub.dashboard_unsubscribe(subscriber)


@router.get("/api/v1/admin/events", responses={**SSE_DOC, **problem_doc(400, 401, 429)})
async def admin_events(request: Request, admin: Admin, state: State) -> EventSourceResponse:
    _limit_connects(state, request)
    return EventSourceResponse(_dashboard_stream(state), ping=state.config.sse_ping_s)
