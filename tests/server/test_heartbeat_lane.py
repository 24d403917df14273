"""The heartbeat's lean route (server._lean): served past FastAPI's machinery, behind the same
layers and with the same answers as every other route; and the token cache that spares it a
database lookup, dropped at once on every replica when a token is revoked or rotated away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from protocol import HeartbeatResponse
from server import create_app
from server._lean import Lanes
from server._security import hash_token
from server._state import ServerState
from tests.server.conftest import ADMIN_TOKEN, Ctx, FakeClock, device_headers, make_settings
from tests.server.test_device import METRICS
from tools.bench import ScratchPostgres, ScratchRedis

HEARTBEAT = "/api/v1/device/heartbeat"
MANIFEST = "/api/v1/device/manifest"
WAIT_S = 5.0


def _counted(metrics: str, status_class: str) -> int:
    line = f'signage_http_responses_total{{route="device",class="{status_class}"}}'
    return int(next(x for x in metrics.splitlines() if x.startswith(line)).split()[-1])


async def _beat(client: httpx.AsyncClient, token: str, **kwargs: Any) -> httpx.Response:
    body = kwargs.pop("json", {"metrics": METRICS})
    return await client.post(HEARTBEAT, json=body, headers=device_headers(token), **kwargs)


async def test_the_heartbeat_is_served_past_fastapi_with_the_same_answers(ctx: Ctx) -> None:
    _, token = await ctx.pair()
    ok = await _beat(ctx.client, token)
    assert ok.status_code == 200, ok.text
    assert ok.headers["content-type"] == "application/json"
    HeartbeatResponse.model_validate_json(ok.content)
    lanes = getattr(ctx.app.middleware_stack, "app", None)  # the front door's next layer
    assert isinstance(lanes, Lanes) and lanes.serves("POST", HEARTBEAT)
    assert not lanes.serves("GET", "/api/v1/device/time")
    # The same security headers as a route FastAPI serves.
    served = await ctx.client.get("/api/v1/device/time", headers=device_headers(token))
    assert served.status_code == 200, served.text
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert ok.headers[name] == served.headers[name]

    invalid = await _beat(ctx.client, token, json={"metrics": {"cpu_percent": -1}})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    problem = invalid.json()
    assert problem["code"] == "validation_failed" and problem["instance"] == HEARTBEAT
    assert ["body", "metrics", "cpu_percent"] in [e["loc"] for e in problem["errors"]]
    not_json = await ctx.client.post(
        HEARTBEAT, content=b"{", headers={**device_headers(token), "content-type": "x/y"}
    )
    assert not_json.status_code == 400 and not_json.json()["code"] == "invalid_json"
    too_large = await ctx.client.post(
        HEARTBEAT, content=b" " * (64 * 1024 + 1), headers=device_headers(token)
    )
    assert too_large.status_code == 413 and too_large.headers["connection"] == "close"
    wrong = await _beat(ctx.client, "z" * 43)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    await _beat(ctx.client, token)
    limited = await _beat(ctx.client, token)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert limited.json()["code"] == "heartbeat_too_frequent"

    metrics = (await ctx.client.get("/metrics")).text
    assert _counted(metrics, "2xx") == 3  # two heartbeats, one time exchange
    assert _counted(metrics, "4xx") == 5


async def test_the_manifest_is_a_lean_route_with_the_same_answers(ctx: Ctx) -> None:
    """Every device fetches it after every change and every reconnect."""
    _, token = await ctx.pair()
    lanes = getattr(ctx.app.middleware_stack, "app", None)
    assert isinstance(lanes, Lanes) and lanes.serves("GET", MANIFEST)
    full = await ctx.client.get(MANIFEST, headers=device_headers(token))
    assert full.status_code == 200 and full.headers["content-type"] == "application/json"
    assert full.headers["cache-control"] == "no-cache" and full.headers["x-frame-options"]
    etag = full.headers["etag"]
    for match in (etag, f'"other", {etag}', "*"):
        same = await ctx.client.get(
            MANIFEST, headers={**device_headers(token), "If-None-Match": match}
        )
        assert same.status_code == 304 and same.headers["etag"] == etag and not same.content
    other = await ctx.client.get(
        MANIFEST, headers={**device_headers(token), "If-None-Match": '"other"'}
    )
    assert other.status_code == 200 and other.content == full.content
    wrong = await ctx.client.get(MANIFEST, headers=device_headers("z" * 43))
    assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
    assert wrong.json()["instance"] == MANIFEST


async def test_the_heartbeat_names_the_manifest_stored_now(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    before = HeartbeatResponse.model_validate_json((await _beat(ctx.client, token)).content)
    await ctx.publish_image(device_id)
    ctx.clock.advance(60)
    after = HeartbeatResponse.model_validate_json((await _beat(ctx.client, token)).content)
    manifest = await ctx.client.get("/api/v1/device/manifest", headers=device_headers(token))
    assert after.manifest_etag == manifest.headers["etag"] != before.manifest_etag


async def test_a_failure_in_the_heartbeat_is_a_logged_and_counted_500(
    ctx: Ctx, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, token = await ctx.pair()

    async def broken(*_: Any) -> None:
        raise RuntimeError("presence store broke")

    monkeypatch.setattr(ctx.state.presence, "beat", broken)
    with caplog.at_level(logging.ERROR, logger="signage.server"):
        failed = await _beat(ctx.client, token)
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["code"] == "internal_error"
    # Only the server's own error records: an earlier test may leave httpx's INFO lines on.
    errors = [r.message for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"unhandled error on POST {HEARTBEAT}"]
    assert _counted((await ctx.client.get("/metrics")).text, "5xx") == 1


@dataclass
class Replica:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.signage
        return state


@pytest.fixture
async def two_replicas(
    postgres_server: ScratchPostgres, redis_server: ScratchRedis, tmp_path: Path
) -> AsyncIterator[tuple[Replica, Replica, FakeClock]]:
    redis_server.command("FLUSHALL")
    database = postgres_server.create_database("lanes")
    settings = make_settings(database_url=database, redis_url=redis_server.url)
    clock = FakeClock()
    apps = [create_app(settings, tmp_path / "srv", clock=clock) for _ in range(2)]
    try:
        async with (
            apps[0].router.lifespan_context(apps[0]),
            apps[1].router.lifespan_context(apps[1]),
        ):
            clients = [
                httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t")
                for a in apps
            ]
            async with clients[0], clients[1]:
                yield Replica(apps[0], clients[0]), Replica(apps[1], clients[1]), clock
    finally:
        postgres_server.drop_database("lanes")
        redis_server.command("FLUSHALL")


async def _pair(replica: Replica) -> tuple[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client = replica.client
    created = (await client.post("/api/v1/pairings", json={"hardware_id": "hw-1"})).json()
    claim = await client.post(
        "/api/v1/admin/pairings/claim", json={"code": created["code"], "name": "x"}, headers=admin
    )
    assert claim.status_code == 201, claim.text
    paired = await client.get(
        f"/api/v1/pairings/{created['pairing_id']}",
        headers={"Authorization": f"Bearer {created['poll_token']}"},
    )
    body = paired.json()
    return body["device_id"], body["device_token"]


async def _refused_within(replica: Replica, token: str, clock: FakeClock) -> str:
    """Beat with ``token`` until it is refused (the invalidation crosses Redis); its code."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        clock.advance(60)  # past the heartbeat rate limit
        answer = await _beat(replica.client, token)
        if answer.status_code == 401:
            code: str = answer.json()["code"]
            return code
        assert answer.status_code == 200, answer.text
        assert asyncio.get_running_loop().time() < deadline, "still accepted on the replica"
        await asyncio.sleep(0.01)


