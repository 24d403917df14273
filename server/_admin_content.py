"""Admin CRUD for playlists, layouts and schedules; every change republishes manifests."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import ImageItem, Layout, Playlist, ScheduleEntry, VideoItem
from server._auth import Admin, State
from server._bodies import JsonRoute
from server._content import announce, conflicts, live_interrupts, refresh_devices
from server._db import devices, groups, interrupts, layouts, media, playlists, schedules
from server._problems import ApiError, problem_doc
from server._state import ServerState

router = APIRouter(tags=["content"], route_class=JsonRoute)
ADMIN = (400, 401)


def _dump(model: Playlist | Layout | ScheduleEntry) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def _check_path(path_id: str, body_id: str) -> None:
    if path_id != body_id:
        raise ApiError(
            422, "id_mismatch", f"body id {body_id!r} differs from the path's {path_id!r}"
        )


async def _ids(conn: AsyncConnection, table: Any) -> set[str]:
    return {r.id for r in await conn.execute(select(table.c.id))}


async def _upsert(
    conn: AsyncConnection, table: Any, item_id: str, body: dict[str, Any], now: float
) -> bool:
    exists = (await conn.execute(select(table.c.id).where(table.c.id == item_id))).first()
    if exists:
        await conn.execute(
            update(table).where(table.c.id == item_id).values(body=body, updated_at=now)
        )
        return False
    await conn.execute(insert(table).values(id=item_id, body=body, updated_at=now))
    return True


async def publish(state: ServerState, conn: AsyncConnection) -> list[str]:
    """Rebuild manifests inside the caller's transaction; the caller announces after commit."""
    return await refresh_devices(conn, state)


async def _save(
    state: ServerState, table: Any, item_id: str, body: dict[str, Any], conn: AsyncConnection
) -> tuple[bool, list[str]]:
    created = await _upsert(conn, table, item_id, body, state.clock())
    return created, await publish(state, conn)


def _created(response: Response, created: bool) -> None:
    response.status_code = 201 if created else 200


@router.put(
    "/api/v1/admin/playlists/{playlist_id}",
    response_model=Playlist,
    responses={201: {"description": "created", "model": Playlist}, **problem_doc(*ADMIN, 409, 422)},
)
async def put_playlist(
    playlist_id: str, body: Playlist, response: Response, state: State, admin: Admin
) -> Playlist:
    _check_path(playlist_id, body.id)
    shas = {i.asset: i.type for i in body.items if isinstance(i, ImageItem | VideoItem)}
    async with state.content_lock:
        async with state.writer.begin() as conn:
            known = {
                r.sha256: r.mime
                for r in await conn.execute(select(media).where(media.c.sha256.in_(list(shas))))
            }
            for sha, kind in shas.items():
                if sha not in known:
                    raise ApiError(409, "unknown_asset", f"asset {sha} was not uploaded")
                if not known[sha].startswith(f"{kind}/"):
                    raise ApiError(
                        409, "asset_type_mismatch", f"asset {sha} is {known[sha]}, not a {kind}"
                    )
            created, changed = await _save(state, playlists, playlist_id, _dump(body), conn)
        announce(state, changed)
    _created(response, created)
    return body


@router.put(
    "/api/v1/admin/layouts/{layout_id}",
    response_model=Layout,
    responses={201: {"description": "created", "model": Layout}, **problem_doc(*ADMIN, 409, 422)},
)
async def put_layout(
    layout_id: str, body: Layout, response: Response, state: State, admin: Admin
) -> Layout:
    _check_path(layout_id, body.id)
    async with state.content_lock:
        async with state.writer.begin() as conn:
            known = await _ids(conn, playlists)
            for zone in body.zones:
                if zone.playlist not in known:
                    raise ApiError(
                        409,
                        "unknown_playlist",
                        f"zone {zone.id!r} uses unknown playlist {zone.playlist!r}",
                    )
            created, changed = await _save(state, layouts, layout_id, _dump(body), conn)
        announce(state, changed)
    _created(response, created)
    return body


async def _assigned_sets(conn: AsyncConnection) -> list[list[str]]:
    """Every schedule list in use by a device or a group."""
    rows = [
        *(await conn.execute(select(devices.c.schedule).where(devices.c.revoked_at.is_(None)))),
        *(await conn.execute(select(groups.c.schedule))),
    ]
    return [list(r.schedule) for r in rows if r.schedule]


async def check_schedule_sets(
    conn: AsyncConnection, sets: list[list[str]], replacing: ScheduleEntry | None = None
) -> None:
    """409 schedule_conflict when a set would hold two same-priority overlapping entries."""
    bodies = {
        r.id: ScheduleEntry.model_validate(r.body) for r in await conn.execute(select(schedules))
    }
    if replacing is not None:
        bodies[replacing.id] = replacing
    for ids in sets:
        entries = [bodies[i] for i in ids if i in bodies]
        for n, a in enumerate(entries):
            for b in entries[n + 1 :]:
                if conflicts(a, b):
                    raise ApiError(
                        409,
                        "schedule_conflict",
                        f"schedules {a.id!r} and {b.id!r} have priority {a.priority} and overlap",
                    )


