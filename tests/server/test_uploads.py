from __future__ import annotations

import asyncio
import hashlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import sweep_once
from tests.media import padded_mp4
from tests.server.conftest import Ctx

MP4_HEAD = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8
CLIP = padded_mp4(0)  # a real clip: the server decodes what it stores


def _video(size: int) -> bytes:
    """Bytes that start like an MP4, for uploads that never complete."""
    return (MP4_HEAD + os.urandom(size))[:size]


async def _session(ctx: Ctx, data: bytes, **extra: object) -> str:
    r = await ctx.client.post(
        "/api/v1/admin/uploads", json={"size": len(data), **extra}, headers=ctx.admin
    )
    assert r.status_code == 201, r.text
    upload_id: str = r.json()["upload_id"]
    return upload_id


async def _put(ctx: Ctx, upload_id: str, data: bytes, start: int, end: int) -> int:
    r = await ctx.client.put(
        f"/api/v1/admin/uploads/{upload_id}",
        content=data[start:end],
        headers={**ctx.admin, "Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
    )
    return r.status_code


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_chunks_in_any_order_assemble_the_same_file(ctx: Ctx, data: st.DataObject) -> None:
    payload = padded_mp4(data.draw(st.integers(0, 4096)))
    size = len(payload)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, size - 1), max_size=8))))
    spans = list(zip([0, *cuts], [*cuts, size], strict=True))
    order = data.draw(st.permutations(spans))
    # Some chunks are sent twice (a retry after a lost response): harmless.
    repeats = data.draw(st.lists(st.sampled_from(spans), max_size=3))
    upload_id = await _session(ctx, payload)
    for start, end in [*order, *repeats]:
        assert await _put(ctx, upload_id, payload, start, end) == 200
    done = await ctx.client.post(f"/api/v1/admin/uploads/{upload_id}/complete", headers=ctx.admin)
    assert done.status_code == 200, done.text
    assert done.json()["sha256"] == hashlib.sha256(payload).hexdigest()
    assert done.json()["mime"] == "video/mp4"


async def test_resume_reports_received_ranges(ctx: Ctx) -> None:
    payload = _video(1000)
    upload_id = await _session(ctx, payload)
    await _put(ctx, upload_id, payload, 0, 300)
    await _put(ctx, upload_id, payload, 600, 1000)
    status = (await ctx.client.get(f"/api/v1/admin/uploads/{upload_id}", headers=ctx.admin)).json()
    assert status["received"] == [[0, 300], [600, 1000]]
    assert status["received_bytes"] == 700
    early = await ctx.client.post(f"/api/v1/admin/uploads/{upload_id}/complete", headers=ctx.admin)
    assert early.status_code == 409 and early.json()["code"] == "upload_incomplete"


async def test_duplicate_upload_completion_is_idempotent(ctx: Ctx) -> None:
    payload = CLIP
    upload_id = await _session(ctx, payload)
    await _put(ctx, upload_id, payload, 0, len(payload))
    url = f"/api/v1/admin/uploads/{upload_id}/complete"
    results = await asyncio.gather(*(ctx.client.post(url, headers=ctx.admin) for _ in range(3)))
    assert {r.status_code for r in results} == {200}
    assert len({r.json()["sha256"] for r in results}) == 1
    listed = (await ctx.client.get("/api/v1/admin/media", headers=ctx.admin)).json()
    assert len(listed) == 1
    # A second upload of the same bytes is deduplicated into the same object.
    again = await _session(ctx, payload)
    await _put(ctx, again, payload, 0, len(payload))
    await ctx.client.post(f"/api/v1/admin/uploads/{again}/complete", headers=ctx.admin)
    assert len((await ctx.client.get("/api/v1/admin/media", headers=ctx.admin)).json()) == 1
    objects = [p for p in (ctx.data_dir / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 1


async def test_checksum_and_size_are_checked(ctx: Ctx) -> None:
    payload = _video(200)
    upload_id = await _session(ctx, payload, sha256="0" * 64)
    await _put(ctx, upload_id, payload, 0, 200)
    r = await ctx.client.post(f"/api/v1/admin/uploads/{upload_id}/complete", headers=ctx.admin)
    assert r.status_code == 422 and r.json()["code"] == "checksum_mismatch"
    other = await _session(ctx, payload)
    wrong_total = await ctx.client.put(
        f"/api/v1/admin/uploads/{other}",
        content=payload[:10],
        headers={**ctx.admin, "Content-Range": "bytes 0-9/999"},
    )
    assert wrong_total.status_code == 416
    short_body = await ctx.client.put(
        f"/api/v1/admin/uploads/{other}",
        content=payload[:5],
        headers={**ctx.admin, "Content-Range": "bytes 0-9/200"},
    )
    assert short_body.status_code == 400 and short_body.json()["code"] == "range_mismatch"
    too_big = await ctx.client.post(
        "/api/v1/admin/uploads", json={"size": 3 * 1024**3}, headers=ctx.admin
    )
    assert too_big.status_code == 413


async def test_orphaned_upload_sessions_are_removed(ctx: Ctx) -> None:
    payload = _video(100)
    upload_id = await _session(ctx, payload)
    await _put(ctx, upload_id, payload, 0, 50)
    partial = ctx.data_dir / "uploads" / f"{upload_id}.part"
    assert partial.exists()
    ctx.clock.advance(86_401)
    expired = await ctx.client.get(f"/api/v1/admin/uploads/{upload_id}", headers=ctx.admin)
    assert expired.status_code == 410 and expired.json()["code"] == "upload_expired"
    await sweep_once(ctx.state)
    assert not partial.exists()
    gone = await ctx.client.get(f"/api/v1/admin/uploads/{upload_id}", headers=ctx.admin)
    assert gone.status_code == 404


async def test_active_upload_session_survives_the_sweeper(ctx: Ctx) -> None:
    payload = _video(100)
    upload_id = await _session(ctx, payload)
    ctx.clock.advance(80_000)
    await _put(ctx, upload_id, payload, 0, 50)  # activity extends the session
    ctx.clock.advance(80_000)
    await sweep_once(ctx.state)
    assert await _put(ctx, upload_id, payload, 50, 100) == 200


async def test_abort_removes_the_session(ctx: Ctx) -> None:
    payload = _video(100)
    upload_id = await _session(ctx, payload)
    await _put(ctx, upload_id, payload, 0, 50)
    r = await ctx.client.delete(f"/api/v1/admin/uploads/{upload_id}", headers=ctx.admin)
    assert r.status_code == 204
    assert not (ctx.data_dir / "uploads" / f"{upload_id}.part").exists()
    assert await _put(ctx, upload_id, payload, 50, 100) == 404
