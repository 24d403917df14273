from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest
from sqlalchemy import select

from protocol import HeartbeatResponse, Manifest
from server import sweep_once
from server._db import devices
from tests.server.conftest import PNG, Ctx, device_headers

METRICS = {
    "cpu_percent": 3.0,
    "memory_percent": 20.0,
    "memory_used_bytes": 1000,
    "disk_free_bytes": 10,
    "disk_total_bytes": 100,
    "uptime_s": 5.0,
    "player_version": "0.1.0",
    "state": "playing",
}


async def _heartbeat(ctx: Ctx, token: str) -> int:
    r = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(token)
    )
    return r.status_code


async def test_manifest_etag_and_304_and_version_bumps_on_change(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    headers = device_headers(token)
    first = await ctx.client.get("/api/v1/device/manifest", headers=headers)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    not_modified = await ctx.client.get(
        "/api/v1/device/manifest", headers={**headers, "If-None-Match": etag}
    )
    assert not_modified.status_code == 304
    sha = await ctx.publish_image(device_id)
    second = await ctx.client.get(
        "/api/v1/device/manifest", headers={**headers, "If-None-Match": etag}
    )
    assert second.status_code == 200
    manifest = Manifest.model_validate(second.json())
    assert manifest.version > Manifest.model_validate(first.json()).version
    assert [a.sha256 for a in manifest.assets] == [sha]
    assert manifest.default_layout == "l1"
    # An unrelated change (another device's content) leaves this manifest alone.
    other_id, _ = await ctx.pair("hw-other")
    await ctx.publish_image(other_id, PNG + b"\0", suffix="2")
    third = await ctx.client.get("/api/v1/device/manifest", headers=headers)
    assert third.headers["etag"] == second.headers["etag"]


async def test_token_in_query_string_is_rejected(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    for key in ("token", "access_token", "Token"):
        r = await ctx.client.get("/api/v1/device/manifest", params={key: token})
        assert r.status_code == 400
        assert r.json()["code"] == "token_in_query"
    # Even alongside a valid header: a URL holding the secret must fail loudly.
    both = await ctx.client.get(
        "/api/v1/device/manifest", params={"token": token}, headers=device_headers(token)
    )
    assert both.status_code == 400


async def test_unknown_token_and_missing_token_are_401(ctx: Ctx) -> None:
    missing = await ctx.client.get("/api/v1/device/manifest")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await ctx.client.get("/api/v1/device/manifest", headers=device_headers("z" * 43))
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_token"


async def test_revoked_device_gets_401_on_every_call(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    r = await ctx.client.delete(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)
    assert r.status_code == 204
    for method, url in (
        ("GET", "/api/v1/device/manifest"),
        ("POST", "/api/v1/device/heartbeat"),
        ("GET", "/api/v1/device/events"),
        ("POST", "/api/v1/device/token/rotate"),
    ):
        response = await ctx.client.request(method, url, headers=device_headers(token))
        assert response.status_code == 401, url


async def test_token_rotation_keeps_old_token_until_new_one_is_used(ctx: Ctx) -> None:
    _, old = await ctx.pair()
    rotated = await ctx.client.post("/api/v1/device/token/rotate", headers=device_headers(old))
    new = rotated.json()["device_token"]
    assert new != old
    # The response could have been lost: the old token still works until the new one is used.
    assert (
        await ctx.client.get("/api/v1/device/manifest", headers=device_headers(old))
    ).status_code == 200
    assert (
        await ctx.client.get("/api/v1/device/manifest", headers=device_headers(new))
    ).status_code == 200
    assert (
        await ctx.client.get("/api/v1/device/manifest", headers=device_headers(old))
    ).status_code == 401


async def test_heartbeat_response_and_presence(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    r = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(token)
    )
    body = HeartbeatResponse.model_validate(r.json())
    assert body.heartbeat_interval_s == 30
    assert body.server_time == dt.datetime.fromtimestamp(ctx.clock.now, dt.UTC)
    manifest = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert body.manifest_etag == manifest.headers["etag"]
    listed = (await ctx.client.get(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)).json()
    assert listed["status"] == "online"
    assert listed["metrics"]["state"] == "playing"


async def test_heartbeat_storm_gets_429(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    statuses = [await _heartbeat(ctx, token) for _ in range(6)]
    assert statuses[:2] == [200, 200]
    assert set(statuses[2:]) == {429}
    r = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(token)
    )
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["code"] == "heartbeat_too_frequent"
    ctx.clock.advance(15.1)
    assert await _heartbeat(ctx, token) == 200


async def test_heartbeats_do_not_write_the_database_each_time(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    for _ in range(20):
        assert await _heartbeat(ctx, token) == 200
        ctx.clock.advance(30)
    await sweep_once(ctx.state)  # flushes the queued presence rows
    # One row for the offline→online transition; last_seen at most every 5 minutes.
    assert 1 <= ctx.state.counters.values["presence_writes"] <= 1 + (20 * 30) // 300
    async with ctx.state.engine.connect() as conn:
        row = (await conn.execute(select(devices).where(devices.c.id == device_id))).one()
    assert row.status == "online"


async def test_silent_device_is_marked_offline_by_the_sweeper(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    assert await _heartbeat(ctx, token) == 200
    ctx.clock.advance(89)
    await sweep_once(ctx.state)
    assert await ctx.state.presence.online_count() == 1
    ctx.clock.advance(2)
    await sweep_once(ctx.state)
    assert await ctx.state.presence.online_count() == 0
    async with ctx.state.engine.connect() as conn:
        row = (await conn.execute(select(devices).where(devices.c.id == device_id))).one()
    assert row.status == "offline"
    listed = (await ctx.client.get(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)).json()
    assert listed["status"] == "offline"


async def test_heartbeat_body_is_validated_and_bounded(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    bad = await ctx.client.post(
        "/api/v1/device/heartbeat",
        json={"metrics": {"cpu_percent": -1}},
        headers=device_headers(token),
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] and all(e["loc"][0] == "body" for e in bad.json()["errors"])
    ctx.clock.advance(60)
    huge = await ctx.client.post(
        "/api/v1/device/heartbeat",
        content=b"{" + b" " * 70_000 + b"}",
        headers=device_headers(token),
    )
    assert huge.status_code == 413


async def test_asset_ranges_and_not_in_manifest(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    sha = await ctx.publish_image(device_id)
    headers = device_headers(token)
    url = f"/api/v1/assets/{sha}"
    full = await ctx.client.get(url, headers=headers)
    assert full.status_code == 200 and full.content == PNG
    assert full.headers["etag"] == f'"{sha}"'
    assert full.headers["accept-ranges"] == "bytes"
    assert "immutable" in full.headers["cache-control"]
    part = await ctx.client.get(url, headers={**headers, "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == PNG[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(PNG)}"
    tail = await ctx.client.get(url, headers={**headers, "Range": "bytes=-5"})
    assert tail.content == PNG[-5:]
    bad = await ctx.client.get(url, headers={**headers, "Range": f"bytes={len(PNG)}-"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == f"bytes */{len(PNG)}"
    stale = await ctx.client.get(
        url, headers={**headers, "Range": "bytes=0-1", "If-Range": '"other"'}
    )
    assert stale.status_code == 200 and stale.content == PNG
    other = await ctx.upload(PNG + b"extra")
    forbidden = await ctx.client.get(f"/api/v1/assets/{other}", headers=headers)
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "asset_not_assigned"


async def test_asset_path_traversal_is_impossible(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    for name in ("..%2F..%2Fserver.sqlite3", "../admin_token", "A" * 64):
        r = await ctx.client.get(f"/api/v1/assets/{name}", headers=device_headers(token))
        assert r.status_code in (404, 422)
        assert r.headers["content-type"] == "application/problem+json"


async def test_commands_flow_through_heartbeat_and_results(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    sent = await ctx.client.post(
        f"/api/v1/admin/devices/{device_id}/commands",
        json={"name": "identify", "args": {"s": 5}},
        headers=ctx.admin,
    )
    assert sent.status_code == 201
    command = sent.json()
    hb = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(token)
    )
    assert [c["id"] for c in hb.json()["commands"]] == [command["id"]]
    done = await ctx.client.post(
        f"/api/v1/device/commands/{command['id']}/result",
        json={"ok": True},
        headers=device_headers(token),
    )
    assert done.status_code == 204
    ctx.clock.advance(30)
    hb = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(token)
    )
    assert hb.json()["commands"] == []
    listed = (
        await ctx.client.get(f"/api/v1/admin/devices/{device_id}/commands", headers=ctx.admin)
    ).json()
    assert listed[0]["result"]["ok"] is True


async def test_commands_expire_after_their_ttl(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    await ctx.client.post(
        f"/api/v1/admin/devices/{device_id}/commands", json={"name": "reload"}, headers=ctx.admin
    )
    ctx.clock.advance(3601)
    hb = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(token)
    )
    assert hb.json()["commands"] == []


async def test_impressions_are_deduplicated_by_id(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    impression = {
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "layout": "l1",
        "zone": "main",
        "item": "i1",
        "event": "start",
        "at": "2026-11-21T10:00:00Z",
    }
    batch = {
        "impressions": [impression, impression | {"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}]
    }
    first = await ctx.client.post(
        "/api/v1/device/impressions", json=batch, headers=device_headers(token)
    )
    assert first.json() == {"accepted": 2, "duplicates": 0}
    again = await ctx.client.post(
        "/api/v1/device/impressions", json=batch, headers=device_headers(token)
    )
    assert again.json() == {"accepted": 0, "duplicates": 2}


async def test_screenshot_without_png_magic_is_rejected(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    bad = await ctx.client.post(
        "/api/v1/device/screenshots", content=b"GIF89a" + b"\0" * 64, headers=device_headers(token)
    )
    assert bad.status_code == 415 and bad.json()["code"] == "not_png"
    ok = await ctx.client.post(
        "/api/v1/device/screenshots", content=PNG, headers=device_headers(token)
    )
    assert ok.status_code == 201 and ok.json()["size"] == len(PNG)
    newer = PNG + b"trailing"
    await ctx.client.post(
        "/api/v1/device/screenshots", content=newer, headers=device_headers(token)
    )
    latest = await ctx.client.get(
        f"/api/v1/admin/devices/{device_id}/screenshot", headers=ctx.admin
    )
    assert latest.content == newer
    assert list((ctx.data_dir / "screenshots").iterdir()) == [
        ctx.data_dir / "screenshots" / f"{device_id}.png"
    ]


async def test_tokens_never_reach_the_logs(ctx: Ctx, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, token = await ctx.pair()
    headers = device_headers(token)
    await ctx.client.post("/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=headers)
    await ctx.client.get("/api/v1/device/manifest", params={"access_token": token})
    rotated = await ctx.client.post("/api/v1/device/token/rotate", headers=headers)
    new = rotated.json()["device_token"]
    await ctx.client.get("/api/v1/device/manifest", headers=device_headers(new))
    await ctx.client.get("/api/v1/admin/devices", headers={"Authorization": "Bearer wrong-admin"})
    # httpx's own request lines belong to the test's client, not to the server.
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    assert server_side, "the flow logs something, so the check below means something"
    for secret in (token, new, ctx.admin["Authorization"].split()[1]):
        assert not any(secret in line for line in server_side)


async def test_concurrent_retried_impression_batches_count_each_once(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    ids = ["0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"]
    batch = {
        "impressions": [
            {
                "id": i,
                "layout": "l",
                "zone": "z",
                "item": "i",
                "event": "start",
                "at": "2026-11-21T10:00:00Z",
            }
            for i in ids
        ]
    }
    responses = await asyncio.gather(
        *(
            ctx.client.post("/api/v1/device/impressions", json=batch, headers=device_headers(token))
            for _ in range(5)
        )
    )
    assert {r.status_code for r in responses} == {200}
    assert sum(r.json()["accepted"] for r in responses) == 2
    assert sum(r.json()["duplicates"] for r in responses) == 8
