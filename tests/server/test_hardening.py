"""Hostile input in process: bodies bounded before they are read, authentication before the
body, JSON depth, numbers in headers, atomic lockouts, every response counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event

from server import create_app
from tests.server.conftest import Ctx, FakeClock, device_headers, make_settings

MIB = 1024 * 1024


class Pulled:
    """A streamed request body that counts how much of it the server pulled."""

    def __init__(self, total: int, chunk: int = MIB, byte: bytes = b"[") -> None:
        self.total = total
        self.chunk = chunk
        self.byte = byte
        self.bytes = 0

    async def stream(self) -> AsyncIterator[bytes]:
        while self.bytes < self.total:
            self.bytes += self.chunk
            yield self.byte * self.chunk


async def test_admin_body_is_not_read_without_a_token(ctx: Ctx) -> None:
    body = Pulled(200 * MIB)
    response = await ctx.client.put(
        "/api/v1/admin/playlists/x",
        content=body.stream(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert body.bytes <= MIB


async def test_device_body_is_not_read_with_a_wrong_token(ctx: Ctx) -> None:
    body = Pulled(64 * MIB)
    response = await ctx.client.post(
        "/api/v1/device/impressions",
        content=body.stream(),
        headers={**device_headers("not-a-token"), "Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert body.bytes <= MIB


@pytest.mark.parametrize(
    ("method", "path", "limit"),
    [
        ("POST", "/api/v1/device/impressions", MIB),
        ("POST", "/api/v1/device/heartbeat", 64 * 1024),
        ("PUT", "/api/v1/admin/playlists/x", 4 * MIB),
        ("POST", "/api/v1/admin/pairings/claim", MIB),
        ("POST", "/api/v1/pairings", 64 * 1024),
    ],
)
async def test_streamed_body_is_refused_once_past_the_route_limit(
    ctx: Ctx, method: str, path: str, limit: int
) -> None:
    _, token = await ctx.pair()
    auth = ctx.admin if "/admin/" in path else device_headers(token)
    body = Pulled(48 * MIB, chunk=16 * 1024)
    response = await ctx.client.request(
        method, path, content=body.stream(), headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"
    assert body.bytes <= limit + 16 * 1024


async def test_declared_length_over_the_limit_is_refused_before_reading(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    body = Pulled(2 * MIB)
    response = await ctx.client.post(
        "/api/v1/device/heartbeat",
        content=body.stream(),
        headers={
            **device_headers(token),
            "Content-Type": "application/json",
            "Content-Length": str(2 * MIB),
        },
    )
    assert response.status_code == 413
    assert response.headers.get("connection") == "close"
    assert body.bytes == 0


@pytest.mark.parametrize(
    "path", ["/api/v1/device/heartbeat", "/api/v1/device/impressions", "/api/v1/pairings"]
)
async def test_deeply_nested_json_is_a_400(ctx: Ctx, path: str) -> None:
    _, token = await ctx.pair()
    for depth in (10_000, 200):
        nested = "[" * depth + "]" * depth
        response = await ctx.client.post(
            path,
            content=nested,
            headers={**device_headers(token), "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (depth, response.text)
        assert response.json()["code"] == "json_too_deep"


async def test_content_range_with_a_huge_number_is_refused(ctx: Ctx) -> None:
    created = await ctx.client.post("/api/v1/admin/uploads", json={"size": 10}, headers=ctx.admin)
    upload_id = created.json()["upload_id"]
    huge = "9" * 5000
    for value in (f"bytes 0-{huge}/10", f"bytes {huge}-1/10", f"bytes 0-9/{huge}"):
        response = await ctx.client.put(
            f"/api/v1/admin/uploads/{upload_id}",
            content=b"0123456789",
            headers={**ctx.admin, "Content-Range": value},
        )
        assert response.status_code in (400, 416), response.text
        assert response.headers["content-type"] == "application/problem+json"


async def test_range_with_a_huge_number_is_refused(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    sha = await ctx.publish_image(device_id)
    huge = "9" * 5000
    for value in (f"bytes={huge}-", f"bytes=0-{huge}", f"bytes=-{huge}"):
        response = await ctx.client.get(
            f"/api/v1/assets/{sha}", headers={**device_headers(token), "Range": value}
        )
        assert response.status_code in (200, 206, 416), response.text


async def test_content_length_with_a_huge_number_is_a_400(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    response = await ctx.client.post(
        "/api/v1/device/heartbeat",
        content=b"{}",
        headers={**device_headers(token), "Content-Length": "9" * 5000},
    )
    assert response.status_code in (400, 413)


async def test_wrong_claims_evaluated_never_exceed_the_lockout(ctx: Ctx) -> None:
    """300 simultaneous claims (299 wrong, one right): at most claim_max_failures are looked at
    as wrong codes; the rest are refused before they reach the database."""
    created = (await ctx.client.post("/api/v1/pairings", json={"hardware_id": "hw-r"})).json()
    wrong = [f"{n:06d}" for n in range(300) if f"{n:06d}" != created["code"]][:299]
    codes = [*wrong[:150], created["code"], *wrong[150:]]

    async def claim(code: str) -> int:
        r = await ctx.client.post(
            "/api/v1/admin/pairings/claim", json={"code": code, "name": "x"}, headers=ctx.admin
        )
        return r.status_code

    statuses = await asyncio.gather(*(claim(code) for code in codes))
    limit = ctx.state.config.claim_max_failures
    assert statuses.count(404) <= limit
    assert statuses.count(429) >= len(codes) - limit - 1
    assert ctx.state.counters.values["claims_failed"] <= limit


async def test_lockout_detail_says_when_to_retry(ctx: Ctx) -> None:
    for _ in range(ctx.state.config.claim_max_failures):
        await ctx.client.post(
            "/api/v1/admin/pairings/claim", json={"code": "000000", "name": "x"}, headers=ctx.admin
        )
    locked = await ctx.client.post(
        "/api/v1/admin/pairings/claim", json={"code": "000000", "name": "x"}, headers=ctx.admin
    )
    assert locked.status_code == 429
    wait = int(locked.headers["retry-after"])
    assert 0 < wait <= ctx.state.config.claim_lockout_s
    assert "try again in" in locked.json()["detail"]


async def test_metrics_count_every_response_including_500s(tmp_path: Path) -> None:
    app = create_app(make_settings(), tmp_path / "srv", clock=FakeClock())

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            failed = await client.get("/boom")
            assert failed.status_code == 500
            assert failed.headers["content-type"] == "application/problem+json"
            await client.get("/nowhere")
            text = (await client.get("/metrics")).text
    assert 'signage_http_responses_total{route="other",class="5xx"} 1' in text
    assert 'signage_http_responses_total{route="other",class="4xx"} 1' in text


async def test_recursion_anywhere_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    app = create_app(make_settings(), tmp_path / "srv", clock=FakeClock())

    async def deep() -> None:
        def down(n: int) -> int:
            return down(n + 1) + 1

        down(0)

    app.add_api_route("/deep", deep)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/deep")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"


async def test_options_lists_every_method_of_the_path(ctx: Ctx) -> None:
    response = await ctx.client.request("OPTIONS", "/api/v1/admin/uploads/up_1")
    assert response.status_code == 204
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
    wrong = await ctx.client.request("PATCH", "/api/v1/admin/uploads/up_1", headers=ctx.admin)
    assert wrong.status_code == 405
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
    missing = await ctx.client.request("OPTIONS", "/nowhere")
    assert missing.status_code == 404


async def test_bad_tokens_from_one_address_are_limited(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    known = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert known.status_code == 200
    limit = ctx.state.config.auth_failures_per_ip
    statuses = await asyncio.gather(
        *(
            ctx.client.get("/api/v1/device/manifest", headers=device_headers(f"guess-{n}"))
            for n in range(limit + 20)
        )
    )
    codes = [r.status_code for r in statuses]
    assert codes.count(401) <= limit
    assert codes.count(429) >= 20
    limited = next(r for r in statuses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["code"] == "too_many_failures"
    # A device whose token is known keeps working from the same address; guesses do not.
    ok = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert ok.status_code == 200
    admin = await ctx.client.get("/api/v1/admin/devices", headers=ctx.admin)
    assert admin.status_code == 429
    ctx.clock.advance(ctx.state.config.auth_failure_window_s)
    assert (await ctx.client.get("/api/v1/admin/devices", headers=ctx.admin)).status_code == 200


async def test_simultaneous_right_claims_all_succeed(ctx: Ctx) -> None:
    """A script pairing a fleet claims many codes at once: none of them is a failure."""
    count = ctx.state.config.claim_max_failures * 3
    ctx.state.pairing_per_ip.limit = 1000  # one test address asks for every code
    created = [
        (await ctx.client.post("/api/v1/pairings", json={"hardware_id": f"hw-{n}"})).json()
        for n in range(count)
    ]
    claims = await asyncio.gather(
        *(
            ctx.client.post(
                "/api/v1/admin/pairings/claim", json={"code": c["code"]}, headers=ctx.admin
            )
            for c in created
        )
    )
    assert [r.status_code for r in claims] == [201] * count


async def test_many_valid_devices_behind_one_address_are_never_limited(ctx: Ctx) -> None:
    """After a server restart (nothing cached) a site's screens behind one NAT address all
    come back at once: none of them counts as a failure."""
    count = ctx.state.config.auth_failures_per_ip + 10
    ctx.state.pairing_per_ip.limit = 1000  # one test address asks for every code
    tokens = [(await ctx.pair(f"hw-{n}"))[1] for n in range(count)]
    ctx.state.auth_cache.clear()
    answers = await asyncio.gather(
        *(ctx.client.get("/api/v1/device/manifest", headers=device_headers(t)) for t in tokens)
    )
    assert [r.status_code for r in answers] == [200] * count
    assert len(ctx.state.auth_lookups) == 0, "per-address queues are dropped after use"


async def test_a_crowd_behind_one_address_is_looked_up_in_batches(ctx: Ctx) -> None:
    """Screens reconnecting at once through one NAT address (or one proxy) do not wait for
    one database round trip each: the lookups that queued meanwhile share one query."""
    limit = ctx.state.config.auth_failures_per_ip
    count = limit * 4
    ctx.state.pairing_per_ip.limit = 1000  # one test address asks for every code
    tokens = [(await ctx.pair(f"hw-{n}"))[1] for n in range(count)]
    ctx.state.auth_cache.clear()
    queries: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "WHERE devices.token_hash" in statement:  # a token's lookup
            queries.append(statement)

    event.listen(ctx.state.engine.sync_engine, "before_cursor_execute", seen)
    try:
        answers = await asyncio.gather(
            *(ctx.client.get("/api/v1/device/manifest", headers=device_headers(t)) for t in tokens)
        )
    finally:
        event.remove(ctx.state.engine.sync_engine, "before_cursor_execute", seen)
    assert [r.status_code for r in answers] == [200] * count
    # A batch holds as many tokens as the address has failures left for (``limit``).
    assert 1 <= len(queries) <= count // limit + 2, f"{len(queries)} lookups for {count} tokens"


async def test_guesses_in_a_crowd_of_valid_tokens_are_still_capped(ctx: Ctx) -> None:
    limit = ctx.state.config.auth_failures_per_ip
    ctx.state.pairing_per_ip.limit = 1000
    tokens = [(await ctx.pair(f"hw-{n}"))[1] for n in range(limit)]
    ctx.state.auth_cache.clear()
    mixed = [t for n, token in enumerate(tokens) for t in (token, f"guess-{n}", f"guess-{n}b")]
    answers = await asyncio.gather(
        *(ctx.client.get("/api/v1/device/manifest", headers=device_headers(t)) for t in mixed)
    )
    guesses = [r.status_code for t, r in zip(mixed, answers, strict=True) if "guess" in t]
    assert guesses.count(401) == limit, "each guess evaluated holds its failure"
    assert guesses.count(429) == len(guesses) - limit
    assert await ctx.state.auth_failures.count("203.0.113.7") == limit


async def test_lookups_in_flight_elsewhere_do_not_refuse_a_valid_token(ctx: Ctx) -> None:
    """The address's window is full of another replica's lookups, not yet settled: a valid
    token waits for them rather than being refused, and a wrong admin token still is."""
    _, token = await ctx.pair()
    ctx.state.auth_cache.clear()
    window, address = ctx.state.auth_failures, "203.0.113.7"
    wait, elsewhere = await window.reserve_many(address, window.limit)
    assert wait == 0 and len(elsewhere) == window.limit
    assert await window.retry_after(address) == 0, "in flight is not failed"
    assert (await ctx.client.get("/api/v1/admin/devices", headers=ctx.admin)).status_code == 200
    request = asyncio.create_task(
        ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    )
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert not request.done(), "it waits while the window is full of lookups in flight"
    await window.settle(address, elsewhere, [])
    assert (await asyncio.wait_for(request, 10)).status_code == 200
    # Had they all failed, the window would be full, and a valid unknown token refused.
    _, again = await window.reserve_many(address, window.limit)
    await window.settle(address, [], again)
    ctx.state.auth_cache.clear()
    refused = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert refused.status_code == 429
