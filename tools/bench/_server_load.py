"""The load side of ``signage bench server``: runs in its own process, talks HTTP only (and reads
the servers' CPU time and memory by pid, and kills one replica, as an operator's bad day would).

Phases, each against the same servers: pair the devices through the real pairing API; rate
steps (``tools.bench._heartbeats``); hold the streams, read each server's memory, then time one
change to every stream; behind the documented nginx site, kill one replica and time until every
device it held is back and has the change it missed (``recovery``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import time
from dataclasses import asdict, dataclass
from typing import Any

from tools.bench._heartbeats import Step, Workers, rates
from tools.bench._http import RawPool, Response
from tools.bench._streams import Device, Holder, wait_connected, wait_for_etag
from tools.bench._usage import cpu_seconds, raise_fd_limit, rss_bytes

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
PAIRING_CONCURRENCY = 64
PAIR_ATTEMPTS = 6
SETTLE_S = 3.0  # after streams open or close, before memory is read
DELIVERY_TIMEOUT_S = 120.0


@dataclass
class FanOut:
    streams: int
    connected: int
    delivered: int
    fan_out_s: float  # from the admin's request to the last stream's event
    publish_s: float  # the admin request alone: rebuilding every manifest, then committing
    per_server: list[dict[str, Any]]  # streams held, RSS before/after, bytes per stream


@dataclass
class Recovery:
    streams: int  # held through the proxy
    connected: int
    on_killed: int  # of them, on the replica that was killed
    back: int  # of those, reconnected (a first line on a new stream)
    caught_up: int  # of those, with the change published while they were away
    resumed: int  # of those, resumed from Last-Event-ID (no gap: the event was replayed)
    lost_elsewhere: int  # devices on the other replicas that did not get the change
    back_s: float  # from the kill to the last device's new stream
    caught_up_s: float  # from the kill to the last device having the change
    load_cores: float  # the load process during recovery (is it the bench's limit?)
    server_cores: float  # the surviving replicas meanwhile
    proxy_cores: float  # nginx meanwhile (TLS handshakes of the reconnects)


class Api:
    """Raw requests to one server, for the many (pairing); ``admin`` headers included."""

    def __init__(self, url: str, admin_token: str, size: int) -> None:
        self.pool = RawPool(url, size)
        self.admin_token = admin_token

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        *,
        admin: bool = False,
    ) -> Response:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        request = self.pool.prepare(method, path, data, self.admin_token if admin else token)
        return await self.pool.request(request)

    async def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = await self.call(method, path, body, **kwargs)
        if response.status not in (200, 201):
            raise RuntimeError(f"{method} {path}: status {response.status} {response.body[:200]!r}")
        return response.json()


async def _pair_once(api: Api, hardware_id: str) -> str:
    created = await api.ok("POST", "/api/v1/pairings", {"hardware_id": hardware_id})
    claim = {"code": created["code"], "name": hardware_id}
    device_id = (await api.ok("POST", "/api/v1/admin/pairings/claim", claim, admin=True))[
        "device_id"
    ]
    await api.ok("PATCH", f"/api/v1/admin/devices/{device_id}", {"group": "bench"}, admin=True)
    paired = await api.ok(
        "GET", f"/api/v1/pairings/{created['pairing_id']}", token=created["poll_token"]
    )
    token: str = paired["device_token"]
    return token


async def _pair(api: Api, n: int, gate: asyncio.Semaphore) -> str:
    """One device through the pairing API (create, claim, group, poll); a failed attempt
    (refused connection, 429, a code that expired) starts over with a new hardware id."""
    async with gate:
        for attempt in range(PAIR_ATTEMPTS):
            try:
                return await _pair_once(api, f"bench-{n}-{attempt}")
            except (RuntimeError, KeyError):
                await asyncio.sleep(0.2 * 2**attempt)
        raise RuntimeError(f"device {n} could not be paired in {PAIR_ATTEMPTS} attempts")


async def pair_all(api: Api, count: int) -> tuple[list[str], float]:
    await api.ok("PUT", "/api/v1/admin/groups/bench", {"name": "bench"}, admin=True)
    began = time.perf_counter()
    gate = asyncio.Semaphore(PAIRING_CONCURRENCY)
    tokens = await asyncio.gather(*(_pair(api, n, gate) for n in range(count)))
    return list(tokens), time.perf_counter() - began


async def _content(api: Api) -> None:
    sha = (await api.ok("POST", "/api/v1/admin/media", PNG, admin=True))["sha256"]
    playlist = {"id": "bench", "items": [{"id": "i", "type": "image", "asset": sha}]}
    await api.ok("PUT", "/api/v1/admin/playlists/bench", playlist, admin=True)
    for layout in ("a", "b", "c"):
        zones = [{"id": "z", "w": 10, "h": 10, "playlist": "bench"}]
        await api.ok("PUT", f"/api/v1/admin/layouts/{layout}", {"id": layout, "zones": zones},
                     admin=True)  # fmt: skip


async def _publish(api: Api, layout: str, token: str) -> tuple[float, str]:
    """Change every device's manifest (one admin request); its duration and the new ETag."""
    began = time.perf_counter()
    await api.ok("PUT", "/api/v1/admin/groups/bench/content", {"default_layout": layout},
                 admin=True)  # fmt: skip
    took = time.perf_counter() - began
    etag = (await api.call("GET", "/api/v1/device/manifest", token=token)).headers["etag"]
    return took, etag