async def test_a_revoked_device_is_refused_by_every_replica_that_cached_its_token(
    two_replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, b, clock = two_replicas
    device_id, token = await _pair(a)
    for replica in (a, b):
        clock.advance(60)
        assert (await _beat(replica.client, token)).status_code == 200
        assert hash_token(token) in replica.state.auth_cache  # the next beat asks no database
    revoked = await a.client.delete(
        f"/api/v1/admin/devices/{device_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert revoked.status_code == 204
    assert hash_token(token) not in a.state.auth_cache
    assert (await _beat(a.client, token)).status_code == 401  # this replica: at once
    assert await _refused_within(b, token, clock) == "invalid_token"


async def test_a_rotated_away_token_is_refused_by_the_replica_that_cached_it(
    two_replicas: tuple[Replica, Replica, FakeClock],
) -> None:
    a, b, clock = two_replicas
    _, old = await _pair(a)
    assert (await _beat(a.client, old)).status_code == 200
    rotated = await b.client.post("/api/v1/device/token/rotate", headers=device_headers(old))
    new = rotated.json()["device_token"]
    # The old token stays valid until the new one is used, on any replica.
    clock.advance(60)
    assert (await _beat(a.client, old)).status_code == 200
    clock.advance(60)
    assert (await _beat(b.client, new)).status_code == 200  # B retires the old token
    assert await _refused_within(a, old, clock) == "invalid_token"
    clock.advance(60)
    assert (await _beat(a.client, new)).status_code == 200
