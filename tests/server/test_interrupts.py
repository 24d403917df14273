"""Interrupts and power schedules through the admin API, as the devices' manifests carry them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from protocol import Manifest
from tests.server.conftest import Ctx, device_headers


async def manifest_of(ctx: Ctx, token: str) -> dict[str, Any]:
    response = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert response.status_code == 200, response.text
    Manifest.model_validate(response.json())
    body: dict[str, Any] = response.json()
    return body


async def alert_layout(ctx: Ctx) -> None:
    playlist = {"id": "alert", "items": [{"id": "t", "type": "text", "text": "Evacuate"}]}
    layout = {"id": "alert", "zones": [{"id": "z", "w": 1920, "h": 1080, "playlist": "alert"}]}
    for kind, body in (("playlists", playlist), ("layouts", layout)):
        r = await ctx.client.put(f"/api/v1/admin/{kind}/alert", json=body, headers=ctx.admin)
        assert r.status_code in (200, 201), r.text


def at(ctx: Ctx, seconds: float = 0) -> str:
    return dt.datetime.fromtimestamp(ctx.clock.now + seconds, dt.UTC).isoformat()


async def test_an_interrupt_reaches_the_manifest_with_its_layout_and_leaves_when_cleared(
    ctx: Ctx,
) -> None:
    device, token = await ctx.pair()
    await ctx.publish_image(device)
    await alert_layout(ctx)
    before = await manifest_of(ctx, token)
    assert "interrupts" not in before, "unused fields stay out: older players read it"
    sent = await ctx.client.post(
        "/api/v1/admin/interrupts",
        json={"layout": "alert", "device": device, "seconds": 600},
        headers=ctx.admin,
    )
    assert sent.status_code == 201, sent.text
    info = sent.json()
    assert info["status"] == "active" and info["starts_at"] == at(ctx).replace("+00:00", "Z")
    manifest = await manifest_of(ctx, token)
    assert manifest["version"] == before["version"] + 1
    assert [i["id"] for i in manifest["interrupts"]] == [info["id"]]
    assert manifest["interrupts"][0]["ends_at"] == at(ctx, 600).replace("+00:00", "Z")
    assert {layout["id"] for layout in manifest["layouts"]} == {"l1", "alert"}
    assert {p["id"] for p in manifest["playlists"]} == {"p1", "alert"}
    events = [e.name for e in ctx.state.hub._channel(device).buffer]
    assert events[-1] == "manifest", "announced over SSE"
    listed = await ctx.client.get(
        "/api/v1/admin/interrupts", params={"device": device, "live": "true"}, headers=ctx.admin
    )
    assert [i["id"] for i in listed.json()] == [info["id"]]
    cleared = await ctx.client.delete(f"/api/v1/admin/interrupts/{info['id']}", headers=ctx.admin)
    assert cleared.json()["status"] == "cleared"
    after = await manifest_of(ctx, token)
    assert "interrupts" not in after and after["version"] == manifest["version"] + 1
    again = await ctx.client.delete(f"/api/v1/admin/interrupts/{info['id']}", headers=ctx.admin)
    assert again.status_code == 200, "clearing twice is harmless"


async def test_a_group_interrupt_reaches_every_member_until_cleared(ctx: Ctx) -> None:
    first, token1 = await ctx.pair("hw-1")
    second, token2 = await ctx.pair("hw-2")
    await alert_layout(ctx)
    r = await ctx.client.put(
        "/api/v1/admin/groups/lobby", json={"name": "Lobby"}, headers=ctx.admin
    )
    assert r.status_code == 200
    for device in (first, second):
        r = await ctx.client.patch(
            f"/api/v1/admin/devices/{device}", json={"group": "lobby"}, headers=ctx.admin
        )
        assert r.status_code == 200, r.text
    sent = await ctx.client.post(
        "/api/v1/admin/interrupts",
        json={"layout": "alert", "group": "lobby", "priority": 9},
        headers=ctx.admin,
    )
    assert sent.status_code == 201, sent.text
    for token in (token1, token2):
        interrupts = (await manifest_of(ctx, token))["interrupts"]
        assert interrupts[0]["ends_at"] is None and interrupts[0]["priority"] == 9
    in_use = await ctx.client.delete("/api/v1/admin/layouts/alert", headers=ctx.admin)
    assert in_use.status_code == 409 and in_use.json()["code"] == "layout_in_use"


async def test_an_interrupt_past_its_end_leaves_the_manifest_at_the_next_change(ctx: Ctx) -> None:
    device, token = await ctx.pair()
    await ctx.publish_image(device)
    await alert_layout(ctx)
    sent = await ctx.client.post(
        "/api/v1/admin/interrupts",
        json={"layout": "alert", "device": device, "seconds": 60},
        headers=ctx.admin,
    )
    ctx.clock.advance(61)
    got = await ctx.client.get(f"/api/v1/admin/interrupts/{sent.json()['id']}", headers=ctx.admin)
    assert got.json()["status"] == "ended"
    await ctx.publish_image(device, suffix="2")
    assert "interrupts" not in await manifest_of(ctx, token)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"layout": "alert"}, 422, "validation_failed"),
        ({"layout": "alert", "device": "d", "group": "g"}, 422, "validation_failed"),
        ({"layout": "nope", "device": "DEVICE"}, 409, "unknown_layout"),
        ({"layout": "alert", "device": "dev_nobody"}, 404, "device_not_found"),
        ({"layout": "alert", "group": "nobody"}, 404, "group_not_found"),
        (
            {"layout": "alert", "device": "DEVICE", "seconds": 5, "ends_at": "2030-01-01T00:00Z"},
            422,
            "validation_failed",
        ),
        (
            {"layout": "alert", "device": "DEVICE", "ends_at": "2020-01-01T00:00:00Z"},
            422,
            "interrupt_ended",
        ),
    ],
)
async def test_bad_interrupts_are_refused_readably(
    ctx: Ctx, body: dict[str, Any], status: int, code: str
) -> None:
    device, _ = await ctx.pair()
    await alert_layout(ctx)
    body = {k: device if v == "DEVICE" else v for k, v in body.items()}
    response = await ctx.client.post("/api/v1/admin/interrupts", json=body, headers=ctx.admin)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


async def test_power_schedules_per_device_win_over_the_groups(ctx: Ctx) -> None:
    device, token = await ctx.pair()
    await ctx.publish_image(device)
    await ctx.client.put("/api/v1/admin/groups/g", json={"name": "G"}, headers=ctx.admin)
    await ctx.client.patch(
        f"/api/v1/admin/devices/{device}", json={"group": "g"}, headers=ctx.admin
    )
    night = {"on": [{"from": "07:00", "to": "22:00"}]}
    shop = {"on": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "19:00"}]}
    r = await ctx.client.put("/api/v1/admin/groups/g/power", json=night, headers=ctx.admin)
    assert r.status_code == 200, r.text
    assert (await manifest_of(ctx, token))["power"]["on"][0]["from"] == "07:00"
    r = await ctx.client.put(f"/api/v1/admin/devices/{device}/power", json=shop, headers=ctx.admin)
    assert (await manifest_of(ctx, token))["power"]["on"][0]["from"] == "09:00"
    r = await ctx.client.delete(f"/api/v1/admin/devices/{device}/power", headers=ctx.admin)
    assert r.status_code == 204
    assert (await manifest_of(ctx, token))["power"]["on"][0]["from"] == "07:00"
    missing = await ctx.client.get(f"/api/v1/admin/devices/{device}/power", headers=ctx.admin)
    assert missing.json()["code"] == "power_not_set"
    bad = await ctx.client.put(
        "/api/v1/admin/groups/g/power", json={"on": [{"from": "07:00"}]}, headers=ctx.admin
    )
    assert bad.status_code == 422
    assert "needs both 'from' and 'to'" in bad.text


async def test_display_commands_are_refused_to_a_player_that_cannot_switch_its_screen(
    ctx: Ctx,
) -> None:
    device, token = await ctx.pair()
    metrics = {
        "cpu_percent": 1.0,
        "memory_percent": 1.0,
        "memory_used_bytes": 1,
        "disk_free_bytes": 1,
        "disk_total_bytes": 1,
        "uptime_s": 1.0,
        "player_version": "0.0.9",
        "state": "playing",
    }
    beat = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": metrics}, headers=device_headers(token)
    )
    assert beat.status_code == 200, beat.text
    old = await ctx.client.post(
        f"/api/v1/admin/devices/{device}/commands", json={"name": "display_off"}, headers=ctx.admin
    )
    assert (old.status_code, old.json()["code"]) == (409, "unsupported_by_player")
    ctx.clock.advance(60)
    metrics["power"] = {"wanted": "on", "backend": "cec", "display": "on"}
    await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": metrics}, headers=device_headers(token)
    )
    new = await ctx.client.post(
        f"/api/v1/admin/devices/{device}/commands",
        json={"name": "display_off", "args": {"seconds": 3600}},
        headers=ctx.admin,
    )
    assert new.status_code == 201, new.text


async def test_proof_of_play_per_hour(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    rows = []
    for n, (minute, item) in enumerate([(0, "ad"), (30, "ad"), (70, "ad"), (75, "a")]):
        when = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC) + dt.timedelta(minutes=minute)
        rows.append(
            {
                "id": f"00000000-0000-0000-0000-{n:012d}",
                "layout": "l1",
                "zone": "z",
                "item": item,
                "event": "start",
                "at": when.isoformat(),
            }
        )
    r = await ctx.client.post(
        "/api/v1/device/impressions", json={"impressions": rows}, headers=device_headers(token)
    )
    assert r.status_code == 200, r.text
    report = await ctx.client.get(
        "/api/v1/admin/impressions", params={"by": "hour"}, headers=ctx.admin
    )
    got = [(r["hour"], r["item"], r["plays"]) for r in report.json()]
    assert got == [
        ("2026-11-23T10:00Z", "ad", 2),
        ("2026-11-23T11:00Z", "a", 1),
        ("2026-11-23T11:00Z", "ad", 1),
    ]
    daily = await ctx.client.get("/api/v1/admin/impressions", headers=ctx.admin)
    assert "hour" not in daily.json()[0]
