from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.server.conftest import Ctx, device_headers


async def _request(ctx: Ctx, hardware_id: str = "hw-1") -> dict[str, str]:
    response = await ctx.client.post("/api/v1/pairings", json={"hardware_id": hardware_id})
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def _poll_headers(created: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {created['poll_token']}"}


async def _claim(ctx: Ctx, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """The operator claims ``code`` through the admin API (as ``headers``, default the admin)."""
    return await ctx.client.post(
        "/api/v1/admin/pairings/claim",
        json={"code": code, "name": "x"},
        headers=ctx.admin if headers is None else headers,
    )


async def test_pairing_flow_hands_token_that_authenticates(ctx: Ctx) -> None:
    created = await _request(ctx)
    assert len(created["code"]) == 6 and created["code"].isdigit()
    pending = await ctx.client.get(
        f"/api/v1/pairings/{created['pairing_id']}", headers=_poll_headers(created)
    )
    assert pending.json()["status"] == "pending"
    device_id, token = await ctx.pair("hw-2")
    manifest = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert manifest.status_code == 200
    devices = (await ctx.client.get("/api/v1/admin/devices", headers=ctx.admin)).json()
    assert [d["id"] for d in devices] == [device_id]


async def test_pairing_replay_returns_410(ctx: Ctx) -> None:
    created = await _request(ctx)
    claim = {"code": created["code"], "name": "Hall"}
    first = await ctx.client.post("/api/v1/admin/pairings/claim", json=claim, headers=ctx.admin)
    assert first.status_code == 201
    # The code is single-use: a replayed claim finds nothing.
    again = await ctx.client.post("/api/v1/admin/pairings/claim", json=claim, headers=ctx.admin)
    assert again.status_code == 404 and again.json()["code"] == "pairing_not_found"
    url = f"/api/v1/pairings/{created['pairing_id']}"
    paired = await ctx.client.get(url, headers=_poll_headers(created))
    assert paired.json()["status"] == "paired"
    replay = await ctx.client.get(url, headers=_poll_headers(created))
    assert replay.status_code == 410
    assert replay.json()["code"] == "pairing_consumed"
    assert replay.headers["content-type"] == "application/problem+json"


async def test_expired_pairing_returns_410_and_cannot_be_claimed(ctx: Ctx) -> None:
    created = await _request(ctx)
    ctx.clock.advance(301)
    url = f"/api/v1/pairings/{created['pairing_id']}"
    expired = await ctx.client.get(url, headers=_poll_headers(created))
    assert expired.status_code == 410 and expired.json()["code"] == "pairing_expired"
    claim = await _claim(ctx, created["code"])
    # Still refused, and said in words: the installer was too slow, the screen has a new code.
    assert claim.status_code == 410 and claim.json()["code"] == "pairing_expired"


async def test_new_request_from_same_hardware_replaces_pending_code(ctx: Ctx) -> None:
    old = await _request(ctx, "hw-9")
    new = await _request(ctx, "hw-9")
    gone = await ctx.client.get(f"/api/v1/pairings/{old['pairing_id']}", headers=_poll_headers(old))
    assert gone.status_code == 404
    live = await ctx.client.get(f"/api/v1/pairings/{new['pairing_id']}", headers=_poll_headers(new))
    assert live.json()["status"] == "pending"


async def test_poll_needs_the_poll_token(ctx: Ctx) -> None:
    created = await _request(ctx)
    url = f"/api/v1/pairings/{created['pairing_id']}"
    assert (await ctx.client.get(url)).status_code == 401
    wrong = await ctx.client.get(url, headers={"Authorization": "Bearer " + "x" * 43})
    assert wrong.status_code == 404


async def test_long_poll_returns_as_soon_as_claimed(ctx: Ctx) -> None:
    created = await _request(ctx)
    url = f"/api/v1/pairings/{created['pairing_id']}"
    poll = asyncio.create_task(
        ctx.client.get(url, params={"wait": 30}, headers=_poll_headers(created))
    )
    await asyncio.sleep(0.05)
    assert not poll.done()
    await _claim(ctx, created["code"])
    response = await asyncio.wait_for(poll, timeout=10)
    assert response.json()["status"] == "paired"


async def test_claim_brute_force_locks_out(ctx: Ctx) -> None:
    created = await _request(ctx)
    wrong = "000000" if created["code"] != "000000" else "111111"
    for _ in range(5):
        r = await _claim(ctx, wrong)
        assert r.status_code == 404
    # Locked out: even the right code is refused until the window passes.
    locked = await _claim(ctx, created["code"])
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"
    assert int(locked.headers["retry-after"]) > 0
    ctx.clock.advance(901)
    fresh = await _request(ctx, "hw-other")
    ok = await _claim(ctx, fresh["code"])
    assert ok.status_code == 201


async def test_pairing_request_flood_gets_429(ctx: Ctx) -> None:
    statuses = [
        (await ctx.client.post("/api/v1/pairings", json={"hardware_id": f"hw-{i}"})).status_code
        for i in range(12)
    ]
    assert statuses[:10] == [201] * 10
    assert statuses[10:] == [429, 429]
    ctx.clock.advance(61)
    assert (
        await ctx.client.post("/api/v1/pairings", json={"hardware_id": "hw-x"})
    ).status_code == 201


async def test_pairing_requests_per_hardware_id_are_limited(ctx: Ctx) -> None:
    statuses = [
        (await ctx.client.post("/api/v1/pairings", json={"hardware_id": "same"})).status_code
        for _ in range(4)
    ]
    assert statuses == [201, 201, 201, 429]


async def test_claim_needs_admin_token(ctx: Ctx) -> None:
    created = await _request(ctx)
    r = await _claim(ctx, created["code"], {"Authorization": "Bearer wrong-token-000000"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_a_claim_while_the_poll_reads_its_row_still_wakes_the_poll(
    ctx: Ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim commits between the long poll reading "pending" and starting to wait: the
    poll must still return at once, not after its whole wait (a screen stuck on its code)."""
    from server import _pairing

    created = await _request(ctx)
    read_row = _pairing._pairing_row
    claimed: list[int] = []

    async def row_then_claim(*args: Any, **kwargs: Any) -> Any:
        row = await read_row(*args, **kwargs)
        if not claimed:  # the first read saw "pending"; the operator claims right then
            claimed.append(1)
            answer = await _claim(ctx, created["code"])
            assert answer.status_code == 201, answer.text
        return row

    monkeypatch.setattr(_pairing, "_pairing_row", row_then_claim)
    url = f"/api/v1/pairings/{created['pairing_id']}"
    started = asyncio.get_running_loop().time()
    response = await asyncio.wait_for(
        ctx.client.get(url, params={"wait": 20}, headers=_poll_headers(created)), timeout=30
    )
    assert claimed and response.json()["status"] == "paired"
    assert asyncio.get_running_loop().time() - started < 10, "woken by the claim, not the timeout"
    assert len(ctx.state.wakeups) == 0, "nothing left behind"


async def test_a_poll_with_a_wrong_token_does_not_unhook_the_device_waiting(ctx: Ctx) -> None:
    created = await _request(ctx)
    url = f"/api/v1/pairings/{created['pairing_id']}"
    poll = asyncio.create_task(
        ctx.client.get(url, params={"wait": 30}, headers=_poll_headers(created))
    )
    await asyncio.sleep(0.05)
    intruder = await ctx.client.get(
        url, params={"wait": 5}, headers={"Authorization": "Bearer not-the-poll-token"}
    )
    assert intruder.status_code in (401, 404)  # (the server does not say which)
    await _claim(ctx, created["code"])
    response = await asyncio.wait_for(poll, timeout=10)
    assert response.json()["status"] == "paired"


async def test_two_polls_that_both_read_claimed_hand_the_token_over_once(ctx: Ctx) -> None:
    """Two polls of one claimed pairing (a retry racing the original) can both read the row
    as "claimed" before either hands the token over; only the status flip may decide, or the
    second would replace the device token the first one already gave the device."""
    from server._pairing import _hand_over, _pairing_row
    from server._problems import ApiError
    from server._security import hash_token

    created = await _request(ctx)
    assert (await _claim(ctx, created["code"])).status_code == 201
    poll_hash = hash_token(created["poll_token"])
    first_read = await _pairing_row(ctx.state, created["pairing_id"], poll_hash)
    second_read = await _pairing_row(ctx.state, created["pairing_id"], poll_hash)
    assert first_read.status == second_read.status == "claimed"
    handed = await _hand_over(ctx.state, first_read)
    with pytest.raises(ApiError) as refused:
        await _hand_over(ctx.state, second_read)
    assert (refused.value.status, refused.value.code) == (410, "pairing_consumed")
    manifest = await ctx.client.get(
        "/api/v1/device/manifest", headers=device_headers(handed.device_token)
    )
    assert manifest.status_code == 200, "the token the device got is the one that works"
