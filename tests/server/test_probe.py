"""Uploads are opened and decoded before they are stored: what is kept, and every refusal."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server._db import media, open_database
from server._probe import ProbeLimits, Prober
from tests.media import MediaMaker
from tests.server.conftest import Ctx

ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("quadrants.jpg", {"mime": "image/jpeg", "width": 1600, "height": 900, "frames": 1}),
    ("rotated_exif.jpg", {"mime": "image/jpeg", "width": 90, "height": 160}),
    ("quadrants.webp", {"mime": "image/webp", "width": 160, "height": 90}),
    ("quadrants.bmp", {"mime": "image/bmp", "width": 160, "height": 90}),
    ("animated.gif", {"mime": "image/gif", "frames": 3}),
    ("still.avif", {"mime": "image/avif", "width": 64, "height": 36, "format": "AVIF"}),
    ("one_pixel.png", {"mime": "image/png", "width": 1, "height": 1}),
    ("seven_by_three.png", {"mime": "image/png", "width": 7, "height": 3}),
    ("huge_palette.png", {"mime": "image/png", "width": 9400, "height": 9400}),
    ("png_named.mp4", {"mime": "image/png"}),  # the bytes decide, not the name
    ("mp4_named.png", {"mime": "video/mp4", "duration_ms": 400}),
    ("phone_portrait.mp4", {"mime": "video/mp4", "width": 720, "height": 1280, "rotation": 270}),
    ("vp9.webm", {"mime": "video/webm", "codec": "vp9", "width": 320, "height": 180}),
    ("h264.mkv", {"mime": "video/x-matroska", "codec": "h264"}),
    ("h264.mov", {"mime": "video/quicktime", "codec": "h264"}),
    ("hevc_10bit.mkv", {"codec": "hevc"}),
    ("av1.mp4", {"codec": "av1"}),
    ("mpeg2.mpg", {"mime": "video/mpeg", "codec": "mpeg2video"}),
    ("mjpeg.avi", {"mime": "video/x-msvideo", "codec": "mjpeg"}),
    ("vfr.mp4", {"duration_ms": 1000}),
    ("tenth_of_a_second.mp4", {"duration_ms": 120}),
    ("4k.mp4", {"width": 3840, "height": 2160, "duration_ms": 1000}),
    ("odd_7x3.webm", {"width": 7, "height": 3}),
]

REFUSED: list[tuple[str, int, str, str]] = [
    ("zero_bytes.mp4", 422, "empty_file", "empty"),
    ("truncated.mp4", 422, "undecodable_media", "moov atom not found"),
    ("truncated_data.mp4", 422, "truncated_media", "header says 4.0 s"),
    ("no_moov.mp4", 422, "undecodable_media", "moov atom not found"),
    ("ftyp_garbage.mp4", 422, "undecodable_media", "not a decodable video"),
    ("audio_only.m4a", 415, "no_video_stream", "audio only"),
    ("audio_only.webm", 415, "no_video_stream", "audio only"),
    ("still.heic", 415, "unsupported_media_type", "HEIC/HEIF"),
    ("text_named.mp4", 415, "unsupported_media_type", "not a picture or video"),
    ("unsupported.dds", 415, "unsupported_media_type", "not a picture or video"),
    ("jpeg_garbage.jpg", 422, "undecodable_media", "not a decodable picture"),
    ("truncated.jpg", 422, "undecodable_media", "truncated"),
]


async def _post(ctx: Ctx, data: bytes) -> Any:
    return await ctx.client.post("/api/v1/admin/media", content=data, headers=ctx.admin)


@pytest.mark.parametrize(("name", "expected"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
async def test_what_decodes_is_stored_with_what_it_is(
    ctx: Ctx, media: MediaMaker, name: str, expected: dict[str, Any]
) -> None:
    response = await _post(ctx, media(name).read_bytes())
    assert response.status_code == 201, response.text
    info = response.json()
    assert {key: info[key] for key in expected} == expected
    assert info["width"] >= 1 and info["height"] >= 1
    listed = await ctx.client.get(f"/api/v1/admin/media/{info['sha256']}", headers=ctx.admin)
    assert listed.json() == info


@pytest.mark.parametrize(("name", "status", "code", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_what_cannot_be_shown_is_refused_with_the_reason(
    ctx: Ctx, media: MediaMaker, name: str, status: int, code: str, reason: str
) -> None:
    response = await _post(ctx, media(name).read_bytes())
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == code and reason in problem["detail"]
    assert str(ctx.data_dir) not in problem["detail"], "no server paths in answers"
    assert (await ctx.client.get("/api/v1/admin/media", headers=ctx.admin)).json() == []
    assert not list((ctx.data_dir / "objects").rglob("*.*")), "nothing stored"


async def test_an_empty_upload_session_is_refused_up_front(ctx: Ctx) -> None:
    r = await ctx.client.post("/api/v1/admin/uploads", json={"size": 0}, headers=ctx.admin)
    assert r.status_code == 422 and r.json()["code"] == "empty_file"


async def test_pictures_above_the_megapixel_ceiling_are_refused(
    ctx: Ctx, media: MediaMaker
) -> None:
    ctx.state.prober = Prober(ProbeLimits(max_image_pixels=20_000_000))
    response = await _post(ctx, media("huge_palette.png").read_bytes())
    assert response.status_code == 422
    assert response.json()["code"] == "image_too_large"
    assert "9400x9400 is 88.4 megapixels" in response.json()["detail"]
    assert "server.max_image_megapixels" in response.json()["detail"]


async def test_probing_is_bounded_in_memory_and_time(ctx: Ctx, media: MediaMaker) -> None:
    ctx.state.prober = Prober(ProbeLimits(memory_bytes=96 * 1024**2))
    response = await _post(ctx, media("huge_palette.png").read_bytes())  # needs ~90 MB more
    assert response.status_code == 422 and response.json()["code"] == "undecodable_media"
    ctx.state.prober = Prober(ProbeLimits(timeout_s=0.05))
    response = await _post(ctx, media("4k.mp4").read_bytes())
    assert response.status_code == 422 and response.json()["code"] == "probe_timeout"


async def test_probing_leaves_the_event_loop_free(ctx: Ctx, media: MediaMaker) -> None:
    data = media("huge_palette.png").read_bytes()  # ~1-3 s of decoding in the child
    finished: dict[str, float] = {}

    async def upload() -> None:
        assert (await _post(ctx, data)).status_code == 201
        finished["upload"] = time.monotonic()

    async def health() -> None:
        await asyncio.sleep(0.2)  # the probe is running by now
        assert (await ctx.client.get("/healthz")).status_code == 200
        finished["health"] = time.monotonic()

    await asyncio.gather(upload(), health())
    assert finished["health"] < finished["upload"]


async def test_the_manifest_carries_dimensions_and_duration(ctx: Ctx, media: MediaMaker) -> None:
    device_id, token = await ctx.pair()
    sha = await ctx.upload(media("vp9.webm").read_bytes(), name="clip.webm")
    playlist = {"id": "p", "items": [{"id": "v", "type": "video", "asset": sha}]}
    layout = {"id": "l", "zones": [{"id": "main", "w": 1920, "h": 1080, "playlist": "p"}]}
    for kind, body in (("playlists", playlist), ("layouts", layout)):
        r = await ctx.client.put(f"/api/v1/admin/{kind}/{body['id']}", json=body, headers=ctx.admin)
        assert r.status_code in (200, 201), r.text
    r = await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content",
        json={"default_layout": "l"},
        headers=ctx.admin,
    )
    assert r.status_code == 200, r.text
    manifest = await ctx.client.get(
        "/api/v1/device/manifest", headers={"Authorization": f"Bearer {token}"}
    )
    (asset,) = manifest.json()["assets"]
    assert asset["width"] == 320 and asset["height"] == 180 and asset["duration_ms"] == 520
    assert asset["mime"] == "video/webm"


async def test_a_database_from_before_probing_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE media (sha256 VARCHAR(64) PRIMARY KEY, size INTEGER NOT NULL, "
            "mime VARCHAR(64) NOT NULL, name VARCHAR(255), created_at FLOAT NOT NULL)"
        )
        old.execute("INSERT INTO media VALUES (?, 1, 'image/png', 'a.png', 0)", ("a" * 64,))
    engine = await open_database(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            (row,) = (await conn.execute(select(media))).all()
        assert row.sha256 == "a" * 64 and row.probe is None
    finally:
        await engine.dispose()
