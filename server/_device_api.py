"""The device side: manifest, heartbeat, command results, proof of play, screenshots, token."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core import atomic_write
from protocol import (
    Command,
    CommandResult,
    Heartbeat,
    HeartbeatResponse,
    ImpressionAck,
    ImpressionBatch,
    Manifest,
    TokenRotated,
)
from server._auth import Device, State
from server._bodies import JsonRoute, parse_json
from server._content import refresh_devices
from server._db import commands, devices, impressions
from server._lean import lean
from server._manifests import CachedManifest
from server._presence import Seen, Transition
from server._problems import ApiError, problem_doc, validation_error
from server._security import hash_token, new_token
from server._state import AuthedDevice, ServerState

router = APIRouter(tags=["device"], route_class=JsonRoute)
AUTH = (401, 400, 429)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ScreenshotStored(BaseModel):
    size: int
    sha256: str


async def manifest_of(state: ServerState, device_id: str) -> CachedManifest:
    cached = await state.manifests.get(device_id)
    if cached is None:
        async with state.content_transaction() as conn:
            refreshed = await refresh_devices(conn, state, [device_id])
        # Stored, not announced: a device asking for its manifest is getting it now.
        await state.manifests.put_many(refreshed.manifests)
        cached = refreshed.manifests[device_id]
    return cached


async def manifest_etag(state: ServerState, device_id: str) -> str:
    """The ETag of the device's manifest, without fetching the manifest when it is stored."""
    etag = await state.manifests.etag(device_id)
    return etag if etag is not None else (await manifest_of(state, device_id)).etag


async def mark_seen(state: ServerState, device_id: str) -> None:
    """Presence in memory (or Redis); the database only hears about transitions (and rarely
    last_seen)."""
    now = state.clock()
    await record_seen(state, device_id, await state.presence.seen(device_id, now), now)


async def record_seen(state: ServerState, device_id: str, seen: Seen, now: float) -> None:
    if seen.transition is None and not seen.write_last_seen:
        return
    queue_presence_write(state, device_id, seen.transition, now)
    if seen.transition is not None:
        await publish_presence(state, device_id, seen.transition, now)


def queue_presence_write(
    state: ServerState, device_id: str, status: Transition | None, last_seen: float
) -> None:
    """Queued, and written in bulk by ``flush_presence``: a reconnect wave of a thousand
    devices costs one transaction, not a thousand."""
    row = state.presence_writes.setdefault(device_id, {})
    row["last_seen"] = last_seen
    if status is not None:
        row["status"] = status


async def flush_presence(state: ServerState) -> int:
    """Write the queued presence changes in one transaction; return the rows written."""
    if not state.presence_writes:
        return 0
    pending, state.presence_writes = state.presence_writes, {}
    with_status = [
        {"b_id": k, "b_seen": v["last_seen"], "b_status": v["status"]}
        for k, v in pending.items()
        if "status" in v
    ]
    seen_only = [
        {"b_id": k, "b_seen": v["last_seen"]} for k, v in pending.items() if "status" not in v
    ]
    by_id = devices.c.id == bindparam("b_id")
    try:
        async with state.writer.begin() as conn:
            if with_status:
                await conn.execute(
                    update(devices)
                    .where(by_id)
                    .values(status=bindparam("b_status"), last_seen=bindparam("b_seen")),
                    with_status,
                )
            if seen_only:
                await conn.execute(
                    update(devices).where(by_id).values(last_seen=bindparam("b_seen")), seen_only
                )
    except BaseException:
        # Not lost: merged back (newer values win) for the next flush.
        for device_id, values in pending.items():
            state.presence_writes[device_id] = values | state.presence_writes.get(device_id, {})
        raise
    state.counters.inc("presence_writes", len(pending))
    return len(pending)


