"""Console pages for media: the library, thumbnails, deletion, and the browser's uploads.

The browser uploads with the admin API's chunked protocol (create a session, PUT chunks with
``Content-Range``, ask what arrived, complete); these routes hand each step to the very same
functions, signed in by the session cookie and the CSRF header instead of the admin token.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError

from core import atomic_write
from server._admin_media import delete_media, media_usage
from server._console_web import admin_call, enter, message_of
from server._problems import ApiError, problem_response, validation_error
from server._store import SHA256_RE, object_path
from server._uploads import (
    UploadCreate,
    abort_upload,
    complete_upload,
    create_upload,
    list_media,
    put_chunk,
    upload_status,
)

router = APIRouter(include_in_schema=False)
THUMB_SIZE = (320, 180)
BROWSER_CHUNK = 1024 * 1024  # what the browser sends per PUT: a cut costs at most this much
CREATE_MAX_BYTES = 4096


def _api_error(error: ApiError) -> Response:
    return problem_response(error.status, error.code, error.detail, headers=error.headers)


async def library(state: Any) -> list[dict[str, Any]]:
    used = await media_usage(state)
    rows = []
    for info in await list_media(state, state.admin_token_hash):
        rows.append(
            {
                "info": info,
                "kind": info.mime.split("/")[0],
                "probe": info,  # width, height, duration_ms: found when it was stored
                "used_by": used.get(info.sha256, []),
            }
        )
    return rows


@router.get("/media")
async def media_page(request: Request) -> Response:
    console = await enter(request)
    rows = await library(console.state)
    return console.render("media.html", title="Media", media=rows, chunk_bytes=BROWSER_CHUNK)


@router.get("/media/table")
async def media_table(request: Request) -> Response:
    console = await enter(request)
    return console.fragment("media_rows.html", media=await library(console.state))


def _sha(value: str) -> str | None:
    return value if SHA256_RE.fullmatch(value) else None


@router.get("/media/{sha256}/file")
async def media_file(request: Request, sha256: str) -> Response:
    console = await enter(request)
    sha = _sha(sha256)
    path = object_path(console.state.objects_dir, sha) if sha else None
    if path is None or not path.exists():
        return Response(status_code=404)
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400, immutable"})


def _thumbnail(source: Path, target: Path) -> None:
    from PIL import Image

    with Image.open(source) as image:
        image.draft("RGB", THUMB_SIZE)  # JPEG: decode at a reduced scale
        image.thumbnail(THUMB_SIZE)
        converted = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        from io import BytesIO

        out = BytesIO()
        converted.save(out, "PNG", optimize=True)
    atomic_write(target, out.getvalue())


@router.get("/media/{sha256}/thumbnail.png")
async def media_thumbnail(request: Request, sha256: str) -> Response:
    console = await enter(request)
    state = console.state
    sha = _sha(sha256)
    source = object_path(state.objects_dir, sha) if sha else None
    if source is None or not source.exists():
        return Response(status_code=404)
    target = state.data_dir / "thumbnails" / f"{sha}.png"
    if not target.exists():
        try:
            await asyncio.to_thread(_thumbnail, source, target)
        except OSError:
            return Response(status_code=404)
    return FileResponse(
        target, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
    )


@router.post("/media/{sha256}/delete")
async def media_delete(request: Request, sha256: str) -> Response:
    console = await enter(request)
    name = console.form.get("name") or sha256[:12]
    _, error = await admin_call(delete_media(sha256, console.state, console.state.admin_token_hash))
    if error is not None:
        return console.redirect("/media", message_of(error), error=True)
    return console.redirect("/media", f"Deleted {name}.")


# --- the browser's chunked uploads ------------------------------------------------------------


@router.post("/media/uploads")
async def upload_create(request: Request) -> Response:
    console = await enter(request)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > CREATE_MAX_BYTES:
            return problem_response(413, "too_large", "upload description too large")
    try:
        body = UploadCreate.model_validate(json.loads(raw or b"{}"))
    except (ValueError, ValidationError) as exc:
        if isinstance(exc, ValidationError):
            return _api_error(validation_error(exc))
        return problem_response(400, "invalid_json", "body is not JSON")
    state = console.state
    created, error = await admin_call(create_upload(body, state, state.admin_token_hash))
    if error is not None:
        return _api_error(error)
    return JSONResponse(created.model_dump(mode="json"), status_code=201)


@router.get("/media/uploads/{upload_id}")
async def upload_get(request: Request, upload_id: str) -> Response:
    console = await enter(request)
    state = console.state
    found, error = await admin_call(upload_status(upload_id, state, state.admin_token_hash))
    if error is not None:
        return _api_error(error)
    return JSONResponse(found.model_dump(mode="json"))


@router.put("/media/uploads/{upload_id}")
async def upload_chunk(request: Request, upload_id: str) -> Response:
    console = await enter(request)
    state = console.state
    stored, error = await admin_call(
        put_chunk(
            upload_id,
            request,
            state,
            state.admin_token_hash,
            content_range=request.headers.get("content-range"),
        )
    )
    if error is not None:
        return _api_error(error)
    return JSONResponse(stored.model_dump(mode="json"))


@router.post("/media/uploads/{upload_id}/complete")
async def upload_complete(request: Request, upload_id: str) -> Response:
    console = await enter(request)
    state = console.state
    done, error = await admin_call(complete_upload(upload_id, state, state.admin_token_hash))
    if error is not None:
        return _api_error(error)
    return JSONResponse(done.model_dump(mode="json"))


@router.delete("/media/uploads/{upload_id}")
async def upload_abort(request: Request, upload_id: str) -> Response:
    console = await enter(request)
    state = console.state
    _, error = await admin_call(abort_upload(upload_id, state, state.admin_token_hash))
    if error is not None:
        return _api_error(error)
    return Response(status_code=204)
