"""Assets by sha256 for devices: ETag, single byte ranges, immutable caching."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from server._auth import Device, State
from server._bodies import MAX_DIGITS, JsonRoute, bounded_int
from server._db import media
from server._device_api import manifest_of
from server._problems import ApiError, problem_doc
from server._store import object_path

router = APIRouter(tags=["device"], route_class=JsonRoute)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
READ_CHUNK = 256 * 1024
IMMUTABLE = "public, max-age=31536000, immutable"
HUGE = 10**MAX_DIGITS


def _number(digits: str) -> int:
    # Longer than any file size could be: as good as infinite, and never converted.
    value = bounded_int(digits)
    return HUGE if value is None else value


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single ``bytes=`` range; None means 'send it all' (RFC 9110 allows
    ignoring what we do not support, such as several ranges). Raises 416 when unsatisfiable."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = _number(last)
        if length == 0:
            raise ApiError(
                416,
                "range_not_satisfiable",
                "empty suffix range",
                headers={"Content-Range": f"bytes */{size}"},
            )
        return max(0, size - length), size
    start = _number(first)
    end = size if last == "" else min(_number(last) + 1, size)
    if start >= size or (last != "" and _number(last) < start):
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"range outside 0-{size - 1}",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


async def _read(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(handle.seek, start)
        remaining = end - start
        while remaining > 0:
            chunk = await asyncio.to_thread(handle.read, min(READ_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


@router.get(
    "/api/v1/assets/{sha256}",
    responses={
        200: {"description": "the bytes", "content": {"application/octet-stream": {}}},
        206: {"description": "the requested range", "content": {"application/octet-stream": {}}},
        304: {"description": "Not Modified"},
        **problem_doc(400, 401, 403, 404, 416),
    },
)
async def get_asset(
    sha256: Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$")],
    request: Request,
    device: Device,
    state: State,
) -> Response:
    cached = await manifest_of(state, device.id)
    if sha256 not in cached.assets:
        raise ApiError(403, "asset_not_assigned", "this asset is not in the device's manifest")
    async with state.engine.connect() as conn:
        row = (await conn.execute(select(media).where(media.c.sha256 == sha256))).first()
    path = object_path(state.objects_dir, sha256)
    if row is None or not path.exists():
        raise ApiError(404, "asset_not_found", "the asset is gone from the store")
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": IMMUTABLE}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    size = row.size
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    span = None
    if wanted and (if_range is None or if_range.strip() == etag):
        span = parse_range(wanted, size)
    start, end = span if span else (0, size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    state.counters.inc("asset_bytes", end - start)
    return StreamingResponse(
        _read(path, start, end), status_code=status, headers=headers, media_type=row.mime
    )
