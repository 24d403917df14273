"""Admin API for devices: presence, rename, content assignment, commands, revoke."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select, update

from protocol import POWER_COMMANDS, Command, CommandName, CommandResult, Id, Scalar, TimeZoneName
from server._admin_content import check_schedule_sets
from server._auth import Admin, State
from server._bodies import JsonRoute
from server._content import announce, refresh_devices
from server._db import commands, devices, groups, layouts, schedules
from server._device_api import command_model
from server._problems import ApiError, problem_doc
from server._security import new_id
from server._state import ServerState

router = APIRouter(tags=["devices"], route_class=JsonRoute)
ADMIN = (400, 401)
Name = Annotated[str, Field(min_length=1, max_length=64)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentSet(StrictBody):
    """What a device or group plays: schedule entries over a default layout."""

    schedule: list[Id] = Field(default_factory=list, max_length=1000)
    default_layout: Id | None = None
    timezone: TimeZoneName | None = None


class DevicePatch(StrictBody):
    name: Name | None = None
    group: Id | None = Field(None, description="group id; null removes the device from its group")


class CommandRequest(StrictBody):
    name: CommandName
    args: dict[Annotated[str, Field(max_length=64)], Scalar] = Field(
        default_factory=dict, max_length=32
    )


class CommandInfo(BaseModel):
    command: Command
    created_at: dt.datetime
    completed_at: dt.datetime | None = None
    result: CommandResult | None = None


class DeviceInfo(BaseModel):
    id: str
    name: str
    status: str = Field(description="online | offline")
    last_seen: dt.datetime | None
    group: str | None
    content: ContentSet | None = Field(description="the device's own set; null: its group's")
    manifest_version: int
    hardware_id: str
    model: str | None
    resolution: str | None
    player_version: str | None
    created_at: dt.datetime
    screenshot_at: dt.datetime | None
    metrics: dict[str, Any] | None = Field(description="the last heartbeat's metrics, if online")


def _utc(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


def device_info(state: ServerState, row: Any) -> DeviceInfo:
    live = state.presence.get(row.id)
    own = row.schedule is not None or row.default_layout is not None
    return DeviceInfo(
        id=row.id,
        name=row.name,
        status="online" if live is not None and live.online else "offline",
        last_seen=_utc(live.last_seen if live is not None else row.last_seen),
        group=row.group_id,
        content=ContentSet(
            schedule=row.schedule or [], default_layout=row.default_layout, timezone=row.timezone
        )
        if own
        else None,
        manifest_version=row.manifest_version,
        hardware_id=row.hardware_id,
        model=row.model,
        resolution=row.resolution,
        player_version=row.player_version,
        created_at=_utc(row.created_at) or dt.datetime.now(dt.UTC),
        screenshot_at=_utc(row.screenshot_at),
        metrics=live.metrics if live is not None and live.metrics else None,
    )


async def _device(state: ServerState, device_id: str) -> Any:
    async with state.engine.connect() as conn:
        row = (
            await conn.execute(
                select(devices).where(devices.c.id == device_id, devices.c.revoked_at.is_(None))
            )
        ).first()
    if row is None:
        raise ApiError(404, "device_not_found", f"no device {device_id!r}")
    return row


@router.get("/api/v1/admin/devices", response_model=list[DeviceInfo], responses=problem_doc(*ADMIN))
async def list_devices(state: State, admin: Admin) -> list[DeviceInfo]:
    async with state.engine.connect() as conn:
        rows = await conn.execute(
            select(devices).where(devices.c.revoked_at.is_(None)).order_by(devices.c.created_at)
        )
        return [device_info(state, r) for r in rows]


@router.get(
    "/api/v1/admin/devices/{device_id}",
    response_model=DeviceInfo,
    responses=problem_doc(*ADMIN, 404),
)
async def get_device(device_id: str, state: State, admin: Admin) -> DeviceInfo:
    return device_info(state, await _device(state, device_id))


@router.patch(
    "/api/v1/admin/devices/{device_id}",
    response_model=DeviceInfo,
    responses=problem_doc(*ADMIN, 404, 409, 422),
)
async def patch_device(device_id: str, body: DevicePatch, state: State, admin: Admin) -> DeviceInfo:
    await _device(state, device_id)
    values: dict[str, Any] = {}
    if body.name is not None:
        values["name"] = body.name
    if "group" in body.model_fields_set:
        values["group_id"] = body.group
    async with state.content_lock:
        async with state.writer.begin() as conn:
            if body.group is not None:
                group = (
                    await conn.execute(select(groups).where(groups.c.id == body.group))
                ).first()
                if group is None:
                    raise ApiError(409, "unknown_group", f"group {body.group!r} does not exist")
                if group.schedule:
                    await check_schedule_sets(conn, [list(group.schedule)])
            if values:
                await conn.execute(
                    update(devices).where(devices.c.id == device_id).values(**values)
                )
            changed = await refresh_devices(conn, state, [device_id])
        announce(state, changed)
    return device_info(state, await _device(state, device_id))


async def check_content(conn: Any, body: ContentSet) -> None:
    known_schedules = {r.id for r in await conn.execute(select(schedules.c.id))}
    if missing := sorted(set(body.schedule) - known_schedules):
        raise ApiError(409, "unknown_schedule", f"unknown schedule ids {missing}")
    if body.default_layout is not None:
        found = (
            await conn.execute(select(layouts.c.id).where(layouts.c.id == body.default_layout))
        ).first()
        if found is None:
            raise ApiError(409, "unknown_layout", f"layout {body.default_layout!r} does not exist")
    await check_schedule_sets(conn, [body.schedule])


@router.put(
    "/api/v1/admin/devices/{device_id}/content",
    response_model=DeviceInfo,
    responses=problem_doc(*ADMIN, 404, 409, 422),
)
async def assign_device(device_id: str, body: ContentSet, state: State, admin: Admin) -> DeviceInfo:
    await _device(state, device_id)
    async with state.content_lock:
        async with state.writer.begin() as conn:
            await check_content(conn, body)
            await conn.execute(
                update(devices)
                .where(devices.c.id == device_id)
                .values(
                    schedule=body.schedule,
                    default_layout=body.default_layout,
                    timezone=body.timezone,
                )
            )
            changed = await refresh_devices(conn, state, [device_id])
        announce(state, changed)
    return device_info(state, await _device(state, device_id))


@router.delete(
    "/api/v1/admin/devices/{device_id}/content",
    response_model=DeviceInfo,
    responses=problem_doc(*ADMIN, 404),
)
async def unassign_device(device_id: str, state: State, admin: Admin) -> DeviceInfo:
    """Drop the device's own set: it follows its group again (or plays nothing)."""
    await _device(state, device_id)
    async with state.content_lock:
        async with state.writer.begin() as conn:
            await conn.execute(
                update(devices)
                .where(devices.c.id == device_id)
                .values(schedule=None, default_layout=None)
            )
            changed = await refresh_devices(conn, state, [device_id])
        announce(state, changed)
    return device_info(state, await _device(state, device_id))


