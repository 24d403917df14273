"""Admin API for stored media beyond uploads: who uses a file, what it is, deleting it.

Probing reads only headers: Pillow for images (no pixel decoding), the ``moov`` box for
MP4/MOV (duration from ``mvhd``, size from the first video ``tkhd``). Matroska/WebM is not
probed here; its dimensions and duration show as unknown.
"""

from __future__ import annotations

import asyncio
import functools
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from sqlalchemy import delete, select

from protocol import ImageItem, Playlist, VideoItem
from server._admin_content import _referenced
from server._auth import Admin, State
from server._db import media, playlists
from server._problems import ApiError, problem_doc
from server._state import ServerState
from server._store import object_path

router = APIRouter(tags=["media"])
ADMIN = (400, 401)
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


@dataclass(frozen=True)
class MediaProbe:
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


def _image_probe(path: Path) -> MediaProbe:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return MediaProbe(width=image.width, height=image.height)
    except (OSError, UnidentifiedImageError):
        return MediaProbe()


def _boxes(handle: BinaryIO, end: int) -> Any:
    """(type, payload start, payload end) of the ISO-BMFF boxes up to ``end``."""
    while handle.tell() + 8 <= end:
        start = handle.tell()
        header = handle.read(8)
        size, kind = struct.unpack(">I4s", header)
        offset = 8
        if size == 1:
            size = struct.unpack(">Q", handle.read(8))[0]
            offset = 16
        elif size == 0:
            size = end - start
        if size < offset or start + size > end:
            return
        yield kind, start + offset, start + size
        handle.seek(start + size)


def _mp4_probe(path: Path) -> MediaProbe:
    width = height = duration = None
    with open(path, "rb") as handle:
        stack = [(0, path.stat().st_size)]
        while stack:
            begin, end = stack.pop()
            handle.seek(begin)
            for kind, payload, box_end in list(_boxes(handle, end)):
                handle.seek(payload)
                if kind in _CONTAINERS:
                    stack.append((payload, box_end))
                elif kind == b"mvhd" and duration is None:
                    version = handle.read(4)[0]
                    if version == 1:
                        _, _, scale, length = struct.unpack(">QQIQ", handle.read(28))
                    else:
                        _, _, scale, length = struct.unpack(">IIII", handle.read(16))
                    duration = round(length * 1000 / scale) if scale else None
                elif kind == b"tkhd" and width is None:
                    version = handle.read(4)[0]
                    handle.seek(payload + (88 if version == 1 else 76))
                    w, h = struct.unpack(">II", handle.read(8))
                    if w and h:  # audio tracks have no size
                        width, height = w >> 16, h >> 16
    return MediaProbe(width=width, height=height, duration_ms=duration)


@functools.lru_cache(maxsize=4096)
def _probe_cached(path: str, sha256: str, mime: str) -> MediaProbe:
    # Keyed by sha: a stored object never changes, so an answer never goes stale.
    file = Path(path)
    try:
        if mime.startswith("image/"):
            return _image_probe(file)
        if mime in ("video/mp4", "video/quicktime"):
            return _mp4_probe(file)
    except (OSError, struct.error, IndexError):
        pass
    return MediaProbe()


async def probe_media(state: ServerState, sha256: str, mime: str) -> MediaProbe:
    path = object_path(state.objects_dir, sha256)
    return await asyncio.to_thread(_probe_cached, str(path), sha256, mime)


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
    async with state.content_lock:
        async with state.writer.begin() as conn:
            user = await _referenced(conn, "media", sha256)
            if user is not None:
                raise ApiError(409, "media_in_use", f"media {sha256} is used by {user}")
            gone = await conn.execute(delete(media).where(media.c.sha256 == sha256))
            if gone.rowcount == 0:
                raise ApiError(404, "media_not_found", f"no media {sha256}")
        # After the commit: a crash in between leaves an orphan file, never a row without one.
        await asyncio.to_thread(object_path(state.objects_dir, sha256).unlink, missing_ok=True)
        (state.data_dir / "thumbnails" / f"{sha256}.png").unlink(missing_ok=True)
    return Response(status_code=204)
