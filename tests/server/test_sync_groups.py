"""Sync groups on the server: the group's epoch in every member's manifest, the checks that
keep a group's cycle computable, and the device's time exchange."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import update

from protocol import Manifest, TimeResponse
from server._db import media
from tests.server.conftest import PNG, Ctx, device_headers

CLIP = Path(__file__).parents[1] / "data" / "video" / "h264_160x90_0.4s.mp4"


async def _put(ctx: Ctx, kind: str, body: Mapping[str, object]) -> None:
    path = f"/api/v1/admin/{kind}/{body['id']}"
    if kind == "groups":
        body = {k: v for k, v in body.items() if k != "id"}
    r = await ctx.client.put(path, json=body, headers=ctx.admin)
    assert r.status_code in (200, 201), r.text


async def _group_with_member(ctx: Ctx) -> tuple[str, str]:
    sha = await ctx.upload(PNG)
    await _put(ctx, "playlists", {"id": "p", "items": [{"id": "i", "type": "image", "asset": sha}]})
    zone = {"id": "z", "w": 100, "h": 100, "playlist": "p"}
    await _put(ctx, "layouts", {"id": "l", "zones": [zone]})
    cropped = {**zone, "crop": {"x": 0.5, "y": 0, "w": 0.5, "h": 1}}
    await _put(ctx, "layouts", {"id": "right", "zones": [cropped]})
    await _put(ctx, "groups", {"id": "wall", "name": "Wall"})
    r = await ctx.client.put(
        "/api/v1/admin/groups/wall/content", json={"default_layout": "l"}, headers=ctx.admin
    )
    assert r.status_code == 200, r.text
    device_id, token = await ctx.pair()
    r = await ctx.client.patch(
        f"/api/v1/admin/devices/{device_id}", json={"group": "wall"}, headers=ctx.admin
    )
    assert r.status_code == 200, r.text
    return device_id, token


async def _manifest(ctx: Ctx, token: str) -> Manifest:
    response = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert response.status_code == 200, response.text
    return Manifest.model_validate_json(response.content)


async def test_a_sync_group_puts_its_epoch_in_every_members_manifest(ctx: Ctx) -> None:
    device_id, token = await _group_with_member(ctx)
    before = await _manifest(ctx, token)
    assert before.sync is None
    ctx.clock.now = 1_800_000_123.75
    r = await ctx.client.put("/api/v1/admin/groups/wall/sync", json={}, headers=ctx.admin)
    assert r.status_code == 200, r.text
    epoch = dt.datetime.fromtimestamp(1_800_000_123, dt.UTC)  # now, to the second
    assert r.json()["sync"] == {"epoch": epoch.isoformat().replace("+00:00", "Z")}
    synced = await _manifest(ctx, token)
    assert synced.sync is not None and synced.sync.group == "wall"
    assert synced.sync.epoch == epoch
    assert synced.version == before.version + 1

    # A screen of a wall plays its own layout (its tile of the clip) and stays in step.
    r = await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content",
        json={"default_layout": "right"},
        headers=ctx.admin,
    )
    assert r.status_code == 200, r.text
    tile = await _manifest(ctx, token)
    assert tile.sync == synced.sync
    crop = tile.layouts[0].zones[0].crop
    assert crop is not None and (crop.x, crop.w) == (0.5, 0.5)

    chosen = "2026-11-21T08:00:00+01:00"
    r = await ctx.client.put(
        "/api/v1/admin/groups/wall/sync", json={"epoch": chosen}, headers=ctx.admin
    )
    assert r.status_code == 200, r.text
    assert (await _manifest(ctx, token)).sync.epoch == dt.datetime.fromisoformat(chosen)  # type: ignore[union-attr]
    listed = (await ctx.client.get("/api/v1/admin/groups", headers=ctx.admin)).json()
    assert [g["sync"] for g in listed] == [{"epoch": "2026-11-21T07:00:00Z"}]

    r = await ctx.client.delete("/api/v1/admin/groups/wall/sync", headers=ctx.admin)
    assert r.status_code == 200 and r.json()["sync"] is None
    assert (await _manifest(ctx, token)).sync is None


async def test_deleting_a_sync_group_ends_its_sync(ctx: Ctx) -> None:
    _device_id, token = await _group_with_member(ctx)
    await ctx.client.put("/api/v1/admin/groups/wall/sync", json={}, headers=ctx.admin)
    r = await ctx.client.delete("/api/v1/admin/groups/wall", headers=ctx.admin)
    assert r.status_code == 204
    assert (await _manifest(ctx, token)).sync is None
    await _put(ctx, "groups", {"id": "wall", "name": "Wall again"})
    listed = (await ctx.client.get("/api/v1/admin/groups", headers=ctx.admin)).json()
    assert listed[0]["sync"] is None  # the old epoch went with the group


async def test_a_sync_group_needs_every_items_length(ctx: Ctx) -> None:
    _device_id, token = await _group_with_member(ctx)
    clip = await ctx.upload(CLIP.read_bytes(), name="clip.mp4")
    open_ended = {"id": "p", "items": [{"id": "reel", "type": "video", "asset": clip}]}
    await _put(ctx, "playlists", open_ended)
    # The server probed the clip when it was stored: its length is known, so it may play to
    # its end in a sync group (every screen reads it from the manifest).
    r = await ctx.client.put("/api/v1/admin/groups/wall/sync", json={}, headers=ctx.admin)
    assert r.status_code == 200, r.text
    synced = await _manifest(ctx, token)
    assert synced.sync is not None and synced.assets[0].duration_ms == 400
    r = await ctx.client.delete("/api/v1/admin/groups/wall/sync", headers=ctx.admin)
    assert r.status_code == 200

    # A file stored before the server probed files has no known length.
    async with ctx.state.writer.begin() as conn:
        await conn.execute(update(media).values(probe=None))
    r = await ctx.client.put("/api/v1/admin/groups/wall/sync", json={}, headers=ctx.admin)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "sync_needs_durations"
    assert "p/reel" in r.json()["detail"]
    assert (await _manifest(ctx, token)).sync is None  # rolled back
    listed = (await ctx.client.get("/api/v1/admin/groups", headers=ctx.admin)).json()
    assert listed[0]["sync"] is None

    timed = {
        "id": "p",
        "items": [{"id": "reel", "type": "video", "asset": clip, "duration_ms": 400}],
    }
    await _put(ctx, "playlists", timed)
    r = await ctx.client.put("/api/v1/admin/groups/wall/sync", json={}, headers=ctx.admin)
    assert r.status_code == 200, r.text
    # Once in sync, content that would break the cycle is refused and nothing changes.
    r = await ctx.client.put("/api/v1/admin/playlists/p", json=open_ended, headers=ctx.admin)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "sync_needs_durations"
    items = (await _manifest(ctx, token)).playlists[0].items
    assert items[0].duration_ms == 400


async def test_sync_requests_are_checked(ctx: Ctx) -> None:
    r = await ctx.client.put("/api/v1/admin/groups/nope/sync", json={}, headers=ctx.admin)
    assert r.status_code == 404 and r.json()["code"] == "group_not_found"
    await _put(ctx, "groups", {"id": "wall", "name": "Wall"})
    r = await ctx.client.put(
        "/api/v1/admin/groups/wall/sync", json={"epoch": "2026-11-21T08:00:00"}, headers=ctx.admin
    )
    assert r.status_code == 422 and "UTC offset" in r.text
    r = await ctx.client.put(
        "/api/v1/admin/groups/wall/sync", json={"epoch": None, "x": 1}, headers=ctx.admin
    )
    assert r.status_code == 422
    r = await ctx.client.put("/api/v1/admin/groups/wall/sync", json={})
    assert r.status_code == 401


async def test_the_time_exchange_reads_the_servers_clock(ctx: Ctx) -> None:
    _device_id, token = await ctx.pair()
    ctx.clock.now = 1_800_000_000.123456
    response = await ctx.client.get("/api/v1/device/time", headers=device_headers(token))
    assert response.status_code == 200, response.text
    answer = TimeResponse.model_validate_json(response.content)
    expected = dt.datetime.fromtimestamp(1_800_000_000.123456, dt.UTC)
    assert answer.received_at == answer.sent_at == expected
    assert (await ctx.client.get("/api/v1/device/time")).status_code == 401


async def test_time_exchanges_are_rate_limited_per_device(ctx: Ctx) -> None:
    _device_id, token = await ctx.pair()
    _other_id, other = await ctx.pair("hw-2", "Other")
    statuses = [
        (await ctx.client.get("/api/v1/device/time", headers=device_headers(token))).status_code
        for _ in range(31)
    ]
    assert statuses == [200] * 30 + [429]
    limited = await ctx.client.get("/api/v1/device/time", headers=device_headers(token))
    assert limited.json()["code"] == "time_exchange_too_frequent"
    assert int(limited.headers["retry-after"]) >= 1
    assert (
        await ctx.client.get("/api/v1/device/time", headers=device_headers(other))
    ).status_code == 200
    ctx.clock.advance(10.5)
    assert (
        await ctx.client.get("/api/v1/device/time", headers=device_headers(token))
    ).status_code == 200