@router.delete(
    "/api/v1/admin/devices/{device_id}", status_code=204, responses=problem_doc(*ADMIN, 404)
)
async def revoke_device(device_id: str, state: State, admin: Admin) -> Response:
    async with state.writer.begin() as conn:
        gone = await conn.execute(
            update(devices)
            .where(devices.c.id == device_id, devices.c.revoked_at.is_(None))
            .values(
                revoked_at=state.clock(),
                token_hash=None,
                previous_token_hash=None,
                status="offline",
            )
        )
        if gone.rowcount == 0:
            raise ApiError(404, "device_not_found", f"no device {device_id!r}")
    state.forget_device_auth(device_id)
    state.hub.close_device(device_id)
    state.presence.forget(device_id)
    state.presence_writes.pop(device_id, None)
    state.manifests.pop(device_id, None)
    state.hub.broadcast("device", {"device_id": device_id, "status": "revoked"})
    return Response(status_code=204)


@router.post(
    "/api/v1/admin/devices/{device_id}/commands",
    status_code=201,
    response_model=Command,
    responses=problem_doc(*ADMIN, 404, 409, 422),
)
async def send_command(device_id: str, body: CommandRequest, state: State, admin: Admin) -> Command:
    await _device(state, device_id)
    live = state.presence.get(device_id)
    metrics = live.metrics if live is not None else None
    if body.name in POWER_COMMANDS and metrics and "power" not in metrics:
        # A player that predates them would refuse every heartbeat answer carrying one.
        raise ApiError(
            409,
            "unsupported_by_player",
            f"this device's player does not switch its screen ({body.name}); update it",
        )
    now = state.clock()
    command_id = new_id("cmd")
    async with state.writer.begin() as conn:
        await conn.execute(
            insert(commands).values(
                id=command_id,
                device_id=device_id,
                name=body.name,
                args=body.args,
                created_at=now,
                expires_at=now + state.config.command_ttl_s,
            )
        )
        row = (await conn.execute(select(commands).where(commands.c.id == command_id))).one()
    command = command_model(row)
    state.devices_with_commands.add(device_id)
    state.hub.publish(device_id, "command", command.model_dump(mode="json"))
    return command


@router.get(
    "/api/v1/admin/devices/{device_id}/commands",
    response_model=list[CommandInfo],
    responses=problem_doc(*ADMIN, 404),
)
async def list_commands(device_id: str, state: State, admin: Admin) -> list[CommandInfo]:
    await _device(state, device_id)
    async with state.engine.connect() as conn:
        rows = await conn.execute(
            select(commands)
            .where(commands.c.device_id == device_id)
            .order_by(commands.c.created_at.desc())
            .limit(100)
        )
        return [
            CommandInfo(
                command=command_model(r),
                created_at=_utc(r.created_at) or dt.datetime.now(dt.UTC),
                completed_at=_utc(r.completed_at),
                result=CommandResult.model_validate(r.result) if r.result else None,
            )
            for r in rows
        ]


@router.get(
    "/api/v1/admin/devices/{device_id}/screenshot",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}, "description": "the latest screenshot"},
        **problem_doc(*ADMIN, 404),
    },
)
async def get_screenshot(device_id: str, state: State, admin: Admin) -> FileResponse:
    await _device(state, device_id)
    path = state.screenshots_dir / f"{device_id}.png"
    if not path.exists():
        raise ApiError(404, "screenshot_not_found", "this device has not sent a screenshot")
    return FileResponse(path, media_type="image/png")
