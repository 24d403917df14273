"""Admin API for the screens' power schedules: on/off windows per device or per group.

A device's own schedule wins over its group's; without either its screen is always on. The
schedule goes out in the manifest (``power``) and is evaluated on the device, offline too.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import delete, insert, select

from protocol import PowerSchedule
from server._admin_devices import ADMIN
from server._auth import Admin, State
from server._content import announce, refresh_devices
from server._db import devices, groups, power_schedules
from server._problems import ApiError, problem_doc
from server._state import ServerState

router = APIRouter(tags=["power"])


async def _target_devices(state: ServerState, kind: str, target_id: str) -> list[str]:
    """The devices a device or group id reaches; 404 when it does not exist."""
    async with state.engine.connect() as conn:
        if kind == "device":
            found = await conn.execute(
                select(devices.c.id).where(
                    devices.c.id == target_id, devices.c.revoked_at.is_(None)
                )
            )
            if found.first() is None:
                raise ApiError(404, "device_not_found", f"no device {target_id!r}")
            return [target_id]
        if (
            await conn.execute(select(groups.c.id).where(groups.c.id == target_id))
        ).first() is None:
            raise ApiError(404, "group_not_found", f"no group {target_id!r}")
        members = select(devices.c.id).where(
            devices.c.group_id == target_id, devices.c.revoked_at.is_(None)
        )
        return [r.id for r in await conn.execute(members)]


async def set_power(
    state: ServerState, kind: str, target_id: str, body: PowerSchedule | None
) -> None:
    """Store (or, with None, remove) a power schedule and republish what it reaches."""
    reached = await _target_devices(state, kind, target_id)
    target = f"{kind}:{target_id}"
    async with state.content_lock:
        async with state.writer.begin() as conn:
            where = power_schedules.c.target == target
            await conn.execute(delete(power_schedules).where(where))
            if body is not None:
                await conn.execute(
                    insert(power_schedules).values(
                        target=target,
                        body=body.model_dump(mode="json", by_alias=True),
                        updated_at=state.clock(),
                    )
                )
            changed = await refresh_devices(conn, state, reached)
        announce(state, changed)


async def power_of(state: ServerState, kind: str, target_id: str) -> PowerSchedule | None:
    await _target_devices(state, kind, target_id)
    async with state.engine.connect() as conn:
        row = (
            await conn.execute(
                select(power_schedules.c.body).where(
                    power_schedules.c.target == f"{kind}:{target_id}"
                )
            )
        ).first()
    return None if row is None else PowerSchedule.model_validate(row.body)


def _register(kind: str) -> None:
    base = f"/api/v1/admin/{kind}s/{{target_id}}/power"

    async def get_power(target_id: str, state: State, admin: Admin) -> PowerSchedule:
        schedule = await power_of(state, kind, target_id)
        if schedule is None:
            raise ApiError(404, "power_not_set", f"{kind} {target_id!r} has no power schedule")
        return schedule

    async def put_power(
        target_id: str, body: PowerSchedule, state: State, admin: Admin
    ) -> PowerSchedule:
        await set_power(state, kind, target_id, body)
        return body

    async def delete_power(target_id: str, state: State, admin: Admin) -> Response:
        await set_power(state, kind, target_id, None)
        return Response(status_code=204)

    get_power.__doc__ = f"The {kind}'s own power schedule (404 power_not_set: none)."
    put_power.__doc__ = f"Set the {kind}'s power schedule: on inside its windows, off outside."
    delete_power.__doc__ = f"Remove the {kind}'s power schedule" + (
        ": it follows its group's, or stays on." if kind == "device" else "."
    )
    router.add_api_route(
        base,
        get_power,
        methods=["GET"],
        response_model=PowerSchedule,
        responses=problem_doc(*ADMIN, 404),
        name=f"get_{kind}_power",
    )
    router.add_api_route(
        base,
        put_power,
        methods=["PUT"],
        response_model=PowerSchedule,
        responses=problem_doc(*ADMIN, 404, 422),
        name=f"put_{kind}_power",
    )
    router.add_api_route(
        base,
        delete_power,
        methods=["DELETE"],
        status_code=204,
        responses=problem_doc(*ADMIN, 404),
        name=f"delete_{kind}_power",
    )


for _kind in ("device", "group"):
    _register(_kind)
