"""Two ``signage server`` processes on one PostgreSQL and one Redis, behind the documented nginx
site: a device pairs through one and streams from the other, changes made on either reach it,
a killed replica loses it no event, and requests racing on both behave as on one server."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.server.server_process import ServerProcess, server_process
from tests.server.test_device import METRICS
from tests.server.test_events import open_stream
from tools.bench import Proxy, ScratchPostgres, ScratchRedis, nginx

TIMEOUT = httpx.Timeout(30.0)
MAX_FAILURES = 4


@pytest.fixture
def replicas(
    postgres_server: ScratchPostgres, redis_server: ScratchRedis, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess, Proxy]]:
    redis_server.command("FLUSHALL")
    database = postgres_server.create_database("replicas")
    env = {
        "SIGNAGE_SERVER__DATABASE_URL": database,
        "SIGNAGE_SERVER__REDIS_URL": redis_server.url,
        "SIGNAGE_SERVER__SSE_PING_S": "1",
        "SIGNAGE_SERVER__CLAIM_MAX_FAILURES": str(MAX_FAILURES),
    }
    data = tmp_path / "data"  # shared: media and uploads live in files
    try:
        with (
            server_process(data, **env) as a,
            server_process(data, **env) as b,
            nginx([a.port, b.port], tmp_path / "nginx") as proxy,
        ):
            yield a, b, proxy
    finally:
        postgres_server.drop_database("replicas")
        redis_server.command("FLUSHALL")


def _client(url: str, proxy: Proxy | None = None) -> httpx.AsyncClient:
    verify: Any = proxy.trust if proxy is not None else True
    return httpx.AsyncClient(base_url=url, timeout=TIMEOUT, verify=verify)


def _admin(server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_token}"}


async def _command(client: httpx.AsyncClient, admin: dict[str, str], device_id: str) -> str:
    r = await client.post(
        f"/api/v1/admin/devices/{device_id}/commands", json={"name": "identify"}, headers=admin
    )
    assert r.status_code == 201, r.text
    command_id: str = r.json()["id"]
    return command_id


async def _pairing(client: httpx.AsyncClient, hardware_id: str) -> dict[str, Any]:
    created = await client.post("/api/v1/pairings", json={"hardware_id": hardware_id})
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _claims(
    a: httpx.AsyncClient, b: httpx.AsyncClient, admin: dict[str, str], code: str, count: int
) -> list[int]:
    """``count`` claims of ``code`` at once, alternating between the replicas."""

    async def claim(client: httpx.AsyncClient, n: int) -> int:
        body = {"code": code, "name": f"racer {n}"}
        r = await client.post("/api/v1/admin/pairings/claim", json=body, headers=admin)
        return r.status_code

    return list(await asyncio.gather(*(claim((a, b)[n % 2], n) for n in range(count))))


async def _races(a: httpx.AsyncClient, b: httpx.AsyncClient, admin: dict[str, str]) -> None:
    # One code claimed on both replicas at once: one device.
    created = await _pairing(a, "hw-raced")
    assert sorted(await _claims(a, b, admin, created["code"], 2)) == [201, 404]
    # Wrong codes on both at once: the lockout counts them together (the lost race above
    # was the first failure).
    statuses = await _claims(a, b, admin, "000000", 3 * MAX_FAILURES)
    assert statuses.count(404) == MAX_FAILURES - 1, statuses
    assert statuses.count(429) == 2 * MAX_FAILURES + 1, statuses
    # One upload completed on both at once: one media, the same answer twice.
    image = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(image, "PNG")
    data = image.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    created_upload = await a.post(
        "/api/v1/admin/uploads",
        json={"size": len(data), "sha256": sha, "name": "red.png"},
        headers=admin,
    )
    upload = created_upload.json()["upload_id"]
    put = await b.put(
        f"/api/v1/admin/uploads/{upload}",
        content=data,
        headers=admin | {"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"},
    )
    assert put.status_code == 200, put.text
    done = await asyncio.gather(
        *(c.post(f"/api/v1/admin/uploads/{upload}/complete", headers=admin) for c in (a, b))
    )
    assert [r.status_code for r in done] == [200, 200], [r.text for r in done]
    assert {r.json()["sha256"] for r in done} == {sha}
    media = (await a.get("/api/v1/admin/media", headers=admin)).json()
    assert [m["sha256"] for m in media] == [sha]


async def test_two_replicas_behind_nginx_serve_as_one(
    replicas: tuple[ServerProcess, ServerProcess, Proxy],
) -> None:
    a, b, proxy = replicas
    admin = _admin(a)
    async with _client(a.url) as on_a, _client(b.url) as on_b, _client(proxy.url, proxy) as lb:
        # Pairing: the device waits on B, the installer claims on A; B answers at once.
        created = await _pairing(on_a, "hw-lobby")
        poll = asyncio.create_task(
            on_b.get(
                f"/api/v1/pairings/{created['pairing_id']}",
                params={"wait": 25},
                headers={"Authorization": f"Bearer {created['poll_token']}"},
            )
        )
        await asyncio.sleep(0.5)
        started = time.monotonic()
        claim = await on_a.post(
            "/api/v1/admin/pairings/claim",
            json={"code": created["code"], "name": "Lobby"},
            headers=admin,
        )
        assert claim.status_code == 201, claim.text
        paired = await asyncio.wait_for(poll, 30)
        assert paired.json()["status"] == "paired"
        assert time.monotonic() - started < 10, "woken by the claim on the other replica"
        device_id, token = claim.json()["device_id"], paired.json()["device_token"]
        await _races(on_a, on_b, admin)

        # The stream on B; a command given on A reaches it.
        async with open_stream(on_b, token) as stream:
            assert (await stream.next())["event"] == "manifest"
            assert (await stream.next())["event"] == "config"
            first = await _command(on_a, admin, device_id)
            event = await asyncio.wait_for(stream.next(), 10)
            assert event["event"] == "command" and first in event["data"]
            last_id = event["id"]
            # B dies with the stream open; two commands are given while the device is away.
            b.process.kill()
            b.process.wait()
            missed = [await _command(on_a, admin, device_id) for _ in range(2)]
            with pytest.raises((httpx.TransportError, EOFError)):
                await asyncio.wait_for(stream.next(), 10)

        # The device reconnects through nginx, which has only A left: nothing was lost.
        async with open_stream(lb, token, last_id) as resumed:
            replayed = [await asyncio.wait_for(resumed.next(), 10) for _ in missed]
        assert [e["event"] for e in replayed] == ["command", "command"]
        assert all(c in e["data"] for c, e in zip(missed, replayed, strict=True))
        heartbeat = await lb.post(
            "/api/v1/device/heartbeat",
            json={"metrics": METRICS},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert heartbeat.status_code == 200, heartbeat.text
        assert [c["id"] for c in heartbeat.json()["commands"]] == [first, *missed]


async def _put(client: httpx.AsyncClient, admin: dict[str, str], path: str, body: Any) -> None:
    r = await client.put(path, json=body, headers=admin)
    assert r.status_code in (200, 201), r.text


async def test_a_group_change_reaches_members_on_both_replicas_and_one_that_was_away(
    replicas: tuple[ServerProcess, ServerProcess, Proxy],
) -> None:
    """Members stream from either replica; the change is made on A. Each live stream's event
    names the ETag the manifest then has on the other replica, and a member whose stream
    was closed during the change replays it, exactly, from the other replica."""
    a, b, _ = replicas
    admin = _admin(a)
    async with _client(a.url) as on_a, _client(b.url) as on_b:
        png = io.BytesIO()
        Image.new("RGB", (8, 8), "blue").save(png, "PNG")
        r = await on_a.post("/api/v1/admin/media", content=png.getvalue(), headers=admin)
        assert r.status_code == 201, r.text
        item = {"id": "i", "type": "image", "asset": r.json()["sha256"]}
        await _put(on_a, admin, "/api/v1/admin/playlists/p", {"id": "p", "items": [item]})
        for layout in ("x", "y"):
            zone = {"id": "z", "w": 10, "h": 10, "playlist": "p"}
            await _put(
                on_a, admin, f"/api/v1/admin/layouts/{layout}", {"id": layout, "zones": [zone]}
            )
        await _put(on_a, admin, "/api/v1/admin/groups/g", {"name": "G"})
        await _put(on_a, admin, "/api/v1/admin/groups/g/content", {"default_layout": "x"})
        members = []
        for n in range(3):
            created = await _pairing(on_a, f"hw-member-{n}")
            claim = await on_a.post(
                "/api/v1/admin/pairings/claim",
                json={"code": created["code"], "name": f"member {n}"},
                headers=admin,
            )
            assert claim.status_code == 201, claim.text
            device_id = claim.json()["device_id"]
            r = await on_a.patch(
                f"/api/v1/admin/devices/{device_id}", json={"group": "g"}, headers=admin
            )
            assert r.status_code == 200, r.text
            paired = await on_b.get(
                f"/api/v1/pairings/{created['pairing_id']}",
                headers={"Authorization": f"Bearer {created['poll_token']}"},
            )
            members.append((device_id, paired.json()["device_token"]))

        async def manifest_etag(client: httpx.AsyncClient, token: str) -> str:
            r = await client.get(
                "/api/v1/device/manifest", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200, r.text
            etag: str = r.headers["etag"]
            return etag

        # The third member streams from B, sees a command, and is away during the change.
        away_id, away_token = members[2]
        async with open_stream(on_b, away_token) as stream:
            assert [(await stream.next())["event"] for _ in range(2)] == ["manifest", "config"]
            await _command(on_a, admin, away_id)
            last_id = (await asyncio.wait_for(stream.next(), 10))["id"]
        (_, token_a), (_, token_b) = members[:2]
        async with open_stream(on_a, token_a) as live_a, open_stream(on_b, token_b) as live_b:
            for stream in (live_a, live_b):
                assert [(await stream.next())["event"] for _ in range(2)] == ["manifest", "config"]
            await _put(on_a, admin, "/api/v1/admin/groups/g/content", {"default_layout": "y"})
            got_a = await asyncio.wait_for(live_a.next(), 10)
            got_b = await asyncio.wait_for(live_b.next(), 10)
        assert got_a["event"] == got_b["event"] == "manifest"
        assert json.loads(got_a["data"])["etag"] == await manifest_etag(on_b, token_a)
        assert json.loads(got_b["data"])["etag"] == await manifest_etag(on_a, token_b)
        async with open_stream(on_a, away_token, last_id) as resumed:
            replayed = await asyncio.wait_for(resumed.next(), 10)
        assert replayed["event"] == "manifest"
        assert json.loads(replayed["data"])["etag"] == await manifest_etag(on_b, away_token)
