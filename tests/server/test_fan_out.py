"""A content change fanned out to many devices (on both setups: SQLite with in-process state,
PostgreSQL with Redis): each device's event names the ETag its manifest request then gets, and
a replica that dies between its commit and its announcement leaves no stale manifest behind."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from protocol import HeartbeatResponse, Manifest
from server._hub import Event, Subscriber
from tests.server.conftest import PNG, Ctx, device_headers
from tests.server.test_device import METRICS

WAIT_S = 5.0
MEMBERS = 12


async def _layouts(ctx: Ctx, *names: str) -> None:
    sha = await ctx.upload(PNG)
    playlist = {"id": "p", "items": [{"id": "i", "type": "image", "asset": sha}]}
    assert (
        await ctx.client.put("/api/v1/admin/playlists/p", json=playlist, headers=ctx.admin)
    ).status_code in (200, 201)
    for name in names:
        layout = {"id": name, "zones": [{"id": "z", "w": 10, "h": 10, "playlist": "p"}]}
        r = await ctx.client.put(f"/api/v1/admin/layouts/{name}", json=layout, headers=ctx.admin)
        assert r.status_code in (200, 201), r.text


async def _manifest(ctx: Ctx, token: str) -> tuple[str, bytes]:
    r = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert r.status_code == 200, r.text
    return r.headers["etag"], r.content


async def _next(subscriber: Subscriber) -> Event:
    event = await asyncio.wait_for(subscriber.next(), WAIT_S)
    assert event is not None, "the stream closed"
    return event


def _canonical(body: bytes) -> bytes:
    return json.dumps(
        json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


async def test_a_group_change_tells_every_member_the_etag_its_manifest_has(ctx: Ctx) -> None:
    await _layouts(ctx, "a", "b")
    await ctx.client.put("/api/v1/admin/groups/g", json={"name": "G"}, headers=ctx.admin)
    members = []
    for n in range(MEMBERS):
        if n % 5 == 4:
            ctx.clock.advance(61)  # pairing requests are limited per address and minute
        members.append(await ctx.pair(f"hw-{n}"))
    for n, (device_id, _) in enumerate(members):
        r = await ctx.client.patch(
            f"/api/v1/admin/devices/{device_id}", json={"group": "g"}, headers=ctx.admin
        )
        assert r.status_code == 200, r.text
        if n % 3 == 0:  # members at different versions: one content, several bodies
            for layout in ("a", "b"):
                r = await ctx.client.put(
                    f"/api/v1/admin/devices/{device_id}/content",
                    json={"default_layout": layout},
                    headers=ctx.admin,
                )
                assert r.status_code == 200, r.text
            r = await ctx.client.delete(
                f"/api/v1/admin/devices/{device_id}/content", headers=ctx.admin
            )
            assert r.status_code in (200, 204), r.text
    before = {d: Manifest.model_validate_json((await _manifest(ctx, t))[1]) for d, t in members}
    streams = {d: (await ctx.state.hub.subscribe(d, None)).subscriber for d, _ in members}
    r = await ctx.client.put(
        "/api/v1/admin/groups/g/content", json={"default_layout": "a"}, headers=ctx.admin
    )
    assert r.status_code == 200, r.text
    versions = set()
    for device_id, token in members:
        event = await _next(streams[device_id])
        etag, body = await _manifest(ctx, token)
        assert (event.name, event.data) == ("manifest", {"etag": etag})
        # The body is the canonical JSON of the manifest, at this device's next version,
        # and the ETag is over those bytes.
        assert body == _canonical(body)
        assert etag == '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
        manifest = Manifest.model_validate_json(body)
        assert manifest.version == before[device_id].version + 1
        assert manifest.default_layout == "a"
        versions.add(manifest.version)
        beat = await ctx.client.post(
            "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(token)
        )
        assert HeartbeatResponse.model_validate(beat.json()).manifest_etag == etag
    assert len(versions) == 2


async def test_a_change_whose_announcement_died_with_its_replica_is_still_served(
    ctx: Ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replica commits, then dies before storing the new manifests and telling the
    devices: the next manifest request or heartbeat, on any replica, has the change."""
    await _layouts(ctx, "a", "b")
    device_id, token = await ctx.pair()
    r = await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content",
        json={"default_layout": "a"},
        headers=ctx.admin,
    )
    assert r.status_code == 200, r.text
    old_etag, old_body = await _manifest(ctx, token)  # stored: heartbeats are served from it

    async def died(*_: object) -> None:
        return None

    monkeypatch.setattr("server._admin_devices.announce", died)
    r = await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content",
        json={"default_layout": "b"},
        headers=ctx.admin,
    )
    assert r.status_code == 200, r.text
    etag, body = await _manifest(ctx, token)
    assert etag != old_etag
    manifest = Manifest.model_validate_json(body)
    assert manifest.default_layout == "b"
    assert manifest.version == Manifest.model_validate_json(old_body).version + 1
    beat = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(token)
    )
    assert HeartbeatResponse.model_validate(beat.json()).manifest_etag == etag
