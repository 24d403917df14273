"""Device identity over time: re-pairing the same hardware, token expiry and rotation."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest

from protocol import HeartbeatResponse
from server import _security as security
from server._security import ADMIN_TOKEN_FILE, load_admin_token, new_token
from tests.server.conftest import Ctx, device_headers
from tests.server.test_device import METRICS

DAY = 86_400.0


async def _manifest_status(ctx: Ctx, token: str) -> int:
    r = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    return r.status_code


async def test_re_pairing_known_hardware_keeps_the_device_and_revokes_the_old_token(
    ctx: Ctx,
) -> None:
    device_id, old = await ctx.pair("hw-reflashed", name="Lobby left")
    await ctx.client.put("/api/v1/admin/groups/lobby", json={"name": "Lobby"}, headers=ctx.admin)
    await ctx.client.patch(
        f"/api/v1/admin/devices/{device_id}", json={"group": "lobby"}, headers=ctx.admin
    )
    await ctx.publish_image(device_id)
    before = (await ctx.client.get(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)).json()

    # The SD card is reflashed: same hardware, no credentials, a new code; claimed without a name.
    created = (
        await ctx.client.post(
            "/api/v1/pairings", json={"hardware_id": "hw-reflashed", "player_version": "0.2.0"}
        )
    ).json()
    claim = await ctx.client.post(
        "/api/v1/admin/pairings/claim", json={"code": created["code"]}, headers=ctx.admin
    )
    assert claim.status_code == 201, claim.text
    assert claim.json()["device_id"] == device_id
    assert claim.json()["re_paired"] is True
    assert await _manifest_status(ctx, old) == 401
    paired = (
        await ctx.client.get(
            f"/api/v1/pairings/{created['pairing_id']}",
            headers={"Authorization": f"Bearer {created['poll_token']}"},
        )
    ).json()
    assert paired["device_id"] == device_id
    new = paired["device_token"]
    manifest = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(new))
    assert manifest.status_code == 200 and manifest.json()["default_layout"] == "l1"
    after = (await ctx.client.get(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)).json()
    for key in ("name", "group", "content", "created_at"):
        assert after[key] == before[key], key
    assert after["player_version"] == "0.2.0"
    listed = (await ctx.client.get("/api/v1/admin/devices", headers=ctx.admin)).json()
    assert [d["id"] for d in listed] == [device_id]


async def test_a_new_name_given_when_re_pairing_renames(ctx: Ctx) -> None:
    device_id, _ = await ctx.pair("hw-a", name="Old")
    same_id, _ = await ctx.pair("hw-a", name="New")
    assert same_id == device_id
    info = (await ctx.client.get(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)).json()
    assert info["name"] == "New"


async def test_a_revoked_device_pairs_as_a_new_one(ctx: Ctx) -> None:
    device_id, _ = await ctx.pair("hw-b")
    await ctx.client.delete(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)
    again, token = await ctx.pair("hw-b")
    assert again != device_id
    assert await _manifest_status(ctx, token) == 200


async def test_device_tokens_expire(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    ttl = ctx.state.config.device_token_ttl_s
    assert ttl == 90 * DAY
    ctx.clock.advance(ttl - 60)
    assert await _manifest_status(ctx, token) == 200
    ctx.clock.advance(61)
    expired = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert expired.status_code == 401
    assert expired.json()["code"] == "token_expired"


async def test_heartbeat_says_when_to_rotate_and_rotation_renews(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    ttl = ctx.state.config.device_token_ttl_s
    issued = ctx.clock.now

    async def beat(with_token: str) -> HeartbeatResponse:
        ctx.clock.advance(60)  # past the heartbeat rate limit
        r = await ctx.client.post(
            "/api/v1/device/heartbeat",
            json={"metrics": METRICS},
            headers=device_headers(with_token),
        )
        assert r.status_code == 200, r.text
        return HeartbeatResponse.model_validate(r.json())

    first = await beat(token)
    assert first.token_expires_at == dt.datetime.fromtimestamp(issued + ttl, dt.UTC)
    assert first.token_refresh_at is not None and first.token_refresh_at > first.server_time
    # Two thirds into its life the token is due for rotation, weeks before it expires.
    ctx.clock.now = first.token_refresh_at.timestamp()
    due = await beat(token)
    assert due.token_refresh_at is not None and due.token_refresh_at <= due.server_time
    rotated = await ctx.client.post("/api/v1/device/token/rotate", headers=device_headers(token))
    new = rotated.json()["device_token"]
    renewed = await beat(new)
    assert renewed.token_expires_at is not None
    assert renewed.token_expires_at.timestamp() == ctx.clock.now - 60 + ttl
    assert await _manifest_status(ctx, token) == 401


async def test_a_rotation_retried_with_the_old_token_keeps_it_valid(ctx: Ctx) -> None:
    """The first rotation's answer is lost; the device retries with the token it still holds.
    That token must keep working until the device uses the one it finally received."""
    _, old = await ctx.pair()
    lost = await ctx.client.post("/api/v1/device/token/rotate", headers=device_headers(old))
    assert lost.status_code == 200
    retried = await ctx.client.post("/api/v1/device/token/rotate", headers=device_headers(old))
    assert retried.status_code == 200
    assert await _manifest_status(ctx, old) == 200
    received = retried.json()["device_token"]
    assert await _manifest_status(ctx, received) == 200
    assert await _manifest_status(ctx, old) == 401
    assert await _manifest_status(ctx, lost.json()["device_token"]) == 401


async def test_the_previous_token_is_told_to_rotate_at_once(ctx: Ctx) -> None:
    _, old = await ctx.pair()
    await ctx.client.post("/api/v1/device/token/rotate", headers=device_headers(old))
    r = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=device_headers(old)
    )
    body = HeartbeatResponse.model_validate(r.json())
    assert body.token_refresh_at is not None and body.token_refresh_at <= body.server_time


def test_no_token_starts_with_a_dash() -> None:
    # A token is typed after --token on the command line; a leading dash would read as an
    # option (one token in 64 did before).
    assert not any(new_token().startswith("-") for _ in range(3000))


def test_replicas_starting_together_agree_on_the_generated_admin_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica on the same data dir writes its token between our look and our write:
    ours must not replace it (each replica would accept a different token)."""
    theirs = new_token()

    def racing_token() -> str:
        (tmp_path / ADMIN_TOKEN_FILE).write_text(theirs + "\n")  # the other replica, first
        return new_token()

    monkeypatch.setattr(security, "new_token", racing_token)
    assert load_admin_token(None, tmp_path) == (theirs, False)
    assert (tmp_path / ADMIN_TOKEN_FILE).read_text() == theirs + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [ADMIN_TOKEN_FILE]  # no draft left


def test_a_generated_admin_token_is_private_and_kept(tmp_path: Path) -> None:
    token, created = load_admin_token(None, tmp_path)
    assert created
    path = tmp_path / ADMIN_TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_admin_token(None, tmp_path) == (token, False)
    path.write_text("")  # emptied by hand: a new one replaces it
    again, created = load_admin_token(None, tmp_path)
    assert created and again != token
    assert path.read_text() == again + "\n"