def _last(devices: list[Device], etag: str, since: float) -> tuple[int, float]:
    """How many devices had ``etag`` after ``since``, and the latest of those arrivals."""
    times = [min(t for t, e in d.manifests if e == etag) for d in devices
             if any(e == etag for _, e in d.manifests)]  # fmt: skip
    return len(times), (max(times) - since) if times else float("nan")


async def _fan_out(api: Api, servers: dict[str, Any], tokens: list[str], streams: int) -> FanOut:
    await api.ok("PUT", "/api/v1/admin/groups/bench/content", {"default_layout": "a"},
                 admin=True)  # fmt: skip
    urls, pids = servers["urls"], servers["pids"]
    await asyncio.sleep(SETTLE_S)
    before = [rss_bytes(pid) for pid in pids]
    holders = [Holder(RawPool(url, size=16)) for url in urls]
    devices = [Device(token) for token in tokens[:streams]]
    for n, device in enumerate(devices):
        holders[n % len(holders)].start(device)
    connected = await wait_connected(devices, 60 + streams / 50)
    for holder in holders:
        await holder.settled(DELIVERY_TIMEOUT_S)
    await asyncio.sleep(SETTLE_S)
    after = [rss_bytes(pid) for pid in pids]
    per_server = []
    for n, url in enumerate(urls):
        held = sum(1 for d in devices[n :: len(urls)] if d.connected.is_set())
        grown = after[n] - before[n]
        per_server.append({"url": url, "streams": held, "rss_before": before[n],
                           "rss_after": after[n],
                           "bytes_per_stream": grown / held if held else None})  # fmt: skip
    began = time.perf_counter()
    publish_s, etag = await _publish(api, "b", tokens[0])
    await wait_for_etag(devices, etag, DELIVERY_TIMEOUT_S)
    delivered, last = _last(devices, etag, began)
    for holder in holders:
        await holder.stop()
    return FanOut(streams, connected, delivered, last, publish_s, per_server)


async def _recovery(api: Api, servers: dict[str, Any], tokens: list[str], streams: int) -> Recovery:
    proxy = servers["proxy"]
    trust = ssl.create_default_context(cafile=proxy["cert"])
    holder = Holder(RawPool(proxy["url"], size=64, tls=trust))
    devices = [Device(token) for token in tokens[:streams]]
    for device in devices:
        holder.start(device)
    connected = await wait_connected(devices, 60 + streams / 50)
    await holder.settled(DELIVERY_TIMEOUT_S)
    await asyncio.sleep(SETTLE_S)
    killed_pid, killed_port = servers["pids"][-1], servers["ports"][-1]
    victims = [d for d in devices if d.upstream == f"127.0.0.1:{killed_port}"]
    others = [d for d in devices if d.upstream != f"127.0.0.1:{killed_port}"]
    opened = {id(d): len(d.opened_at) for d in devices}
    configs = {id(d): d.configs for d in devices}
    survivors = [pid for pid in servers["pids"] if pid != killed_pid]
    cpu = time.process_time(), cpu_seconds(survivors), cpu_seconds([proxy["pid"]])
    killed = time.perf_counter()
    os.kill(killed_pid, signal.SIGKILL)
    # The change is made at once, on a surviving replica: the killed one's devices are away.
    _, etag = await _publish(api, "c", tokens[0])
    await wait_for_etag(devices, etag, DELIVERY_TIMEOUT_S)
    ended = time.perf_counter()
    spent = time.process_time(), cpu_seconds(survivors), cpu_seconds([proxy["pid"]])
    load_cores, server_cores, proxy_cores = (
        (b - a) / (ended - killed) for a, b in zip(cpu, spent, strict=True)
    )
    back_times = [d.opened_at[opened[id(d)]] - killed for d in victims
                  if len(d.opened_at) > opened[id(d)]]  # fmt: skip
    caught_up, caught_up_s = _last(victims, etag, killed)
    resumed = sum(1 for d in victims if len(d.opened_at) > opened[id(d)]
                  and d.configs == configs[id(d)])  # fmt: skip
    reached_others, _ = _last(others, etag, killed)
    await holder.stop()
    return Recovery(
        streams=streams,
        connected=connected,
        on_killed=len(victims),
        back=len(back_times),
        caught_up=caught_up,
        resumed=resumed,
        lost_elsewhere=len(others) - reached_others,
        back_s=max(back_times) if back_times else float("nan"),
        caught_up_s=caught_up_s,
        load_cores=load_cores,
        server_cores=server_cores,
        proxy_cores=proxy_cores,
    )


