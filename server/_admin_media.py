"""Admin API for stored media beyond uploads: who uses a file, deleting it.

What a file is (dimensions, duration...) was found when it was stored (``server._probe``)
and comes with its media entry.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from sqlalchemy import delete, select

from protocol import ImageItem, Playlist, VideoItem
from server._admin_content import referenced
from server._auth import Admin, State
from server._bodies import JsonRoute
from server._db import media, playlists
from server._problems import ApiError, problem_doc
from server._state import ServerState
from server._store import object_path

router = APIRouter(tags=["media"], route_class=JsonRoute)
ADMIN = (400, 401)


async def media_usage(state: ServerState) -> dict[str, list[str]]:
    """sha256 → ids of the playlists that use it."""
    used: dict[str, list[str]] = {}
    async with state.engine.connect() as conn:
        for row in await conn.execute(select(playlists).order_by(playlists.c.id)):
            for item in Playlist.model_validate(row.body).items:
                if isinstance(item, ImageItem | VideoItem):
                    users = used.setdefault(item.asset, [])
                    if row.id not in users:
                        users.append(row.id)
    return used


@router.delete(
    "/api/v1/admin/media/{sha256}", status_code=204, responses=problem_doc(*ADMIN, 404, 409)
)
async def delete_media(
    sha256: Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$")], state: State, admin: Admin
) -> Response:
    """Delete a media file and its row; 409 ``media_in_use`` while a playlist uses it."""
    # media_lock: an upload of the same bytes cannot adopt the file while it is removed.
    async with state.content_lock, state.media_lock:
        async with state.writer.begin() as conn:
            user = await referenced(conn, "media", sha256, state.clock())
            if user is not None:
                raise ApiError(409, "media_in_use", f"media {sha256} is used by {user}")
            gone = await conn.execute(delete(media).where(media.c.sha256 == sha256))
            if gone.rowcount == 0:
                raise ApiError(404, "media_not_found", f"no media {sha256}")
        # After the commit: a crash in between leaves an orphan file, never a row without one.
        await asyncio.to_thread(object_path(state.objects_dir, sha256).unlink, missing_ok=True)
        (state.data_dir / "thumbnails" / f"{sha256}.png").unlink(missing_ok=True)
    return Response(status_code=204)
