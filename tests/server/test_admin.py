from __future__ import annotations

import asyncio

from protocol import Manifest
from tests.server.conftest import PNG, Ctx, device_headers


async def _content(ctx: Ctx) -> str:
    sha = await ctx.upload(PNG)
    for kind, body in (
        ("playlists", {"id": "p", "items": [{"id": "i", "type": "image", "asset": sha}]}),
        ("layouts", {"id": "l", "zones": [{"id": "z", "w": 100, "h": 100, "playlist": "p"}]}),
        ("layouts", {"id": "l2", "zones": [{"id": "z", "w": 100, "h": 100, "playlist": "p"}]}),
    ):
        r = await ctx.client.put(f"/api/v1/admin/{kind}/{body['id']}", json=body, headers=ctx.admin)
        assert r.status_code == 201, r.text
    return sha


def _entry(entry_id: str, **extra: object) -> dict[str, object]:
    return {"id": entry_id, "layout": "l", "priority": 5, "from": "08:00", "to": "12:00"} | extra


async def test_unknown_route_and_method_are_problems(ctx: Ctx) -> None:
    missing = await ctx.client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"
    wrong = await ctx.client.patch("/api/v1/device/manifest")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


async def test_invalid_bodies_list_each_field(ctx: Ctx) -> None:
    r = await ctx.client.put(
        "/api/v1/admin/layouts/l",
        json={"id": "l", "width": -1, "zones": []},
        headers=ctx.admin,
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_failed"
    locs = [tuple(e["loc"]) for e in body["errors"]]
    assert ("body", "width") in locs and ("body", "zones") in locs


async def test_references_must_exist(ctx: Ctx) -> None:
    r = await ctx.client.put(
        "/api/v1/admin/playlists/p",
        json={"id": "p", "items": [{"id": "i", "type": "image", "asset": "a" * 64}]},
        headers=ctx.admin,
    )
    assert r.status_code == 409 and r.json()["code"] == "unknown_asset"
    r = await ctx.client.put(
        "/api/v1/admin/layouts/l",
        json={"id": "l", "zones": [{"id": "z", "w": 1, "h": 1, "playlist": "ghost"}]},
        headers=ctx.admin,
    )
    assert r.status_code == 409 and r.json()["code"] == "unknown_playlist"
    mismatch = await ctx.client.put(
        "/api/v1/admin/layouts/other",
        json={"id": "l", "zones": [{"id": "z", "w": 1, "h": 1, "playlist": "ghost"}]},
        headers=ctx.admin,
    )
    assert mismatch.status_code == 422 and mismatch.json()["code"] == "id_mismatch"


async def test_schedule_conflict_is_409(ctx: Ctx) -> None:
    await _content(ctx)
    device_id, _ = await ctx.pair()
    for entry in (
        _entry("a"),
        _entry("b", **{"from": "11:00", "to": "13:00"}),
        _entry("c", priority=6),
    ):
        r = await ctx.client.put(
            f"/api/v1/admin/schedules/{entry['id']}", json=entry, headers=ctx.admin
        )
        assert r.status_code == 201, r.text
    clash = await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content",
        json={"schedule": ["a", "b"]},
        headers=ctx.admin,
    )
    assert clash.status_code == 409 and clash.json()["code"] == "schedule_conflict"
    ok = await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content",
        json={"schedule": ["a", "c"], "default_layout": "l2"},
        headers=ctx.admin,
    )
    assert ok.status_code == 200
    # Editing an assigned entry into a clash is refused too.
    edit = await ctx.client.put("/api/v1/admin/schedules/c", json=_entry("c"), headers=ctx.admin)
    assert edit.status_code == 409


async def test_concurrent_schedule_conflict_only_one_wins(ctx: Ctx) -> None:
    await _content(ctx)
    device_id, _ = await ctx.pair()
    await ctx.client.put(
        "/api/v1/admin/schedules/a", json=_entry("a", priority=1), headers=ctx.admin
    )
    await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content", json={"schedule": ["a"]}, headers=ctx.admin
    )
    # Two edits that are each fine alone but clash together, sent at once.
    b_entry = _entry("b", priority=7)
    await ctx.client.put("/api/v1/admin/schedules/b", json=b_entry, headers=ctx.admin)
    results = await asyncio.gather(
        ctx.client.put(
            "/api/v1/admin/schedules/a", json=_entry("a", priority=7), headers=ctx.admin
        ),
        ctx.client.put(
            f"/api/v1/admin/devices/{device_id}/content",
            json={"schedule": ["a", "b"]},
            headers=ctx.admin,
        ),
    )
    assert sorted(r.status_code for r in results) == [200, 409]


