"""Server-sent events: one stream per device (a second replaces the first), and dashboards."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from server._auth import Admin, Device, State
from server._bodies import JsonRoute
from server._content import manifest_config
from server._device_api import manifest_of, mark_seen
from server._hub import Subscriber
from server._problems import ApiError, problem_doc
from server._sse import RETRY_MS, EventStream, encode, frame
from server._state import ServerState, client_address

router = APIRouter(tags=["events"], route_class=JsonRoute)
SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "text/event-stream", "content": {"text/event-stream": {}}}
}


async def _open_device(
    state: ServerState, device_id: str, last_event_id: str | None
) -> tuple[Subscriber, bytes]:
    """Subscribe (replacing the device's other stream, on any replica) and the stream's
    first events: the replay, or a manifest hint when no exact replay is possible."""
    subscription = await state.hub.subscribe(device_id, last_event_id)
    try:
        state.counters.inc("sse_connects")
        await mark_seen(state, device_id)
        if subscription.gap:
            # No exact replay possible: the manifest is the truth, so point at it.
            cached = await manifest_of(state, device_id)
            last_id = str(subscription.last_id)
            opening = frame(
                event="manifest", data=json.dumps({"etag": cached.etag}), id=last_id, retry=RETRY_MS
            ) + frame(event="config", data=manifest_config(state).model_dump_json(), id=last_id)
        elif subscription.replay:
            first, *rest = subscription.replay
            opening = encode(first, RETRY_MS) + b"".join(encode(e) for e in rest)
        else:
            opening = frame(comment="connected", retry=RETRY_MS)
    except BaseException:
        await _close_device(state, device_id, subscription.subscriber)
        raise
    return subscription.subscriber, opening


async def _close_device(state: ServerState, device_id: str, subscriber: Subscriber) -> None:
    if state.hub.unsubscribe(device_id, subscriber):
        # The current stream closed: its silence starts now; the sweeper decides later.
        await state.presence.touch(device_id, state.clock())


async def _limit_connects(state: ServerState, request: Request) -> None:
    """Reconnect storms from one address (a broken client, a hostile one) are refused
    before they subscribe; ``Retry-After`` spreads the retries out."""
    wait = await state.sse_connects.hit(client_address(request))
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
) -> EventStream:
    await _limit_connects(state, request)
    device_id = device.id

    def sent(count: int) -> None:
        state.counters.inc("sse_events", count)

    return EventStream(
        lambda: _open_device(state, device_id, last_event_id),
        lambda subscriber: _close_device(state, device_id, subscriber),
        state.pings,
        sent=sent,
    )


def dashboard_stream(state: ServerState) -> EventStream:
    async def open_dashboard() -> tuple[Subscriber, bytes]:
        return state.hub.dashboard_subscribe(), frame(comment="connected", retry=RETRY_MS)

    async def close_dashboard(subscriber: Subscriber) -> None:
        state.hub.dashboard_unsubscribe(subscriber)

    return EventStream(open_dashboard, close_dashboard, state.pings)


@router.get("/api/v1/admin/events", responses={**SSE_DOC, **problem_doc(400, 401, 429)})
async def admin_events(request: Request, admin: Admin, state: State) -> EventStream:
    await _limit_connects(state, request)
    return dashboard_stream(state)
