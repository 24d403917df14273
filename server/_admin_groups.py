"""Admin API for groups: a content set shared by every member device."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import Id
from server._admin_devices import ADMIN, ContentSet, Name, StrictBody, check_content
from server._auth import Admin, State
from server._bodies import JsonRoute
from server._content import announce, refresh_devices
from server._db import devices, group_sync, groups
from server._problems import ApiError, problem_doc
from server._state import ServerState

router = APIRouter(tags=["devices"], route_class=JsonRoute)


class GroupBody(StrictBody):
    name: Name


class GroupSync(StrictBody):
    """Make a group play in step (docs/player.md, *Sync groups*)."""

    epoch: dt.datetime | None = Field(
        None,
        description="group time at which every playlist's cycle begins; default: now, to the "
        "second. One in the future starts every playlist from its first item at that instant.",
    )

    @field_validator("epoch")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("the epoch needs a UTC offset, e.g. 2026-11-21T08:00:00Z")
        return value


class SyncInfo(BaseModel):
    epoch: dt.datetime


class GroupInfo(ContentSet):
    id: str
    name: str
    sync: SyncInfo | None = Field(None, description="null: each screen plays on its own")


def group_info(row: Any, epoch: float | None = None) -> GroupInfo:
    return GroupInfo(
        id=row.id,
        name=row.name,
        schedule=row.schedule or [],
        default_layout=row.default_layout,
        timezone=row.timezone,
        sync=None if epoch is None else SyncInfo(epoch=dt.datetime.fromtimestamp(epoch, dt.UTC)),
    )


async def _epochs(conn: AsyncConnection) -> dict[str, float]:
    return {r.group_id: r.epoch for r in await conn.execute(select(group_sync))}


async def _group(conn: AsyncConnection, group_id: str) -> GroupInfo:
    row = (await conn.execute(select(groups).where(groups.c.id == group_id))).first()
    if row is None:
        raise ApiError(404, "group_not_found", f"no group {group_id!r}")
    return group_info(row, (await _epochs(conn)).get(group_id))


async def _members(conn: AsyncConnection, group_id: str) -> list[str]:
    rows = await conn.execute(select(devices.c.id).where(devices.c.group_id == group_id))
    return [r.id for r in rows]


@router.get("/api/v1/admin/groups", response_model=list[GroupInfo], responses=problem_doc(*ADMIN))
async def list_groups(state: State, admin: Admin) -> list[GroupInfo]:
    async with state.engine.connect() as conn:
        epochs = await _epochs(conn)
        return [
            group_info(r, epochs.get(r.id))
            for r in await conn.execute(select(groups).order_by(groups.c.id))
        ]


@router.put(
    "/api/v1/admin/groups/{group_id}", response_model=GroupInfo, responses=problem_doc(*ADMIN, 422)
)
async def put_group(group_id: Id, body: GroupBody, state: State, admin: Admin) -> GroupInfo:
    async with state.content_transaction() as conn:
        row = (await conn.execute(select(groups).where(groups.c.id == group_id))).first()
        if row is None:
            await conn.execute(insert(groups).values(id=group_id, name=body.name))
        else:
            await conn.execute(update(groups).where(groups.c.id == group_id).values(name=body.name))
        return await _group(conn, group_id)


@router.put(
    "/api/v1/admin/groups/{group_id}/content",
    response_model=GroupInfo,
    responses=problem_doc(*ADMIN, 404, 409, 422),
)
async def assign_group(group_id: str, body: ContentSet, state: State, admin: Admin) -> GroupInfo:
    async with state.content_transaction() as conn:
        if (await conn.execute(select(groups.c.id).where(groups.c.id == group_id))).first() is None:
            raise ApiError(404, "group_not_found", f"no group {group_id!r}")
        await check_content(conn, body)
        await conn.execute(
            update(groups)
            .where(groups.c.id == group_id)
            .values(
                schedule=body.schedule,
                default_layout=body.default_layout,
                timezone=body.timezone,
            )
        )
        members = [
            r.id
            for r in await conn.execute(select(devices.c.id).where(devices.c.group_id == group_id))
        ]
        changed = await refresh_devices(conn, state, members)
        info = await _group(conn, group_id)
    await announce(state, changed)
    return info


async def _set_sync(state: ServerState, group_id: str, epoch: float | None) -> GroupInfo:
    """Turn playing in step on (with ``epoch``) or off; republish the members' manifests."""
    async with state.content_transaction() as conn:
        await _group(conn, group_id)  # 404 first
        await conn.execute(delete(group_sync).where(group_sync.c.group_id == group_id))
        if epoch is not None:
            await conn.execute(insert(group_sync).values(group_id=group_id, epoch=epoch))
        # A member whose content has an item without a duration refuses (409) and the
        # change is rolled back with the transaction.
        changed = await refresh_devices(conn, state, await _members(conn, group_id))
        info = await _group(conn, group_id)
    await announce(state, changed)
    return info


@router.put(
    "/api/v1/admin/groups/{group_id}/sync",
    response_model=GroupInfo,
    responses=problem_doc(*ADMIN, 404, 409, 422),
)
async def put_group_sync(group_id: str, body: GroupSync, state: State, admin: Admin) -> GroupInfo:
    epoch = body.epoch.timestamp() if body.epoch is not None else math.floor(state.clock())
    return await _set_sync(state, group_id, epoch)


@router.delete(
    "/api/v1/admin/groups/{group_id}/sync",
    response_model=GroupInfo,
    responses=problem_doc(*ADMIN, 404),
)
async def delete_group_sync(group_id: str, state: State, admin: Admin) -> GroupInfo:
    return await _set_sync(state, group_id, None)


@router.delete(
    "/api/v1/admin/groups/{group_id}", status_code=204, responses=problem_doc(*ADMIN, 404)
)
async def delete_group(group_id: str, state: State, admin: Admin) -> Response:
    async with state.content_transaction() as conn:
        members = [
            r.id
            for r in await conn.execute(select(devices.c.id).where(devices.c.group_id == group_id))
        ]
        await conn.execute(
            update(devices).where(devices.c.group_id == group_id).values(group_id=None)
        )
        gone = await conn.execute(delete(groups).where(groups.c.id == group_id))
        if gone.rowcount == 0:
            raise ApiError(404, "group_not_found", f"no group {group_id!r}")
        changed = await refresh_devices(conn, state, members)
    await announce(state, changed)
    return Response(status_code=204)