async def test_midnight_crossing_windows_conflict_on_the_next_day(ctx: Ctx) -> None:
    await _content(ctx)
    device_id, _ = await ctx.pair()
    late = _entry("late", days=["sun"], **{"from": "22:00", "to": "02:00"})
    early = _entry("early", days=["mon"], **{"from": "01:00", "to": "03:00"})
    for entry in (late, early):
        await ctx.client.put(
            f"/api/v1/admin/schedules/{entry['id']}", json=entry, headers=ctx.admin
        )
    r = await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content",
        json={"schedule": ["late", "early"]},
        headers=ctx.admin,
    )
    assert r.status_code == 409


async def test_group_content_reaches_members_and_device_set_wins(ctx: Ctx) -> None:
    await _content(ctx)
    device_id, token = await ctx.pair()
    await ctx.client.put("/api/v1/admin/groups/lobby", json={"name": "Lobby"}, headers=ctx.admin)
    r = await ctx.client.put(
        "/api/v1/admin/groups/lobby/content", json={"default_layout": "l"}, headers=ctx.admin
    )
    assert r.status_code == 200
    await ctx.client.patch(
        f"/api/v1/admin/devices/{device_id}", json={"group": "lobby"}, headers=ctx.admin
    )
    manifest = Manifest.model_validate(
        (await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))).json()
    )
    assert manifest.default_layout == "l"
    await ctx.client.put(
        f"/api/v1/admin/devices/{device_id}/content",
        json={"default_layout": "l2"},
        headers=ctx.admin,
    )
    manifest = Manifest.model_validate(
        (await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))).json()
    )
    assert manifest.default_layout == "l2"
    assert [layout.id for layout in manifest.layouts] == ["l2"]


async def test_in_use_content_cannot_be_deleted(ctx: Ctx) -> None:
    await _content(ctx)
    r = await ctx.client.delete("/api/v1/admin/playlists/p", headers=ctx.admin)
    assert r.status_code == 409 and r.json()["code"] == "playlist_in_use"
    await ctx.client.delete("/api/v1/admin/layouts/l", headers=ctx.admin)
    await ctx.client.delete("/api/v1/admin/layouts/l2", headers=ctx.admin)
    assert (
        await ctx.client.delete("/api/v1/admin/playlists/p", headers=ctx.admin)
    ).status_code == 204
    assert (await ctx.client.get("/api/v1/admin/playlists/p", headers=ctx.admin)).status_code == 404


async def test_rename_device(ctx: Ctx) -> None:
    device_id, _ = await ctx.pair()
    r = await ctx.client.patch(
        f"/api/v1/admin/devices/{device_id}", json={"name": "Window"}, headers=ctx.admin
    )
    assert r.json()["name"] == "Window"
    bad = await ctx.client.patch(
        f"/api/v1/admin/devices/{device_id}", json={"group": "nope"}, headers=ctx.admin
    )
    assert bad.status_code == 409


async def test_metrics_have_no_per_device_series(ctx: Ctx) -> None:
    ids = [(await ctx.pair(f"hw-{i}"))[0] for i in range(3)]
    text = (await ctx.client.get("/metrics")).text
    assert "signage_claims_succeeded_total 3" in text
    assert not any(device_id in text for device_id in ids)
    assert "device_id" not in text


async def test_healthz(ctx: Ctx) -> None:
    assert (await ctx.client.get("/healthz")).json() == {"status": "ok"}


async def test_admin_api_needs_the_admin_token(ctx: Ctx) -> None:
    _, device_token = await ctx.pair()
    for headers in ({}, device_headers(device_token)):
        r = await ctx.client.get("/api/v1/admin/devices", headers=headers)
        assert r.status_code == 401
