"""Pairing: a device asks for a code, an admin claims it, the device collects its token once."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, insert, select, update

from protocol import (
    ClaimRequest,
    ClaimResponse,
    PairingCreated,
    PairingPaired,
    PairingPending,
    PairingRequest,
)
from server._auth import Admin, State, _require
from server._db import devices, pairings
from server._problems import ApiError, problem_doc
from server._security import hash_token, new_id, new_token, pairing_code, same_hash
from server._state import ServerState

router = APIRouter(tags=["pairing"])
_poll_bearer = HTTPBearer(auto_error=False, scheme_name="PollToken", description="poll_token")
MAX_WAIT_S = 30.0


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limit(window: Any, key: str, code: str) -> None:
    wait = window.hit(key)
    if wait:
        raise ApiError(429, code, "too many requests", headers={"Retry-After": str(wait)})


async def _unique_code(conn: Any, now: float) -> str:
    for _ in range(50):
        code = pairing_code()
        taken = await conn.execute(
            select(pairings.c.id).where(
                pairings.c.code == code, pairings.c.status == "pending", pairings.c.expires_at > now
            )
        )
        if taken.first() is None:
            return code
    raise ApiError(503, "pairing_unavailable", "no free pairing code; try again shortly")


@router.post(
    "/api/v1/pairings",
    status_code=201,
    response_model=PairingCreated,
    responses=problem_doc(429, 503),
)
async def request_pairing(body: PairingRequest, request: Request, state: State) -> PairingCreated:
    _limit(state.pairing_per_ip, _client_ip(request), "rate_limited")
    _limit(state.pairing_per_hardware, body.hardware_id, "rate_limited")
    now = state.clock()
    poll_token = new_token()
    pairing_id = new_id("pr")
    async with state.content_lock, state.writer.begin() as conn:
        # A new request from the same hardware replaces its pending code.
        await conn.execute(
            delete(pairings).where(
                pairings.c.hardware_id == body.hardware_id, pairings.c.status == "pending"
            )
        )
        code = await _unique_code(conn, now)
        await conn.execute(
            insert(pairings).values(
                id=pairing_id,
                code=code,
                hardware_id=body.hardware_id,
                request=body.model_dump(mode="json"),
                poll_token_hash=hash_token(poll_token),
                status="pending",
                created_at=now,
                expires_at=now + state.config.pairing_ttl_s,
            )
        )
    state.counters.inc("pairings_requested")
    return PairingCreated(
        pairing_id=pairing_id,
        code=code,
        expires_at=_utc(now + state.config.pairing_ttl_s),
        poll_token=poll_token,
        poll_after_s=2.0,
    )


async def _pairing_row(state: ServerState, pairing_id: str, token_hash: str) -> Any:
    async with state.engine.connect() as conn:
        row = (await conn.execute(select(pairings).where(pairings.c.id == pairing_id))).first()
    if row is None or not same_hash(row.poll_token_hash, token_hash):
        raise ApiError(404, "pairing_not_found", "no such pairing")
    return row


async def _hand_over(state: ServerState, row: Any) -> PairingPaired:
    """Give the device its token, exactly once: the status flip decides who gets it."""
    token = new_token()
    async with state.writer.begin() as conn:
        flipped = await conn.execute(
            update(pairings)
            .where(pairings.c.id == row.id, pairings.c.status == "claimed")
            .values(status="consumed")
        )
        if flipped.rowcount != 1:
            raise ApiError(410, "pairing_consumed", "the token was already handed over")
        await conn.execute(
            update(devices)
            .where(devices.c.id == row.device_id)
            .values(token_hash=hash_token(token))
        )
    state.counters.inc("pairings_completed")
    return PairingPaired(status="paired", device_id=row.device_id, device_token=token)


@router.get(
    "/api/v1/pairings/{pairing_id}",
    response_model=PairingPending | PairingPaired,
    responses=problem_doc(401, 404, 410),
)
async def poll_pairing(
    pairing_id: str,
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_poll_bearer)],
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0,
) -> PairingPending | PairingPaired:
    token_hash = hash_token(_require(credentials))
    # Listen for the claim before reading the row: a claim committed while the row is being
    # read would otherwise find no one to wake, and the device would wait out its long poll.
    event: asyncio.Event | None = None
    owner = False  # this poll made the event, so it removes it (a bad poll cannot)
    if wait > 0:
        event = state.pairing_events.get(pairing_id)
        if event is None:
            event = state.pairing_events[pairing_id] = asyncio.Event()
            owner = True
    try:
        row = await _pairing_row(state, pairing_id, token_hash)
        remaining = row.expires_at - state.clock()
        if row.status == "pending" and remaining > 0 and event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(wait, remaining))
            row = await _pairing_row(state, pairing_id, token_hash)
    finally:
        unclaimed = event is not None and not event.is_set()
        if owner and unclaimed and state.pairing_events.get(pairing_id) is event:
            state.pairing_events.pop(pairing_id, None)
    if row.status == "claimed":
        return await _hand_over(state, row)
    if row.status == "consumed":
        raise ApiError(410, "pairing_consumed", "the token was already handed over")
    if row.expires_at <= state.clock():
        raise ApiError(410, "pairing_expired", "the pairing code expired; request a new one")
    return PairingPending(status="pending", expires_at=_utc(row.expires_at))


async def _expired(state: ServerState, code: str, now: float) -> bool:
    """Whether ``code`` was shown recently and ran out (an installer who was too slow)."""
    async with state.engine.connect() as conn:
        row = (
            await conn.execute(
                select(pairings.c.id).where(
                    pairings.c.code == code,
                    pairings.c.status == "pending",
                    pairings.c.expires_at <= now,
                )
            )
        ).first()
    return row is not None


@router.post(
    "/api/v1/admin/pairings/claim",
    status_code=201,
    response_model=ClaimResponse,
    responses=problem_doc(401, 404, 410, 429),
)
async def claim(body: ClaimRequest, request: Request, state: State, admin: Admin) -> ClaimResponse:
    key = f"{admin}|{_client_ip(request)}"
    wait = state.claim_failures.retry_after(key)
    if wait:
        raise ApiError(
            429, "too_many_attempts", "too many wrong codes", headers={"Retry-After": str(wait)}
        )
    now = state.clock()
    device_id = new_id("dev")
    async with state.content_lock, state.writer.begin() as conn:
        row = (
            await conn.execute(
                select(pairings).where(
                    pairings.c.code == body.code,
                    pairings.c.status == "pending",
                    pairings.c.expires_at > now,
                )
            )
        ).first()
        if row is not None:
            # Single use: the code stops matching the moment it is claimed.
            await conn.execute(
                update(pairings)
                .where(pairings.c.id == row.id, pairings.c.status == "pending")
                .values(status="claimed", device_id=device_id)
            )
            req = PairingRequest.model_validate(row.request)
            await conn.execute(
                insert(devices).values(
                    id=device_id,
                    name=body.name,
                    hardware_id=req.hardware_id,
                    model=req.model,
                    resolution=req.resolution,
                    player_version=req.player_version,
                    status="offline",
                    manifest_version=0,
                    created_at=now,
                )
            )
    if row is None:
        state.claim_failures.hit(key)
        state.counters.inc("claims_failed")
        if await _expired(state, body.code, now):
            raise ApiError(410, "pairing_expired", "this code expired; the screen shows a new one")
        raise ApiError(404, "pairing_not_found", "no pending pairing has this code")
    event = state.pairing_events.pop(row.id, None)
    if event is not None:
        event.set()
    state.counters.inc("claims_succeeded")
    return ClaimResponse(device_id=device_id)