@router.put(
    "/api/v1/admin/schedules/{schedule_id}",
    response_model=ScheduleEntry,
    responses={
        201: {"description": "created", "model": ScheduleEntry},
        **problem_doc(*ADMIN, 409, 422),
    },
)
async def put_schedule(
    schedule_id: str, body: ScheduleEntry, response: Response, state: State, admin: Admin
) -> ScheduleEntry:
    _check_path(schedule_id, body.id)
    async with state.content_lock:
        async with state.writer.begin() as conn:
            if body.layout not in await _ids(conn, layouts):
                raise ApiError(409, "unknown_layout", f"layout {body.layout!r} does not exist")
            sets = [s for s in await _assigned_sets(conn) if schedule_id in s]
            await check_schedule_sets(conn, sets, replacing=body)
            created, changed = await _save(state, schedules, schedule_id, _dump(body), conn)
        announce(state, changed)
    _created(response, created)
    return body


async def referenced(conn: AsyncConnection, kind: str, item_id: str, now: float) -> str | None:
    """Who still uses ``item_id`` (a playlist, layout, schedule or media sha), if anyone."""
    if kind == "playlist":
        for r in await conn.execute(select(layouts)):
            if any(z.playlist == item_id for z in Layout.model_validate(r.body).zones):
                return f"layout {r.id!r}"
    if kind == "layout":
        for r in await conn.execute(select(schedules)):
            if r.body["layout"] == item_id:
                return f"schedule {r.id!r}"
        live = live_interrupts(now).where(interrupts.c.layout == item_id)
        row = (await conn.execute(live)).first()
        if row is not None:
            return f"interrupt {row.id!r}"
        for table in (devices, groups):
            row = (
                await conn.execute(select(table.c.id).where(table.c.default_layout == item_id))
            ).first()
            if row is not None:
                return f"{table.name[:-1]} {row.id!r}"
    if kind == "schedule":
        for table in (devices, groups):
            for r in await conn.execute(select(table.c.id, table.c.schedule)):
                if r.schedule and item_id in r.schedule:
                    return f"{table.name[:-1]} {r.id!r}"
    if kind == "media":
        for r in await conn.execute(select(playlists)):
            items = Playlist.model_validate(r.body).items
            if any(isinstance(i, ImageItem | VideoItem) and i.asset == item_id for i in items):
                return f"playlist {r.id!r}"
    return None


TABLES = {
    "playlists": ("playlist", playlists),
    "layouts": ("layout", layouts),
    "schedules": ("schedule", schedules),
}
MODELS: dict[str, type[Playlist] | type[Layout] | type[ScheduleEntry]] = {
    "playlists": Playlist,
    "layouts": Layout,
    "schedules": ScheduleEntry,
}


def _register_read_delete(collection: str) -> None:
    kind, table = TABLES[collection]
    model = MODELS[collection]

    async def list_items(state: State, admin: Admin) -> list[dict[str, Any]]:
        async with state.engine.connect() as conn:
            return [r.body for r in await conn.execute(select(table).order_by(table.c.id))]

    async def get_item(item_id: str, state: State, admin: Admin) -> dict[str, Any]:
        async with state.engine.connect() as conn:
            row = (await conn.execute(select(table).where(table.c.id == item_id))).first()
        if row is None:
            raise ApiError(404, f"{kind}_not_found", f"no {kind} {item_id!r}")
        body: dict[str, Any] = row.body
        return body

    async def delete_item(item_id: str, state: State, admin: Admin) -> Response:
        async with state.content_lock, state.writer.begin() as conn:
            user = await referenced(conn, kind, item_id, state.clock())
            if user is not None:
                raise ApiError(409, f"{kind}_in_use", f"{kind} {item_id!r} is used by {user}")
            gone = await conn.execute(delete(table).where(table.c.id == item_id))
            if gone.rowcount == 0:
                raise ApiError(404, f"{kind}_not_found", f"no {kind} {item_id!r}")
        return Response(status_code=204)

    base = f"/api/v1/admin/{collection}"
    router.add_api_route(
        base,
        list_items,
        methods=["GET"],
        response_model=list[model],  # type: ignore[valid-type]
        responses=problem_doc(*ADMIN),
        name=f"list_{collection}",
    )
    router.add_api_route(
        base + "/{item_id}",
        get_item,
        methods=["GET"],
        response_model=model,
        responses=problem_doc(*ADMIN, 404),
        name=f"get_{kind}",
    )
    router.add_api_route(
        base + "/{item_id}",
        delete_item,
        methods=["DELETE"],
        status_code=204,
        responses=problem_doc(*ADMIN, 404, 409),
        name=f"delete_{kind}",
    )


for _collection in TABLES:
    _register_read_delete(_collection)
