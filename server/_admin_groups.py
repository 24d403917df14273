"""Admin API for groups: a content set shared by every member device."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import delete, insert, select, update

from protocol import Id
from server._admin_devices import ADMIN, ContentSet, Name, StrictBody, check_content
from server._auth import Admin, State
from server._bodies import JsonRoute
from server._content import announce, refresh_devices
from server._db import devices, groups
from server._problems import ApiError, problem_doc

router = APIRouter(tags=["devices"], route_class=JsonRoute)


class GroupBody(StrictBody):
    name: Name


class GroupInfo(ContentSet):
    id: str
    name: str


def group_info(row: Any) -> GroupInfo:
    return GroupInfo(
        id=row.id,
        name=row.name,
        schedule=row.schedule or [],
        default_layout=row.default_layout,
        timezone=row.timezone,
    )


@router.get("/api/v1/admin/groups", response_model=list[GroupInfo], responses=problem_doc(*ADMIN))
async def list_groups(state: State, admin: Admin) -> list[GroupInfo]:
    async with state.engine.connect() as conn:
        return [group_info(r) for r in await conn.execute(select(groups).order_by(groups.c.id))]


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
        return group_info((await conn.execute(select(groups).where(groups.c.id == group_id))).one())


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
        row = (await conn.execute(select(groups).where(groups.c.id == group_id))).one()
    await announce(state, changed)
    return group_info(row)


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
