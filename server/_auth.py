"""Who is calling: the device behind a Bearer token, or the admin.

Authentication runs in ``AuthGate``, an ASGI layer in front of the routes, so a request with
a wrong token is refused before a byte of its body is read (FastAPI reads bodies before it
solves dependencies). The dependencies below hand the gate's verdict to the handlers and
document the security schemes in /openapi.json.

Failed attempts are counted per client address: past ``server.auth_failures_per_ip`` within
``server.auth_failure_window_s`` the address gets 429 without its token being looked at (a
device token already known to be valid still passes). A device token's lookup reserves its
place in the count before the database is asked and gives it back when the token was good,
so concurrent guesses, through any number of replicas, cannot all slip in before the first is
counted. The lookups from one address are batched in each process (one query and one
reservation step for all the tokens that arrived meanwhile, as many as the address has
failures left for), so a site's screens behind one NAT address, reconnecting at once after a
restart, do not wait for one round trip each; a window full only of lookups still in flight
(on another replica) is asked again rather than refusing a valid token. An admin
token is compared first (no database) and a wrong one counted in the same step as the check.
Tokens are accepted only in the ``Authorization`` header; query strings are refused in
``server._front``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Row, or_, select, update
from starlette.types import ASGIApp, Receive, Scope, Send

from server._db import devices
from server._problems import ApiError, problem_response
from server._routes import Routes
from server._security import bearer_token, hash_token, same_hash
from server._state import AuthedDevice, ServerState, client_address, get_state, scope_address

_device_bearer = HTTPBearer(
    auto_error=False, scheme_name="DeviceToken", description="device_token from pairing"
)
_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="SIGNAGE_ADMIN_TOKEN"
)

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
AUTH_CACHE_MAX = 100_000
RESERVED_RETRY_S = 0.02  # a full window with lookups in flight is asked again after this
DEVICE_KEY = "signage.device"
ADMIN_KEY = "signage.admin"


def require_token(token: str | None) -> str:
    if not token:
        raise ApiError(401, "unauthorized", "missing bearer token", headers=_UNAUTHORIZED)
    return token


def _too_many(wait: int) -> ApiError:
    return ApiError(
        429,
        "too_many_failures",
        f"too many failed authentications from this address; try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def _cached(state: ServerState, token_hash: str) -> AuthedDevice | None:
    cached = state.auth_cache.get(token_hash)
    # The dict lookup is by hash of the secret; the compare below is still constant-time.
    if cached is None or not same_hash(cached.token_hash, token_hash):
        return None
    if cached.expires_at is not None and cached.expires_at <= state.clock():
        del state.auth_cache[token_hash]
        return None
    return cached


def _verdict(state: ServerState, row: Row[Any] | None, token_hash: str) -> AuthedDevice | ApiError:
    current = row is not None and same_hash(row.token_hash, token_hash)
    if row is None or not (current or same_hash(row.previous_token_hash, token_hash)):
        return ApiError(401, "invalid_token", "unknown or revoked token", headers=_UNAUTHORIZED)
    if row.revoked_at is not None:
        return ApiError(401, "device_revoked", "this device was revoked", headers=_UNAUTHORIZED)
    expires_at = row.token_expires_at if current else row.previous_token_expires_at
    if expires_at is not None and expires_at <= state.clock():
        return ApiError(
            401, "token_expired", "the device token expired; pair again", headers=_UNAUTHORIZED
        )
    return AuthedDevice(
        id=row.id, token_hash=token_hash, expires_at=expires_at, previous=not current
    )


async def _lookup(state: ServerState, token_hashes: list[str]) -> list[AuthedDevice | ApiError]:
    """The verdict on each token, from one query for all of them."""
    async with state.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(devices).where(
                    or_(
                        devices.c.token_hash.in_(token_hashes),
                        devices.c.previous_token_hash.in_(token_hashes),
                    )
                )
            )
        ).all()
    found = {h: row for row in rows for h in (row.token_hash, row.previous_token_hash) if h}
    verdicts = [_verdict(state, found.get(token_hash), token_hash) for token_hash in token_hashes]
    for device in verdicts:
        if not isinstance(device, AuthedDevice) or device.previous:
            continue
        if found[device.token_hash].previous_token_hash is not None:
            await _retire_previous(state, device.id)
        if len(state.auth_cache) < AUTH_CACHE_MAX:
            state.auth_cache[device.token_hash] = device
    return verdicts


async def _retire_previous(state: ServerState, device_id: str) -> None:
    """The rotated token is in use, so the device has it: retire the old one."""
    async with state.writer.begin() as conn:
        await conn.execute(
            update(devices)
            .where(devices.c.id == device_id)
            .values(previous_token_hash=None, previous_token_expires_at=None)
        )
    await state.forget_device_auth(device_id)


async def _lookup_batch(
    state: ServerState, address: str, token_hashes: list[str]
) -> list[AuthedDevice | ApiError]:
    """Look up a batch of tokens from one address, each reserving its failure first: the
    verdicts of the first ones, as many as the address has failures left for."""
    while True:
        wait, reserved = await state.auth_failures.reserve_many(address, len(token_hashes))
        if reserved:
            break
        if wait:
            return [_too_many(wait) for _ in token_hashes]
        # Full only with lookups in flight (another replica's): they settle within moments.
        await asyncio.sleep(RESERVED_RETRY_S)
    try:
        verdicts = await _lookup(state, token_hashes[: len(reserved)])
    except BaseException:
        await state.auth_failures.settle(address, reserved, [])
        raise
    await state.auth_failures.settle(
        address,
        [r for r, v in zip(reserved, verdicts, strict=True) if isinstance(v, AuthedDevice)],
        [r for r, v in zip(reserved, verdicts, strict=True) if not isinstance(v, AuthedDevice)],
    )
    return verdicts


async def authenticate_device(state: ServerState, token: str | None, address: str) -> AuthedDevice:
    token_hash = hash_token(require_token(token))
    cached = _cached(state, token_hash)
    if cached is not None:
        return cached
    # Lookups from one address are batched, one batch at a time in this process, and each
    # token reserves its failure before the database is asked: guesses cannot all pass the
    # check before one is counted, and a crowd of devices does not wait for one round trip
    # each.
    return await state.auth_lookups.submit(
        address, token_hash, functools.partial(_lookup_batch, state, address)
    )


async def authenticate_admin(state: ServerState, token: str | None, address: str) -> str:
    """The hash of the admin credential (rate limits key on it, never on the secret)."""
    token_hash = hash_token(require_token(token))
    if not same_hash(state.admin_token_hash, token_hash):
        # Counted and checked in one step: past the limit, a wrong token is not even answered.
        wait = await state.auth_failures.hit(address)
        if wait:
            raise _too_many(wait)
        raise ApiError(401, "invalid_token", "wrong admin token", headers=_UNAUTHORIZED)
    wait = await state.auth_failures.retry_after(address)
    if wait:
        raise _too_many(wait)
    return token_hash


def credential_kind(path: str) -> str | None:
    """Which token a path needs: "admin", "device", or None (pairing, operations, unknown)."""
    if path.startswith("/api/v1/admin/"):
        return "admin"
    if path.startswith(("/api/v1/device/", "/api/v1/assets/")):
        return "device"
    return None


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class AuthGate:
    """Check the credential a path needs before the route (and its body) is touched.

    A method or path no route serves goes straight to the router's 405/404, which read no
    body either: what does not exist needs no credential to be told so.
    """

    def __init__(
        self,
        app: ASGIApp,
        state_of: Callable[[], ServerState | None],
        routes: Routes,
    ) -> None:
        self.app = app
        self.state_of = state_of
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state_of()
        kind = credential_kind(scope.get("path", "")) if scope["type"] == "http" else None
        if (
            kind is None
            or state is None
            # No such operation (OPTIONS included: the front door answers it).
            or self.routes.takes_body(scope["method"], scope["path"]) is None
        ):
            await self.app(scope, receive, send)
            return
        # Read from the scope, not through a Request: this runs on every heartbeat.
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        token = bearer_token(None if authorization is None else authorization.decode("latin-1"))
        address = scope_address(scope)
        verdict = scope.setdefault("state", {})
        try:
            if kind == "admin":
                verdict[ADMIN_KEY] = await authenticate_admin(state, token, address)
            else:
                verdict[DEVICE_KEY] = await authenticate_device(state, token, address)
        except ApiError as exc:
            headers = dict(exc.headers)
            if _has_body(scope):
                headers["Connection"] = "close"  # the body is not worth reading
            response = problem_response(
                exc.status, exc.code, exc.detail, instance=scope["path"], headers=headers
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def current_device(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_device_bearer)],
) -> AuthedDevice:
    known = request.scope.get("state", {}).get(DEVICE_KEY)
    if isinstance(known, AuthedDevice):
        return known
    token = credentials.credentials if credentials else None
    return await authenticate_device(get_state(request), token, client_address(request))


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> str:
    """The hash of the admin credential (rate limits key on it, never on the secret)."""
    known = request.scope.get("state", {}).get(ADMIN_KEY)
    if isinstance(known, str):
        return known
    token = credentials.credentials if credentials else None
    return await authenticate_admin(get_state(request), token, client_address(request))


Device = Annotated[AuthedDevice, Depends(current_device)]
Admin = Annotated[str, Depends(require_admin)]


async def state_dependency(request: Request) -> ServerState:
    # async: FastAPI would run a plain function in its thread pool on every request.
    return get_state(request)


State = Annotated[ServerState, Depends(state_dependency)]