def _steps(
    servers: dict[str, Any], tokens: list[str], api: Api, options: dict[str, Any]
) -> list[Step]:
    body = json.dumps({"metrics": METRICS}).encode()
    requests = [api.pool.post_json("/api/v1/device/heartbeat", body, t) for t in tokens]
    workers = Workers(options["load_processes"], servers["urls"], requests)
    engines = list(servers["engine_pids"].values())

    def run(rate: int) -> Step:
        step = workers.step(rate, options["step_s"], servers["pids"], engines)
        time.sleep(1.0)  # the queue of a step that did not hold drains before the next
        return step

    try:
        return sorted(rates(options["start_rate"], options["max_rate"], run),
                      key=lambda s: s.target_per_s)  # fmt: skip
    finally:
        workers.close()


async def _online(servers: dict[str, Any], admin_token: str, tokens: list[str]) -> None:
    """Every device online first, and known to every server: the steps measure steady
    heartbeats, not the offline→online transitions of a fleet's first minute, nor a server's
    first request from each device (its token looked up in the database once, then held in
    memory), which a fleet behind a proxy pays once per device and replica."""
    body = json.dumps({"metrics": METRICS}).encode()
    gate = asyncio.Semaphore(PAIRING_CONCURRENCY)
    for url in servers["urls"]:
        api = Api(url, admin_token, size=PAIRING_CONCURRENCY)

        async def beat(token: str, api: Api = api) -> None:
            async with gate:
                await api.pool.send(api.pool.post_json("/api/v1/device/heartbeat", body, token))

        await asyncio.gather(*(beat(t) for t in tokens))
        api.pool.close()


async def _run(
    servers: dict[str, Any], admin_token: str, options: dict[str, Any]
) -> dict[str, Any]:
    # The admin's and the pairing requests go to the first server; the devices' spread.
    api = Api(servers["urls"][0], admin_token, size=PAIRING_CONCURRENCY)
    tokens, pairing_s = await pair_all(api, options["devices"])
    await _content(api)
    await _online(servers, admin_token, tokens)
    await asyncio.sleep(SETTLE_S)
    steps = await asyncio.get_running_loop().run_in_executor(
        None, _steps, servers, tokens, api, options
    )
    streams = min(options["streams"], len(tokens))
    fan_out = await _fan_out(api, servers, tokens, streams)
    recovery = None
    if servers.get("proxy") is not None:
        recovery = asdict(await _recovery(api, servers, tokens, streams))
    api.pool.close()
    return {
        "devices": len(tokens),
        "pairing_s": pairing_s,
        "steps": [asdict(s) | {"held": s.held} for s in steps],
        "fan_out": asdict(fan_out),
        "recovery": recovery,
    }


def load_main(
    servers: dict[str, Any], admin_token: str, options: dict[str, Any], results: Any
) -> None:
    """Entry point of the load process. ``servers``: ``urls``, ``pids``, ``ports`` and
    ``engine_pids`` of the servers, the first one taking the admin's requests, and ``proxy``
    (``url``, ``cert``) in front of them or None; puts its result dict on ``results``."""
    import uvloop

    raise_fd_limit()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results.put(runner.run(_run(servers, admin_token, options)))
