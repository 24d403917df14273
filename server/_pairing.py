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
from server._auth import Admin, State, require_token
from server._bodies import JsonRoute
from server._db import devices, pairings
from server._problems import ApiError, problem_doc
from server._security import hash_token, new_id, new_token, pairing_code, same_hash
from server._state import ServerState, client_address

router = APIRouter(tags=["pairing"], route_class=JsonRoute)
_poll_bearer = HTTPBearer(auto_error=False, scheme_name="PollToken", description="poll_token")
MAX_WAIT_S = 30.0


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


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
    _limit(state.pairing_per_ip, client_address(request), "rate_limited")
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
            .values(
                token_hash=hash_token(token),
                token_expires_at=state.clock() + state.config.device_token_ttl_s,
            )
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
    token_hash = hash_token(require_token(credentials.credentials if credentials else None))
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


def _in_words(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


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


async def _claim(state: ServerState, body: ClaimRequest, key: str) -> ClaimResponse:
    """Flip the pending pairing to claimed and give it a device: the one this hardware
    already is (re-paired: its record, group and content kept, its token revoked), or new.

    Claims run one at a time under the content lock, and the lockout of ``key`` is checked
    and counted inside it: 300 simultaneous guesses evaluate at most ``claim_max_failures``
    wrong codes, while simultaneous right ones (a script pairing a fleet) all succeed.
    """
    async with state.content_lock:
        wait = state.claim_failures.retry_after(key)
        if wait:
            raise ApiError(
                429,
                "too_many_attempts",
                f"too many wrong codes; try again in {_in_words(wait)}",
                headers={"Retry-After": str(wait)},
            )
        try:
            return await _claim_locked(state, body)
        except ApiError as exc:
            if exc.code in ("pairing_not_found", "pairing_expired"):
                state.claim_failures.hit(key)
                state.counters.inc("claims_failed")
            raise


async def _claim_locked(state: ServerState, body: ClaimRequest) -> ClaimResponse:
    now = state.clock()
    async with state.writer.begin() as conn:
        row = (
            await conn.execute(
                select(pairings).where(
                    pairings.c.code == body.code,
                    pairings.c.status == "pending",
                    pairings.c.expires_at > now,
                )
            )
        ).first()
        if row is None:
            if await _expired(state, body.code, now):
                raise ApiError(
                    410, "pairing_expired", "this code expired; the screen shows a new one"
                )
            raise ApiError(404, "pairing_not_found", "no pending pairing has this code")
        req = PairingRequest.model_validate(row.request)
        known = (
            await conn.execute(
                select(devices)
                .where(devices.c.hardware_id == req.hardware_id, devices.c.revoked_at.is_(None))
                .order_by(devices.c.created_at.desc())
                .limit(1)
            )
        ).first()
        described = {
            "model": req.model,
            "resolution": req.resolution,
            "player_version": req.player_version,
        }
        if known is not None:
            device_id, name = known.id, body.name or known.name
            await conn.execute(
                update(devices)
                .where(devices.c.id == device_id)
                .values(
                    name=name,
                    token_hash=None,
                    previous_token_hash=None,
                    token_expires_at=None,
                    previous_token_expires_at=None,
                    **described,
                )
            )
        else:
            device_id, name = new_id("dev"), body.name or req.name or req.hardware_id[:64]
            await conn.execute(
                insert(devices).values(
                    id=device_id,
                    name=name,
                    hardware_id=req.hardware_id,
                    status="offline",
                    manifest_version=0,
                    created_at=now,
                    **described,
                )
            )
        # Single use: the code stops matching the moment it is claimed.
        await conn.execute(
            update(pairings)
            .where(pairings.c.id == row.id, pairings.c.status == "pending")
            .values(status="claimed", device_id=device_id)
        )
    if known is not None:
        # The old token is void: drop it from the cache and end the stream it opened.
        state.forget_device_auth(device_id)
        state.hub.close_device(device_id)
    event = state.pairing_events.pop(row.id, None)
    if event is not None:
        event.set()
    return ClaimResponse(device_id=device_id, re_paired=known is not None, name=name)


@router.post(
    "/api/v1/admin/pairings/claim",
    status_code=201,
    response_model=ClaimResponse,
    responses=problem_doc(401, 404, 410, 429),
)
async def claim(body: ClaimRequest, request: Request, state: State, admin: Admin) -> ClaimResponse:
    claimed = await _claim(state, body, f"{admin}|{client_address(request)}")
    state.counters.inc("claims_succeeded")
    return claimed
