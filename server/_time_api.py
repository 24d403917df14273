"""The device's clock exchange: what the server's clock read when a request came and went.

Devices of a sync group share one time base, the server's clock. Each estimates its offset
from it NTP-style (``sync._timesync``): it notes its own clock when it sends (t1) and when the
answer arrives (t4); the server answers with its clock at receipt (t2) and just before
answering (t3). The exchange is tiny and runs over the device's existing connection.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request

from protocol import TimeResponse
from server._auth import Device, State
from server._limits import SlidingWindow
from server._problems import ApiError, problem_doc
from server._state import ServerState

router = APIRouter(tags=["device"])
# A device's burst at start-up is about ten exchanges; afterwards one every few seconds.
EXCHANGES_PER_WINDOW = 30
WINDOW_S = 10.0


def _limit(request: Request, state: ServerState) -> SlidingWindow:
    app_state = request.app.state
    window: SlidingWindow | None = getattr(app_state, "time_exchange_limit", None)
    if window is None:
        window = SlidingWindow(EXCHANGES_PER_WINDOW, WINDOW_S, state.clock)
        app_state.time_exchange_limit = window
    return window


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@router.get(
    "/api/v1/device/time", response_model=TimeResponse, responses=problem_doc(401, 400, 429)
)
async def device_time(request: Request, device: Device, state: State) -> TimeResponse:
    received = state.clock()
    wait = _limit(request, state).hit(device.id)
    if wait:
        raise ApiError(
            429,
            "time_exchange_too_frequent",
            f"at most {EXCHANGES_PER_WINDOW} time exchanges per {WINDOW_S:g} s",
            headers={"Retry-After": str(wait)},
        )
    return TimeResponse(received_at=_utc(received), sent_at=_utc(state.clock()))