async def publish_presence(
    state: ServerState, device_id: str, status: Transition, at: float
) -> None:
    state.counters.inc(f"transitions_{status}")
    await state.hub.broadcast(
        "device",
        {
            "device_id": device_id,
            "status": status,
            "at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(),
        },
    )


@router.get(
    "/api/v1/device/manifest",
    response_model=Manifest,
    responses={304: {"description": "Not Modified"}, **problem_doc(*AUTH)},
)
@lean  # fetched by every device after every change and every reconnect
async def get_manifest(request: Request, device: Device, state: State) -> Response:
    cached = await manifest_of(state, device.id)
    headers = {"ETag": cached.etag, "Cache-Control": "no-cache"}
    match = request.headers.get("if-none-match", "")
    if cached.etag in {tag.strip() for tag in match.split(",")} or match.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(cached.body, media_type="application/json", headers=headers)


async def pending_commands(state: ServerState, device_id: str) -> list[Command]:
    if device_id not in state.devices_with_commands:
        return []
    now = state.clock()
    async with state.engine.connect() as conn:
        rows = await conn.execute(
            select(commands)
            .where(
                commands.c.device_id == device_id,
                commands.c.completed_at.is_(None),
                commands.c.expires_at > now,
            )
            .order_by(commands.c.created_at)
            .limit(100)
        )
        pending = [command_model(row) for row in rows]
    if not pending:
        state.devices_with_commands.discard(device_id)
    return pending


def command_model(row: Any) -> Command:
    return Command(
        id=row.id,
        name=row.name,
        args=row.args,
        expires_at=dt.datetime.fromtimestamp(row.expires_at, dt.UTC),
    )


@router.post(
    "/api/v1/device/heartbeat",
    response_model=HeartbeatResponse,
    responses=problem_doc(*AUTH, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Heartbeat"}}},
        }
    },
)
@lean
async def heartbeat(request: Request, device: Device, state: State) -> Response:
    interval = state.heartbeat_interval()
    try:
        # Parsed by hand (bounded by server._bodies before it is read).
        body = Heartbeat.model_validate(parse_json(await request.body()))
    except ValidationError as exc:
        raise validation_error(exc) from exc
    now = state.clock()
    # The rate limit, presence and metrics in one step (one round trip to Redis).
    seen = await state.presence.beat(device.id, now, body.metrics.model_dump(mode="json"))
    if seen.retry_after:
        state.counters.inc("heartbeats_rejected")
        raise ApiError(
            429,
            "heartbeat_too_frequent",
            f"heartbeat at most every {interval} s",
            headers={"Retry-After": str(seen.retry_after)},
        )
    state.counters.inc("heartbeats")
    await record_seen(state, device.id, seen, now)
    if state.hub.dashboards_open():
        await state.hub.broadcast("heartbeat", {"device_id": device.id})
    etag = seen.manifest_etag or await manifest_etag(state, device.id)
    expires_at, refresh_at = token_schedule(state, device)
    answer = HeartbeatResponse(
        server_time=_utc(state.clock()),  # a device without NTP sets its clock from this
        manifest_etag=etag,
        heartbeat_interval_s=interval,
        commands=await pending_commands(state, device.id),
        token_expires_at=None if expires_at is None else _utc(expires_at),
        token_refresh_at=_utc(min(now, refresh_at) if device.previous else refresh_at),
    )
    # Finished here (a lean route: server._lean); response_model above documents it.
    return Response(answer.model_dump_json(), media_type="application/json")


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def token_schedule(state: ServerState, device: AuthedDevice) -> tuple[float | None, float]:
    """(when the presented token expires, from when the device should rotate it).

    Rotation is due two thirds into the token's life: a device that beats every 30 s has
    weeks to succeed before the token stops working. A rotated-away token (the device lost
    the answer) and one from before expiry existed are due at once.
    """
    now = state.clock()
    if device.expires_at is None or device.previous:
        return device.expires_at, now
    return device.expires_at, device.expires_at - state.config.device_token_ttl_s / 3


