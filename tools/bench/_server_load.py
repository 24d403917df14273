"""The load side of ``signage bench server``: runs in its own process, talks HTTP only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from tools.bench._http import RawPool

METRICS = {
    "cpu_percent": 1.0,
    "memory_percent": 10.0,
    "memory_used_bytes": 1,
    "disk_free_bytes": 1,
    "disk_total_bytes": 2,
    "uptime_s": 1.0,
    "player_version": "bench",
    "state": "playing",
}
PNG = bytes.fromhex(  # a 1x1 red picture (the server decodes what it stores)
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f00050001ff56c72f0d0000000049454e44ae426082"
)


@dataclass
class Step:
    target_per_s: int
    sent: int
    ok: int
    rejected: int
    errors: int
    achieved_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass
class FanOut:
    streams: int
    connected: int
    delivered: int
    fan_out_s: float  # from the admin's request to the last stream's event
    publish_s: float  # the admin request alone: rebuilding every manifest, then committing


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    del soft


async def _pair(client: httpx.AsyncClient, admin: dict[str, str], n: int) -> tuple[str, str]:
    for attempt in range(5):
        try:
            return await _pair_once(client, admin, f"{n}-{attempt}")
        except (httpx.TransportError, KeyError):
            await asyncio.sleep(0.5)
    return await _pair_once(client, admin, f"{n}-last")


async def _pair_once(client: httpx.AsyncClient, admin: dict[str, str], n: str) -> tuple[str, str]:
    created = (await client.post("/api/v1/pairings", json={"hardware_id": f"bench-{n}"})).json()
    claim = await client.post(
        "/api/v1/admin/pairings/claim",
        json={"code": created["code"], "name": f"bench {n}"},
        headers=admin,
    )
    await client.patch(
        f"/api/v1/admin/devices/{claim.json()['device_id']}", json={"group": "bench"}, headers=admin
    )
    paired = await client.get(
        f"/api/v1/pairings/{created['pairing_id']}",
        headers={"Authorization": f"Bearer {created['poll_token']}"},
    )
    body = paired.json()
    return body["device_id"], body["device_token"]


async def _pair_all(client: httpx.AsyncClient, admin: dict[str, str], count: int) -> list[str]:
    await client.put("/api/v1/admin/groups/bench", json={"name": "bench"}, headers=admin)
    tokens: list[str] = []
    for start in range(0, count, 50):
        batch = range(start, min(count, start + 50))
        tokens += [t for _, t in await asyncio.gather(*(_pair(client, admin, n) for n in batch))]
    return tokens


async def _one_heartbeat(pool: RawPool, request: bytes, due: float, latencies: list[float]) -> int:
    status = await pool.send(request)
    # From when it was due, not when it left: a queue in front of the server counts too
    # (no coordinated omission).
    latencies.append(time.perf_counter() - due)
    return status


async def _step(pool: RawPool, requests: list[bytes], rate: int, step_s: float) -> Step:
    """Open-loop: send ``rate`` heartbeats/s for ``step_s`` seconds, whatever the replies."""
    latencies: list[float] = []
    tasks = []
    total = int(rate * step_s)
    began = time.perf_counter()
    for i in range(total):
        due = began + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        request = requests[i % len(requests)]
        tasks.append(asyncio.create_task(_one_heartbeat(pool, request, due, latencies)))
    statuses = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    ok = statuses.count(200)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return Step(
        target_per_s=rate,
        sent=total,
        ok=ok,
        rejected=statuses.count(429),
        errors=sum(1 for s in statuses if s not in (200, 429)),
        achieved_per_s=ok / elapsed,
        p50_ms=cuts[49] * 1000,
        p99_ms=cuts[98] * 1000,
    )


async def _stream(
    pool: RawPool, token: str, ready: asyncio.Event, got: list[float], count: list[int]
) -> None:
    """One device's event stream over a raw socket (httpx would cost more than the server)."""
    connected = False
    async for line in pool.stream_lines("/api/v1/device/events", token):
        name = line.removeprefix(b"event:").strip() if line.startswith(b"event:") else None
        if name == b"config" and not connected:  # the manifest hint, then the config
            connected = True
            count[0] += 1
            if count[0] == count[1]:
                ready.set()
        elif name == b"manifest" and connected:
            got.append(time.perf_counter())
            return


async def _fan_out(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: list[str], streams: int
) -> FanOut:
    sha = (await client.post("/api/v1/admin/media", content=PNG, headers=admin)).json()["sha256"]
    await client.put(
        "/api/v1/admin/playlists/bench",
        json={"id": "bench", "items": [{"id": "i", "type": "image", "asset": sha}]},
        headers=admin,
    )
    for layout in ("a", "b"):
        await client.put(
            f"/api/v1/admin/layouts/{layout}",
            json={"id": layout, "zones": [{"id": "z", "w": 10, "h": 10, "playlist": "bench"}]},
            headers=admin,
        )
    ready = asyncio.Event()
    got: list[float] = []
    count = [0, streams]
    pool = RawPool(str(client.base_url), size=streams)
    tasks = [asyncio.create_task(_stream(pool, t, ready, got, count)) for t in tokens[:streams]]
    with contextlib.suppress(TimeoutError):
        # Streams that never connect are reported as such (connected < streams).
        await asyncio.wait_for(ready.wait(), timeout=120)
    connected = count[0]
    began = time.perf_counter()
    await client.put(
        "/api/v1/admin/groups/bench/content",
        json={"default_layout": "b"},
        headers=admin,
        timeout=120,
    )
    published = time.perf_counter()
    _, pending = await asyncio.wait(tasks, timeout=60)
    for task in pending:
        task.cancel()
    last = (max(got) - began) if got else float("nan")
    return FanOut(streams, connected, len(got), last, published - began)


async def _run(url: str, admin_token: str, options: dict[str, Any]) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {admin_token}"}
    limits = httpx.Limits(max_connections=options["streams"] + 200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=httpx.Timeout(30.0)
    ) as client:
        tokens = await _pair_all(client, admin, options["devices"])
        pool = RawPool(url, size=256)
        body = json.dumps({"metrics": METRICS}).encode()
        requests = [pool.post_json("/api/v1/device/heartbeat", body, t) for t in tokens]
        # Bring every device online first: the steps measure steady heartbeats, not the
        # offline→online transitions of a fleet's first minute.
        for start in range(0, len(requests), 100):
            await asyncio.gather(*(pool.send(r) for r in requests[start : start + 100]))
        await asyncio.sleep(3.0)
        steps = []
        rate = 100
        while rate <= options["max_rate"]:
            steps.append(await _step(pool, requests, rate, options["step_s"]))
            await asyncio.sleep(1.0)
            rate *= 2
        pool.close()
        fan_out = await _fan_out(client, admin, tokens, min(options["streams"], len(tokens)))
    return {"steps": [asdict(s) for s in steps], "fan_out": asdict(fan_out)}


def load_main(url: str, admin_token: str, options: dict[str, Any], results: Any) -> None:
    """Entry point of the load process; puts its result dict on ``results``."""
    _raise_fd_limit()
    results.put(asyncio.run(_run(url, admin_token, options)))
