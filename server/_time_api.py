"""The device's clock exchange: what the server's clock read when a request came and went.

Devices of a sync group share one time base, the server's clock. Each estimates its offset
from it NTP-style (``sync._timesync``): it notes its own clock when it sends (t1) and when the
answer arrives (t4); the server answers with its clock at receipt (t2) and just before
answering (t3). The exchange is tiny and runs over the device's existing connection.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from protocol import TimeResponse
from server._auth import Device, State
from server._problems import ApiError, problem_doc

router = APIRouter(tags=["device"])
# A device's burst at start-up is about ten exchanges; afterwards one every few seconds. The
# window is ServerState.time_exchanges (shared between replicas with Redis).
EXCHANGES_PER_WINDOW = 30
WINDOW_S = 10.0


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@router.get(
    "/api/v1/device/time", response_model=TimeResponse, responses=problem_doc(401, 400, 429)
)
async def device_time(device: Device, state: State) -> TimeResponse:
    received = state.clock()
    wait = await state.time_exchanges.hit(device.id)
    if wait:
        raise ApiError(
            429,
            "time_exchange_too_frequent",
            f"at most {EXCHANGES_PER_WINDOW} time exchanges per {WINDOW_S:g} s",
            headers={"Retry-After": str(wait)},
        )
    return TimeResponse(received_at=_utc(received), sent_at=_utc(state.clock()))
