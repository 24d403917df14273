"""Admin API for interrupts: a layout pushed to a device or a group, now or at an instant, for a
while or until cleared.

An interrupt goes out as a manifest change (a ``manifest`` event over SSE, and the manifest
polling devices fetch), so a connected screen takes it over within the update latency and a
device that was offline gets it on reconnecting. Its end is an absolute instant in the
manifest: the device ends it on time even offline. Clearing it removes it from the manifests.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from sqlalchemy import insert, or_, select, update

from protocol import Id
from server._admin_devices import ADMIN, StrictBody
from server._auth import Admin, State
from server._content import announce, refresh_devices
from server._db import devices, groups, interrupts, layouts
from server._problems import ApiError, problem_doc
from server._security import new_id
from server._state import ServerState

router = APIRouter(tags=["interrupts"])
MAX_LISTED = 100


class InterruptRequest(StrictBody):
    """Send ``layout`` to ``device`` or to every device of ``group``: from ``starts_at``
    (default now) for ``seconds``, or until ``ends_at``, or (neither) until cleared."""

    layout: Id
    device: Id | None = None
    group: Id | None = None
    starts_at: AwareDatetime | None = None
    seconds: int | None = Field(None, ge=1, le=31 * 86_400)
    ends_at: AwareDatetime | None = None
    priority: int = Field(0, ge=0, le=1_000)

    @model_validator(mode="after")
    def _coherent(self) -> InterruptRequest:
        if (self.device is None) == (self.group is None):
            raise ValueError("give exactly one of 'device' or 'group'")
        if self.seconds is not None and self.ends_at is not None:
            raise ValueError("give 'seconds' or 'ends_at', not both")
        return self


class InterruptInfo(BaseModel):
    id: str
    layout: str
    device: str | None
    group: str | None
    starts_at: dt.datetime
    ends_at: dt.datetime | None = Field(description="null: until cleared")
    priority: int
    created_at: dt.datetime
    cleared_at: dt.datetime | None
    status: Literal["scheduled", "active", "ended", "cleared"]


def _utc(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


def interrupt_info(row: Any, now: float) -> InterruptInfo:
    if row.cleared_at is not None:
        status: Literal["scheduled", "active", "ended", "cleared"] = "cleared"
    elif row.ends_at is not None and row.ends_at <= now:
        status = "ended"
    elif row.starts_at > now:
        status = "scheduled"
    else:
        status = "active"
    return InterruptInfo(
        id=row.id,
        layout=row.layout,
        device=row.device_id,
        group=row.group_id,
        starts_at=_utc(row.starts_at) or dt.datetime.now(dt.UTC),
        ends_at=_utc(row.ends_at),
        priority=row.priority,
        created_at=_utc(row.created_at) or dt.datetime.now(dt.UTC),
        cleared_at=_utc(row.cleared_at),
        status=status,
    )


async def _row(conn: Any, interrupt_id: str) -> Any:
    return (await conn.execute(select(interrupts).where(interrupts.c.id == interrupt_id))).first()


async def _members(conn: Any, row: Any) -> list[str]:
    """The devices an interrupt row reaches."""
    if row.device_id is not None:
        return [row.device_id]
    query = select(devices.c.id).where(
        devices.c.group_id == row.group_id, devices.c.revoked_at.is_(None)
    )
    return [r.id for r in await conn.execute(query)]


async def send_interrupt(state: ServerState, body: InterruptRequest) -> InterruptInfo:
    """Record an interrupt and republish the manifests it reaches (shared with the console)."""
    now = state.clock()
    starts = body.starts_at.timestamp() if body.starts_at is not None else now
    if body.ends_at is not None:
        ends: float | None = body.ends_at.timestamp()
    elif body.seconds is not None:
        ends = starts + body.seconds
    else:
        ends = None
    if ends is not None and ends <= max(starts, now):
        raise ApiError(422, "interrupt_ended", "the interrupt would end before it starts or now")
    interrupt_id = new_id("int")
    async with state.content_lock:
        async with state.writer.begin() as conn:
            if (
                await conn.execute(select(layouts.c.id).where(layouts.c.id == body.layout))
            ).first() is None:
                raise ApiError(409, "unknown_layout", f"layout {body.layout!r} does not exist")
            if body.device is not None:
                found = await conn.execute(
                    select(devices.c.id).where(
                        devices.c.id == body.device, devices.c.revoked_at.is_(None)
                    )
                )
                if found.first() is None:
                    raise ApiError(404, "device_not_found", f"no device {body.device!r}")
            elif (
                await conn.execute(select(groups.c.id).where(groups.c.id == body.group))
            ).first() is None:
                raise ApiError(404, "group_not_found", f"no group {body.group!r}")
            await conn.execute(
                insert(interrupts).values(
                    id=interrupt_id,
                    device_id=body.device,
                    group_id=body.group,
                    layout=body.layout,
                    priority=body.priority,
                    starts_at=starts,
                    ends_at=ends,
                    created_at=now,
                )
            )
            row = (
                await conn.execute(select(interrupts).where(interrupts.c.id == interrupt_id))
            ).one()
            changed = await refresh_devices(conn, state, await _members(conn, row))
        announce(state, changed)
    state.hub.broadcast("interrupt", {"id": interrupt_id, "status": "sent"})
    return interrupt_info(row, now)


async def clear_interrupt(state: ServerState, interrupt_id: str) -> InterruptInfo:
    """Clear an interrupt (idempotent): it leaves the manifests; the schedule resumes."""
    now = state.clock()
    async with state.content_lock:
        async with state.writer.begin() as conn:
            row = await _row(conn, interrupt_id)
            if row is None:
                raise ApiError(404, "interrupt_not_found", f"no interrupt {interrupt_id!r}")
            if row.cleared_at is None:
                await conn.execute(
                    update(interrupts).where(interrupts.c.id == interrupt_id).values(cleared_at=now)
                )
            row = (
                await conn.execute(select(interrupts).where(interrupts.c.id == interrupt_id))
            ).one()
            changed = await refresh_devices(conn, state, await _members(conn, row))
        announce(state, changed)
    state.hub.broadcast("interrupt", {"id": interrupt_id, "status": "cleared"})
    return interrupt_info(row, now)


async def list_interrupts_of(
    state: ServerState, *, device: str | None = None, live: bool = False
) -> list[InterruptInfo]:
    """The newest interrupts first (``live``: only those not ended or cleared)."""
    now = state.clock()
    query = select(interrupts).order_by(interrupts.c.created_at.desc()).limit(MAX_LISTED)
    if live:
        query = query.where(
            interrupts.c.cleared_at.is_(None),
            or_(interrupts.c.ends_at.is_(None), interrupts.c.ends_at > now),
        )
    async with state.engine.connect() as conn:
        if device is not None:
            group = (
                await conn.execute(select(devices.c.group_id).where(devices.c.id == device))
            ).scalar()
            targets = [interrupts.c.device_id == device]
            if group is not None:
                targets.append(interrupts.c.group_id == group)
            query = query.where(or_(*targets))
        return [interrupt_info(r, now) for r in await conn.execute(query)]


@router.post(
    "/api/v1/admin/interrupts",
    status_code=201,
    response_model=InterruptInfo,
    responses=problem_doc(*ADMIN, 404, 409, 422),
)
async def create_interrupt(body: InterruptRequest, state: State, admin: Admin) -> InterruptInfo:
    return await send_interrupt(state, body)


@router.get(
    "/api/v1/admin/interrupts",
    response_model=list[InterruptInfo],
    responses=problem_doc(*ADMIN, 422),
)
async def list_interrupts(
    state: State,
    admin: Admin,
    device: Annotated[str | None, Query(max_length=64)] = None,
    live: bool = False,
) -> list[InterruptInfo]:
    """The newest 100 interrupts, or those reaching ``device``; ``live``: only those not
    ended or cleared."""
    return await list_interrupts_of(state, device=device, live=live)


@router.get(
    "/api/v1/admin/interrupts/{interrupt_id}",
    response_model=InterruptInfo,
    responses=problem_doc(*ADMIN, 404),
)
async def get_interrupt(interrupt_id: str, state: State, admin: Admin) -> InterruptInfo:
    async with state.engine.connect() as conn:
        row = (
            await conn.execute(select(interrupts).where(interrupts.c.id == interrupt_id))
        ).first()
    if row is None:
        raise ApiError(404, "interrupt_not_found", f"no interrupt {interrupt_id!r}")
    return interrupt_info(row, state.clock())


@router.delete(
    "/api/v1/admin/interrupts/{interrupt_id}",
    response_model=InterruptInfo,
    responses=problem_doc(*ADMIN, 404),
)
async def delete_interrupt(interrupt_id: str, state: State, admin: Admin) -> InterruptInfo:
    """Clear it: it leaves the manifests, and the schedule resumes where it would be."""
    return await clear_interrupt(state, interrupt_id)
