"""Who is calling: the device behind a Bearer token, or the admin.

Tokens are accepted only in the ``Authorization`` header; the query-string check lives in
the app's middleware so it covers every route, including unknown ones.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import or_, select, update

from server._db import devices
from server._problems import ApiError
from server._security import hash_token, same_hash
from server._state import AuthedDevice, ServerState, get_state

_device_bearer = HTTPBearer(
    auto_error=False, scheme_name="DeviceToken", description="device_token from pairing"
)
_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="AdminToken", description="SIGNAGE_ADMIN_TOKEN"
)

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def _require(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "unauthorized", "missing bearer token", headers=_UNAUTHORIZED)
    return credentials.credentials


AUTH_CACHE_MAX = 100_000


async def current_device(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_device_bearer)],
) -> AuthedDevice:
    state = get_state(request)
    token_hash = hash_token(_require(credentials))
    cached = state.auth_cache.get(token_hash)
    # The dict lookup is by hash of the secret; the compare below is still constant-time.
    if cached is not None and same_hash(cached.token_hash, token_hash):
        return cached
    async with state.engine.connect() as conn:
        row = (
            await conn.execute(
                select(devices).where(
                    or_(
                        devices.c.token_hash == token_hash,
                        devices.c.previous_token_hash == token_hash,
                    )
                )
            )
        ).first()
    current = row is not None and same_hash(row.token_hash, token_hash)
    if row is None or not (current or same_hash(row.previous_token_hash, token_hash)):
        raise ApiError(401, "invalid_token", "unknown or revoked token", headers=_UNAUTHORIZED)
    if row.revoked_at is not None:
        raise ApiError(401, "device_revoked", "this device was revoked", headers=_UNAUTHORIZED)
    if current and row.previous_token_hash is not None:
        # The rotated token is in use, so the device has it: retire the old one.
        async with state.writer.begin() as conn:
            await conn.execute(
                update(devices).where(devices.c.id == row.id).values(previous_token_hash=None)
            )
        state.forget_device_auth(row.id)
    device = AuthedDevice(id=row.id, token_hash=row.token_hash)
    if current and len(state.auth_cache) < AUTH_CACHE_MAX:
        state.auth_cache[token_hash] = device
    return device


def check_admin(state: ServerState, credentials: HTTPAuthorizationCredentials | None) -> str:
    token_hash = hash_token(_require(credentials))
    if not same_hash(state.admin_token_hash, token_hash):
        raise ApiError(401, "invalid_token", "wrong admin token", headers=_UNAUTHORIZED)
    return token_hash


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
) -> str:
    """The hash of the admin credential (rate limits key on it, never on the secret)."""
    return check_admin(get_state(request), credentials)


Device = Annotated[AuthedDevice, Depends(current_device)]
Admin = Annotated[str, Depends(require_admin)]


async def state_dependency(request: Request) -> ServerState:
    # async: FastAPI would run a plain function in its thread pool on every request.
    return get_state(request)


State = Annotated[ServerState, Depends(state_dependency)]
