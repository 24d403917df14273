"""Server-sent events: one stream per device (a second replaces the first), and dashboards."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from server._auth import DEVICE_KEY, Admin, Device, State
from server._bodies import JsonRoute
from server._content import manifest_config
from server._device_api import manifest_of, mark_seen
from server._hub import Subscriber
from server._problems import ApiError, problem_doc, problem_response
from server._sse import RETRY_MS, EventStream, encode, frame
from server._state import AuthedDevice, ServerState, client_address

router = APIRouter(tags=["events"], route_class=JsonRoute)
DEVICE_EVENTS = "/api/v1/device/events"
LAST_EVENT_ID_MAX = 64
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


@router.get(DEVICE_EVENTS, responses={**SSE_DOC, **problem_doc(400, 401, 429)})
async def device_events(
    request: Request,
    device: Device,
    state: State,
    last_event_id: Annotated[str | None, Header(max_length=LAST_EVENT_ID_MAX)] = None,
) -> EventStream:
    await _limit_connects(state, request)
    return device_stream(state, device.id, last_event_id)


def device_stream(state: ServerState, device_id: str, last_event_id: str | None) -> EventStream:
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


class DeviceEvents:
    """``GET /api/v1/device/events`` served here, in front of the router, once ``AuthGate``
    has authenticated the device: a stream is held for hours, and the router's layers
    (dependencies, exit stacks, request objects) would be held with it, thousands of times
    over. Requests this does not take as they are (a ``Last-Event-ID`` too long, another
    method) go on to the route, which answers them with the same stream or a problem."""

    def __init__(self, app: ASGIApp, state_of: Callable[[], ServerState | None]) -> None:
        self.app = app
        self.state_of = state_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state_of()
        if (
            state is None
            or scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["path"] != DEVICE_EVENTS
        ):
            await self.app(scope, receive, send)
            return
        device = scope.get("state", {}).get(DEVICE_KEY)
        last_event_id = _header(scope, b"last-event-id")
        if not isinstance(device, AuthedDevice) or (
            last_event_id is not None and len(last_event_id) > LAST_EVENT_ID_MAX
        ):
            await self.app(scope, receive, send)
            return
        try:
            await _limit_connects(state, Request(scope))
        except ApiError as exc:
            await problem_response(
                exc.status, exc.code, exc.detail, instance=scope["path"], headers=exc.headers
            )(scope, receive, send)
            return
        await device_stream(state, device.id, last_event_id)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
