"""Media uploads: chunked and resumable sessions, plus a one-shot upload for small files.

create session → PUT chunks with ``Content-Range`` (any order, retries welcome) → GET the
session to see what arrived → complete (idempotent; checks size and the announced sha256)
→ or DELETE to abort. Chunks land at their offset in one partial file, so memory stays flat.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, insert, select, update

from server._auth import Admin, State
from server._bodies import UPLOAD_CHUNK, JsonRoute, bounded_int
from server._db import media, uploads
from server._probe import MediaProbe, ProbeRejected
from server._problems import ApiError, problem_doc
from server._security import new_id
from server._state import ServerState
from server._store import adopt, hash_file

router = APIRouter(tags=["media"], route_class=JsonRoute)
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
ADMIN = (400, 401)
Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class MediaInfo(BaseModel):
    sha256: Sha
    size: int
    mime: str
    name: str | None = None
    created_at: dt.datetime
    width: int | None = Field(None, description="pixels as shown (rotation applied)")
    height: int | None = None
    duration_ms: int | None = Field(None, description="video only")
    rotation: int | None = Field(None, description="video: clockwise degrees it is turned")
    frames: int | None = Field(None, description="pictures: over 1 for an animation")
    format: str | None = Field(None, description="container or picture format")
    codec: str | None = Field(None, description="video codec")


class UploadCreate(BaseModel):
    model_config = {"extra": "forbid"}
    size: int = Field(ge=0, description="total bytes of the file (an empty file is refused)")
    sha256: Sha | None = Field(None, description="checked at completion when given")
    name: str | None = Field(None, max_length=255)


class UploadStatus(BaseModel):
    upload_id: str
    size: int
    received: list[list[int]] = Field(description="[start, end) byte ranges stored")
    received_bytes: int
    status: str
    chunk_size: int
    expires_at: dt.datetime
    media: MediaInfo | None = None


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def media_info(row: Any) -> MediaInfo:
    probe = MediaProbe.model_validate(row.probe) if row.probe else None
    return MediaInfo(
        sha256=row.sha256,
        size=row.size,
        mime=row.mime,
        name=row.name,
        created_at=_utc(row.created_at),
        width=probe.width if probe else None,
        height=probe.height if probe else None,
        duration_ms=probe.duration_ms if probe else None,
        rotation=probe.rotation if probe and probe.kind == "video" else None,
        frames=probe.frames if probe else None,
        format=probe.format if probe else None,
        codec=probe.codec if probe else None,
    )


def merge_ranges(ranges: list[list[int]], start: int, end: int) -> list[list[int]]:
    """Add [start, end) to sorted disjoint ranges, merging neighbours."""
    merged: list[list[int]] = []
    for lo, hi in sorted([*ranges, [start, end]]):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def _partial(state: ServerState, upload_id: str) -> Path:
    return state.uploads_dir / f"{upload_id}.part"


async def _status(state: ServerState, row: Any) -> UploadStatus:
    info = None
    if row.media_sha256:
        async with state.engine.connect() as conn:
            m = (
                await conn.execute(select(media).where(media.c.sha256 == row.media_sha256))
            ).first()
        info = media_info(m) if m is not None else None
    return UploadStatus(
        upload_id=row.id,
        size=row.size,
        received=row.ranges,
        received_bytes=sum(hi - lo for lo, hi in row.ranges),
        status=row.status,
        chunk_size=UPLOAD_CHUNK,
        expires_at=_utc(row.expires_at),
        media=info,
    )


async def _session(state: ServerState, upload_id: str, *, open_only: bool = False) -> Any:
    async with state.engine.connect() as conn:
        row = (await conn.execute(select(uploads).where(uploads.c.id == upload_id))).first()
    if row is None:
        raise ApiError(404, "upload_not_found", "no such upload session")
    if row.status == "open" and row.expires_at <= state.clock():
        raise ApiError(410, "upload_expired", "the upload session expired; start a new one")
    if open_only and row.status != "open":
        raise ApiError(409, "upload_completed", "the upload is already complete")
    return row


def _lock(state: ServerState, upload_id: str) -> asyncio.Lock:
    return state.upload_locks.setdefault(upload_id, asyncio.Lock())


@router.post(
    "/api/v1/admin/uploads",
    status_code=201,
    response_model=UploadStatus,
    responses=problem_doc(*ADMIN, 413, 422),
)
async def create_upload(body: UploadCreate, state: State, admin: Admin) -> UploadStatus:
    if body.size == 0:
        raise ApiError(422, "empty_file", "the file is empty (0 bytes): nothing to show")
    if body.size > state.config.max_upload_bytes:
        raise ApiError(413, "too_large", f"at most {state.config.max_upload_bytes} bytes")
    now = state.clock()
    upload_id = new_id("up")
    state.uploads_dir.mkdir(parents=True, exist_ok=True)
    _partial(state, upload_id).touch(mode=0o600)
    async with state.writer.begin() as conn:
        await conn.execute(
            insert(uploads).values(
                id=upload_id,
                size=body.size,
                sha256=body.sha256,
                name=body.name,
                ranges=[],
                status="open",
                created_at=now,
                expires_at=now + state.config.upload_session_ttl_s,
            )
        )
    return await _status(state, await _session(state, upload_id))


@router.get(
    "/api/v1/admin/uploads/{upload_id}",
    response_model=UploadStatus,
    responses=problem_doc(*ADMIN, 404, 410),
)
async def upload_status(upload_id: str, state: State, admin: Admin) -> UploadStatus:
    return await _status(state, await _session(state, upload_id))


def _parse_content_range(value: str | None, size: int) -> tuple[int, int]:
    match = _RANGE.match(value or "")
    numbers = [bounded_int(g) for g in match.groups()] if match else []
    if match is None or None in numbers:
        raise ApiError(400, "range_mismatch", "Content-Range must be 'bytes START-END/TOTAL'")
    start, last, total = (n for n in numbers if n is not None)
    if total != size or start > last or last >= size:
        raise ApiError(416, "range_mismatch", f"range {start}-{last}/{total} does not fit {size}")
    return start, last + 1


async def _write_at(path: Path, request: Request, start: int, end: int) -> None:
    expected = end - start
    written = 0
    handle = await asyncio.to_thread(open, path, "r+b")
    try:
        await asyncio.to_thread(handle.seek, start)
        async for chunk in request.stream():
            written += len(chunk)
            if written > expected:
                raise ApiError(400, "range_mismatch", "body longer than its Content-Range")
            await asyncio.to_thread(handle.write, chunk)
        await asyncio.to_thread(handle.flush)
    finally:
        await asyncio.to_thread(handle.close)
    if written != expected:
        raise ApiError(400, "range_mismatch", f"body has {written} bytes, range says {expected}")


@router.put(
    "/api/v1/admin/uploads/{upload_id}",
    response_model=UploadStatus,
    responses=problem_doc(*ADMIN, 404, 409, 410, 416),
    openapi_extra=BINARY_BODY,
)
async def put_chunk(
    upload_id: str,
    request: Request,
    state: State,
    admin: Admin,
    content_range: Annotated[str | None, Header()] = None,
) -> UploadStatus:
    async with _lock(state, upload_id):
        row = await _session(state, upload_id, open_only=True)
        start, end = _parse_content_range(content_range, row.size)
        await _write_at(_partial(state, upload_id), request, start, end)
        ranges = merge_ranges(row.ranges, start, end)
        async with state.writer.begin() as conn:
            await conn.execute(
                update(uploads)
                .where(uploads.c.id == upload_id)
                .values(ranges=ranges, expires_at=state.clock() + state.config.upload_session_ttl_s)
            )
        return await _status(state, await _session(state, upload_id))


async def register_media(state: ServerState, path: Path, name: str | None, sha: str | None) -> Any:
    """Hash, probe and store a complete file; the media row is created once per sha256."""
    digest, size, head = await asyncio.to_thread(hash_file, path)
    if sha is not None and sha != digest:
        raise ApiError(422, "checksum_mismatch", f"received bytes hash to {digest}, not {sha}")
    try:
        probe = await state.prober.probe(path, head, size)
    except ProbeRejected as rejected:
        state.counters.inc("uploads_rejected")
        raise ApiError(rejected.status, rejected.code, rejected.detail) from None
    async with state.media_lock:
        await asyncio.to_thread(adopt, state.objects_dir, path, digest)
        async with state.writer.begin() as conn:
            row = (await conn.execute(select(media).where(media.c.sha256 == digest))).first()
            if row is None:
                await conn.execute(
                    insert(media).values(
                        sha256=digest,
                        size=size,
                        mime=probe.mime,
                        name=name,
                        created_at=state.clock(),
                        probe=probe.model_dump(mode="json"),
                    )
                )
                row = (await conn.execute(select(media).where(media.c.sha256 == digest))).first()
    state.counters.inc("uploads_completed")
    return row


@router.post(
    "/api/v1/admin/uploads/{upload_id}/complete",
    response_model=MediaInfo,
    responses=problem_doc(*ADMIN, 404, 409, 410, 415, 422, 503),
)
async def complete_upload(upload_id: str, state: State, admin: Admin) -> MediaInfo:
    async with _lock(state, upload_id):
        row = await _session(state, upload_id)
        if row.status == "completed":
            # Idempotent: a retried completion gets the same answer, and no second media.
            async with state.engine.connect() as conn:
                done = (
                    await conn.execute(select(media).where(media.c.sha256 == row.media_sha256))
                ).first()
            if done is None:
                raise ApiError(404, "media_not_found", "the uploaded media was deleted since")
            return media_info(done)
        if row.ranges != [[0, row.size]]:
            missing = row.size - sum(hi - lo for lo, hi in row.ranges)
            raise ApiError(409, "upload_incomplete", f"{missing} bytes not received yet")
        stored = await register_media(state, _partial(state, upload_id), row.name, row.sha256)
        async with state.writer.begin() as conn:
            await conn.execute(
                update(uploads)
                .where(uploads.c.id == upload_id)
                .values(status="completed", media_sha256=stored.sha256)
            )
        return media_info(stored)


@router.delete(
    "/api/v1/admin/uploads/{upload_id}", status_code=204, responses=problem_doc(*ADMIN, 404)
)
async def abort_upload(upload_id: str, state: State, admin: Admin) -> Response:
    async with _lock(state, upload_id), state.writer.begin() as conn:
        gone = await conn.execute(delete(uploads).where(uploads.c.id == upload_id))
        if gone.rowcount == 0:
            raise ApiError(404, "upload_not_found", "no such upload session")
    _partial(state, upload_id).unlink(missing_ok=True)
    state.upload_locks.pop(upload_id, None)
    return Response(status_code=204)


@router.post(
    "/api/v1/admin/media",
    status_code=201,
    response_model=MediaInfo,
    responses=problem_doc(*ADMIN, 413, 415, 422, 503),
    openapi_extra=BINARY_BODY,
)
async def upload_small(
    request: Request,
    state: State,
    admin: Admin,
    name: Annotated[str | None, Query(max_length=255)] = None,
    sha256: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
) -> MediaInfo:
    state.uploads_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="oneshot-", suffix=".part", dir=state.uploads_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            size = 0
            # Bounded by server._bodies (64 MiB, or max_upload_bytes): larger files use a session.
            async for chunk in request.stream():
                size += len(chunk)
                await asyncio.to_thread(handle.write, chunk)
        if size == 0:
            raise ApiError(422, "empty_file", "the file is empty (0 bytes): nothing to show")
        return media_info(await register_media(state, tmp, name, sha256))
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)


async def remove_expired_uploads(state: ServerState) -> int:
    """Delete abandoned sessions and their chunks, and partial files nobody owns."""
    now = state.clock()
    async with state.writer.begin() as conn:
        rows = (
            await conn.execute(
                select(uploads.c.id, uploads.c.status).where(uploads.c.expires_at <= now)
            )
        ).all()
        stale = [r.id for r in rows if r.status == "open" and not _lock(state, r.id).locked()]
        finished = [r.id for r in rows if r.status == "completed"]
        if stale or finished:
            await conn.execute(delete(uploads).where(uploads.c.id.in_(stale + finished)))
        live = {r.id for r in await conn.execute(select(uploads.c.id))}
    for upload_id in stale:
        _partial(state, upload_id).unlink(missing_ok=True)
        state.upload_locks.pop(upload_id, None)
    if state.uploads_dir.exists():
        ttl = state.config.upload_session_ttl_s
        for path in state.uploads_dir.glob("*.part"):
            owner = path.name.removesuffix(".part")
            if owner not in live and path.stat().st_mtime < now - ttl:
                path.unlink(missing_ok=True)
    return len(stale)


@router.get("/api/v1/admin/media", response_model=list[MediaInfo], responses=problem_doc(*ADMIN))
async def list_media(state: State, admin: Admin) -> list[MediaInfo]:
    async with state.engine.connect() as conn:
        return [
            media_info(r) for r in await conn.execute(select(media).order_by(media.c.created_at))
        ]


@router.get(
    "/api/v1/admin/media/{sha256}", response_model=MediaInfo, responses=problem_doc(*ADMIN, 404)
)
async def get_media(sha256: str, state: State, admin: Admin) -> MediaInfo:
    async with state.engine.connect() as conn:
        row = (await conn.execute(select(media).where(media.c.sha256 == sha256))).first()
    if row is None:
        raise ApiError(404, "media_not_found", f"no media {sha256}")
    return media_info(row)