@router.post(
    "/api/v1/device/commands/{command_id}/result",
    status_code=204,
    responses=problem_doc(*AUTH, 404, 422),
)
async def command_result(
    command_id: str, body: CommandResult, device: Device, state: State
) -> Response:
    now = state.clock()
    async with state.writer.begin() as conn:
        row = (
            await conn.execute(
                select(commands).where(
                    commands.c.id == command_id, commands.c.device_id == device.id
                )
            )
        ).first()
        if row is None:
            raise ApiError(404, "command_not_found", "no such command for this device")
        if row.completed_at is None:
            await conn.execute(
                update(commands)
                .where(commands.c.id == command_id)
                .values(completed_at=now, result=body.model_dump(mode="json"))
            )
            await state.hub.broadcast(
                "command_result",
                {"device_id": device.id, "command_id": command_id, "name": row.name}
                | body.model_dump(mode="json"),
            )
    return Response(status_code=204)


@router.post(
    "/api/v1/device/impressions",
    response_model=ImpressionAck,
    responses=problem_doc(*AUTH, 413, 422),
)
async def post_impressions(body: ImpressionBatch, device: Device, state: State) -> ImpressionAck:
    now = state.clock()
    ids = [i.id for i in body.impressions]
    accepted = 0
    # One per id (a batch may repeat one); an id already stored, by an earlier delivery of
    # the batch or by a concurrent retry of it (PostgreSQL does not serialise writers), is
    # not inserted again: what the insert returns is what was new.
    unique = {i.id: i for i in body.impressions}
    if unique:
        rows = [
            {
                "id": i.id,
                "device_id": device.id,
                "body": i.model_dump(mode="json"),
                "received_at": now,
            }
            for i in unique.values()
        ]
        async with state.writer.begin() as conn:
            upsert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            inserted = await conn.execute(
                upsert(impressions)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(impressions.c.id)
            )
            accepted = len(inserted.all())
    state.counters.inc("impressions", accepted)
    return ImpressionAck(accepted=accepted, duplicates=len(ids) - accepted)


@router.post(
    "/api/v1/device/screenshots",
    status_code=201,
    response_model=ScreenshotStored,
    responses=problem_doc(*AUTH, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def post_screenshot(request: Request, device: Device, state: State) -> ScreenshotStored:
    data = await request.body()  # bounded by server._bodies (screenshot_max_bytes)
    if not data.startswith(PNG_MAGIC) or len(data) < 33:
        raise ApiError(415, "not_png", "a screenshot must be a PNG image")
    path = state.screenshots_dir / f"{device.id}.png"
    # Only the latest is kept: each upload replaces the previous one atomically.
    await asyncio.to_thread(atomic_write, path, data, mode=0o600)
    async with state.writer.begin() as conn:
        await conn.execute(
            update(devices).where(devices.c.id == device.id).values(screenshot_at=state.clock())
        )
    await state.hub.broadcast("screenshot", {"device_id": device.id})
    return ScreenshotStored(size=len(data), sha256=hashlib.sha256(data).hexdigest())


@router.post(
    "/api/v1/device/token/rotate", response_model=TokenRotated, responses=problem_doc(*AUTH)
)
async def rotate_token(device: Device, state: State) -> TokenRotated:
    """A new token; the one presented stays valid until the new one is first used.

    Keeping the *presented* token (not whatever is current) matters when a rotation's answer
    was lost: the device retries with the token it still holds, and that one must survive.
    """
    token = new_token()
    async with state.writer.begin() as conn:
        await conn.execute(
            update(devices)
            .where(devices.c.id == device.id)
            .values(
                token_hash=hash_token(token),
                token_expires_at=state.clock() + state.config.device_token_ttl_s,
                previous_token_hash=device.token_hash,
                previous_token_expires_at=device.expires_at,
            )
        )
    await state.forget_device_auth(device.id)
    return TokenRotated(device_token=token)
