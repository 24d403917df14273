"""Real server processes while Redis, then PostgreSQL, goes away under them and comes back.

Requests that need the lost engine get a quick 503 problem+json with ``Retry-After``,
``/healthz`` says which engine is down, the log says so once (no traceback), held event streams
end, and once the engine is back the servers recover by themselves: streams resume with a
``manifest`` hint where events may be missing, a revocation made during the outage holds on
every replica, and changes made afterwards arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, update

from core import ServerConfig
from server._db import commands, devices
from server._outages import Outages
from server._redis_state import open_redis
from tests.server.conftest import Ctx
from tests.server.server_process import ServerProcess, free_port, logged_server_process
from tests.server.test_device import METRICS
from tests.server.test_events import Stream, command, open_stream, pair

TIMEOUT = httpx.Timeout(30.0)
QUICK_S = 10.0  # a refusal while an engine is down comes within this (socket timeouts: ~6 s)
RECOVER_S = 30.0


class Redis:
    """One redis-server on a port of its own, to kill, freeze and start again on that port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        program = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, "redis-server exited"
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()


@pytest.fixture
def redis_engine(tmp_path: Path) -> Iterator[Redis]:
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    redis = Redis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


class Postgres:
    """One PostgreSQL cluster on a port of its own, to stop and start again."""

    def __init__(self) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        assert versions, "PostgreSQL is not installed (Debian package postgresql)"
        self.bin = versions[-1].parent
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="signage-pg-loss-"))
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        self.port = free_port()
        self._run("initdb", "-D", "data", "-U", "postgres", "--auth=trust", "--no-sync")

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / program), *args],
            user=self.user,
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", "data", "-l", "log", "-w", "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", "data", "-m", "fast", "-w", "stop")

    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def close(self) -> None:
        subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", "data", "-m", "immediate", "-w", "stop"],
            user=self.user,
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres_engine() -> Iterator[Postgres]:
    postgres = Postgres()
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _beat(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=_bearer(token)
    )


def _unavailable(response: httpx.Response, engine: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] == f"{engine}_unavailable"


async def _refused_quickly(
    client: httpx.AsyncClient, engine: str, method: str, path: str, **kwargs: Any
) -> None:
    started = time.monotonic()
    response = await client.request(method, path, **kwargs)
    _unavailable(response, engine)
    assert time.monotonic() - started < QUICK_S


async def _healthy(*clients: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + RECOVER_S
    for client in clients:
        while (await client.get("/healthz")).status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover by itself"
            await asyncio.sleep(0.2)


async def _until_end(stream: Stream) -> list[dict[str, Any]]:
    """The events still delivered until the stream ends (it must, within ``QUICK_S``)."""
    seen = []
    with pytest.raises((httpx.TransportError, EOFError)):
        async with asyncio.timeout(QUICK_S):
            while True:
                seen.append(await stream.next())
    return seen


def _logged_once(log: Path, engine: str) -> None:
    text = log.read_text()
    assert "Traceback" not in text, text
    assert text.count(f"{engine} unavailable") == 1, text
    assert text.count(f"{engine} is back") == 1, text


def _stored_status(data: Path, device_id: str) -> str:
    """The status the database has (what the sweeper wrote), not what Redis says now."""
    with contextlib.closing(sqlite3.connect(data / "server.sqlite3")) as db:
        row = db.execute("SELECT status FROM devices WHERE id = ?", (device_id,)).fetchone()
    status: str = row[0]
    return status


async def test_redis_lost_and_back(tmp_path: Path, redis_engine: Redis) -> None:
    env = {
        "SIGNAGE_SERVER__REDIS_URL": redis_engine.url,
        "SIGNAGE_SERVER__SSE_PING_S": "1",
        # Offline after 10 s of silence (the shortest allowed): a device that falls silent
        # while Redis is away must still go offline once it is back.
        "SIGNAGE_SERVER__HEARTBEAT_INTERVAL_S": "5",
        "SIGNAGE_SERVER__OFFLINE_AFTER_MISSED": "2",
    }
    data = tmp_path / "data"
    logs = tmp_path / "a.log", tmp_path / "b.log"
    with (
        logged_server_process(data, logs[0], **env) as a,
        logged_server_process(data, logs[1], **env) as b,
    ):
        admin = _bearer(a.admin_token)
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=TIMEOUT) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=TIMEOUT) as on_b,
        ):
            device_id, token = await pair(on_a, admin, "hw-lobby")
            other_id, other_token = await pair(on_a, admin, "hw-hall")
            assert (await _beat(on_b, other_token)).status_code == 200  # its token cached on B
            silent_id, silent_token = await pair(on_a, admin, "hw-silent")
            assert (await _beat(on_a, silent_token)).status_code == 200
            async with open_stream(on_b, token) as stream:
                assert (await stream.next())["event"] == "manifest"
                assert (await stream.next())["event"] == "config"
                first = await command(on_a, admin, device_id)
                event = await asyncio.wait_for(stream.next(), QUICK_S)
                assert first in event["data"]
                last_id = event["id"]
                # A change just before the loss: delivered now, or made up for after.
                before = await command(on_a, admin, device_id)
                assert (await _beat(on_a, silent_token)).status_code == 200
                for _ in range(50):  # written within a second (presence writes are queued)
                    if _stored_status(data, silent_id) == "online":
                        break
                    await asyncio.sleep(0.1)
                assert _stored_status(data, silent_id) == "online"
                redis_engine.kill()  # well within its 10 s: nobody swept it yet
                for late in await _until_end(stream):
                    last_id = late.get("id", last_id)

            await _refused_quickly(on_b, "redis", "POST", "/api/v1/device/heartbeat",
                                   json={"metrics": METRICS}, headers=_bearer(token))  # fmt: skip
            # Heartbeats at once (sent to Redis together): each gets its own 503.
            started = time.monotonic()
            for refused in await asyncio.gather(
                *(_beat(on_b, t) for t in [token, other_token] * 4)
            ):
                _unavailable(refused, "redis")
            assert time.monotonic() - started < QUICK_S
            await _refused_quickly(on_b, "redis", "GET", "/healthz")
            assert 'signage_engine_up{engine="redis"} 0' in (await on_b.get("/metrics")).text
            await _refused_quickly(on_b, "redis", "GET", "/api/v1/device/events",
                                   headers=_bearer(token))  # fmt: skip
            redis_engine.start()  # empty: its streams are gone
            await _healthy(on_a, on_b)
            assert 'signage_engine_up{engine="redis"} 1' in (await on_b.get("/metrics")).text
            # The bus works again: a token revoked on A is refused on B, which had it cached.
            revoked = await on_a.delete(f"/api/v1/admin/devices/{other_id}", headers=admin)
            assert revoked.status_code == 204, revoked.text
            assert (await _beat(on_b, other_token)).status_code == 401
            async with open_stream(on_b, token, last_id) as resumed:
                hint = await asyncio.wait_for(resumed.next(), QUICK_S)
                assert hint["event"] == "manifest", hint  # events were lost: re-fetch
                beat = await _beat(on_b, token)
                assert beat.status_code == 200, beat.text
                assert {first, before} <= {c["id"] for c in beat.json()["commands"]}
                after = await command(on_a, admin, device_id)
                while True:
                    event = await asyncio.wait_for(resumed.next(), QUICK_S)
                    if after in event.get("data", ""):
                        break
            deadline = time.monotonic() + RECOVER_S
            while _stored_status(data, silent_id) != "offline":
                assert time.monotonic() < deadline, "a device silent since the loss stays online"
                await asyncio.sleep(0.5)
    for log in logs:
        _logged_once(log, "redis")


async def test_a_hung_redis_does_not_hang_requests(tmp_path: Path, redis_engine: Redis) -> None:
    env = {"SIGNAGE_SERVER__REDIS_URL": redis_engine.url, "SIGNAGE_SERVER__SSE_PING_S": "1"}
    log = tmp_path / "server.log"
    with logged_server_process(tmp_path / "data", log, **env) as server:
        admin = _bearer(server.admin_token)
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
            device_id, token = await pair(client, admin)
            redis_engine.signal(signal.SIGSTOP)
            try:
                await _refused_quickly(client, "redis", "POST", "/api/v1/device/heartbeat",
                                       json={"metrics": METRICS}, headers=_bearer(token))  # fmt: skip
                await _refused_quickly(client, "redis", "GET", "/healthz")
                # A command given while Redis hangs is refused before it is saved (it needs
                # the device's presence): the operator sees it failed, the device gets nothing.
                await _refused_quickly(client, "redis", "POST",
                                       f"/api/v1/admin/devices/{device_id}/commands",
                                       json={"name": "identify"}, headers=admin)  # fmt: skip
            finally:
                redis_engine.signal(signal.SIGCONT)
            await _healthy(client)
            beat = await _beat(client, token)
            assert beat.status_code == 200, beat.text
            assert beat.json()["commands"] == []
            async with open_stream(client, token) as stream:
                assert (await stream.next())["event"] == "manifest"
                assert (await stream.next())["event"] == "config"
                given = await command(client, admin, device_id)
                event = await asyncio.wait_for(stream.next(), QUICK_S)
                assert given in event["data"]
    _logged_once(log, "redis")


async def test_postgres_lost_and_back(
    tmp_path: Path, postgres_engine: Postgres, redis_engine: Redis
) -> None:
    env = {
        "SIGNAGE_SERVER__DATABASE_URL": postgres_engine.url(),
        "SIGNAGE_SERVER__REDIS_URL": redis_engine.url,
        "SIGNAGE_SERVER__SSE_PING_S": "1",
    }
    log = tmp_path / "server.log"
    server: ServerProcess
    with logged_server_process(tmp_path / "data", log, **env) as server:
        admin = _bearer(server.admin_token)
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
            device_id, token = await pair(client, admin)
            assert (await _beat(client, token)).status_code == 200
            postgres_engine.stop()
            await _refused_quickly(client, "database", "GET", "/healthz")
            assert 'signage_engine_up{engine="database"} 0' in (await client.get("/metrics")).text
            await _refused_quickly(client, "database", "GET", "/api/v1/admin/devices",
                                   headers=admin)  # fmt: skip
            await _refused_quickly(client, "database", "POST",
                                   f"/api/v1/admin/devices/{device_id}/commands",
                                   json={"name": "identify"}, headers=admin)  # fmt: skip
            postgres_engine.start()
            await _healthy(client)
            listed = await client.get("/api/v1/admin/devices", headers=admin)
            assert listed.status_code == 200, listed.text
            given = await command(client, admin, device_id)
            beat = await _beat(client, token)
            assert [c["id"] for c in beat.json()["commands"]] == [given]
    _logged_once(log, "database")


async def test_events_that_could_not_be_written_end_in_a_manifest_hint(redis_engine: Redis) -> None:
    """A change whose events or manifest did not reach a hung Redis: once Redis answers
    again, the device's stream ends and a reconnect with its last id gets a ``manifest`` hint
    (the stream may hold some of the events, not all), never a silently incomplete replay."""
    config = ServerConfig.model_validate({"event_replay_size": 8})
    outages = Outages()
    shared = await open_redis(redis_engine.url, config, lambda: 1_800_000_000.0, outages)
    try:
        held = await shared.hub.subscribe("dev", None)
        await shared.hub.publish("dev", "command", {"n": 1})
        seen = await asyncio.wait_for(held.subscriber.next(), QUICK_S)
        assert seen is not None
        redis_engine.signal(signal.SIGSTOP)
        try:
            with pytest.raises(Exception) as lost:
                await shared.hub.publish("dev", "manifest", {"etag": "2"})
            assert outages.noted(lost.value) == "redis"
        finally:
            redis_engine.signal(signal.SIGCONT)
        while await asyncio.wait_for(held.subscriber.next(), RECOVER_S) is not None:
            pass  # until the stream is closed
        for _ in range(100):
            if not outages.is_down("redis"):
                break
            await asyncio.sleep(0.05)
        assert not outages.is_down("redis")
        again = await shared.hub.subscribe("dev", seen.id)
        assert again.gap and again.replay == []
        assert await shared.manifests.get("dev") is None  # rebuilt from the database
    finally:
        await outages.close()
        await shared.close()


def _heard(heard: list[str], name: str, _payload: dict[str, str]) -> None:
    heard.append(name)


async def test_after_an_outage_every_replica_drops_what_it_may_have_missed(
    redis_engine: Redis,
) -> None:
    """A replica that lost Redis (a command timed out there only) tells the others once it is
    back: revocations and notices it sent meanwhile never reached them."""
    config = ServerConfig()
    heard: list[str] = []
    replicas = []
    for name in ("a", "b"):
        outages = Outages()
        shared = await open_redis(redis_engine.url, config, lambda: 1_800_000_000.0, outages)
        shared.bus.on("resync", functools.partial(_heard, heard, name))
        replicas.append((shared, outages))
    try:
        (_, a_outages), (_, b_outages) = replicas
        a_outages.down("redis")
        for _ in range(int(RECOVER_S / 0.05)):
            if "b" in heard:
                break
            await asyncio.sleep(0.05)
        assert "b" in heard and "a" in heard
        assert not a_outages.is_down("redis") and not b_outages.is_down("redis")
    finally:
        for shared, outages in replicas:
            await outages.close()
            await shared.close()


async def test_a_resync_drops_cached_tokens_and_rereads_pending_commands(ctx: Ctx) -> None:
    """What every replica does when told to resync after an outage: a token revoked meanwhile
    on another replica (the database has it; the notice never came) is refused, and a command
    given there meanwhile is found."""
    revoked_id, revoked = await ctx.pair("hw-1")
    device_id, token = await ctx.pair("hw-2")
    for bearer in (revoked, token):
        beat = await ctx.client.post(
            "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=_bearer(bearer)
        )
        assert beat.status_code == 200 and beat.json()["commands"] == []
    now = ctx.clock()
    async with ctx.state.writer.begin() as conn:  # what the other replica wrote
        await conn.execute(
            update(devices)
            .where(devices.c.id == revoked_id)
            .values(revoked_at=now, token_hash=None, previous_token_hash=None)
        )
        await conn.execute(
            insert(commands).values(
                id="cmd-elsewhere", device_id=device_id, name="identify", args={},
                created_at=now, expires_at=now + 600,
            )
        )  # fmt: skip
    await ctx.state.bus.send("resync", {})
    for _ in range(200):
        if not ctx.state.auth_cache and device_id in ctx.state.devices_with_commands:
            break
        await asyncio.sleep(0.02)
    ctx.clock.advance(ctx.state.heartbeat_interval())
    refused = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=_bearer(revoked)
    )
    assert refused.status_code == 401, refused.text
    beat = await ctx.client.post(
        "/api/v1/device/heartbeat", json={"metrics": METRICS}, headers=_bearer(token)
    )
    assert [c["id"] for c in beat.json()["commands"]] == ["cmd-elsewhere"]


async def test_an_engine_lost_as_a_stream_opens_is_a_quiet_503(
    ctx: Ctx, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis lost between the connect check and the subscription (which comes before the
    stream's headers): a 503 problem with ``Retry-After`` (the player reconnects later), no
    500, no traceback."""
    _, token = await ctx.pair()

    class Gone(Exception):
        pass

    async def lost(*_args: Any) -> Any:
        raise Gone("injected: the engine is gone")

    async def probe() -> bool:
        return False

    ctx.state.outages.register("redis", lambda e: isinstance(e, Gone), probe)
    monkeypatch.setattr(ctx.state.hub, "subscribe", lost)
    headers = _bearer(token)
    response = await ctx.client.get("/api/v1/device/events", headers=headers)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert ctx.state.outages.is_down("redis")
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]


async def test_a_busy_pool_is_refused_without_calling_the_engine_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """All connections in use is overload: 503 for that request, but no outage (no log line,
    no catching up afterwards); a refused connection, found under a group, is an outage."""
    outages = Outages()

    async def probe() -> bool:
        return False

    outages.register(
        "redis",
        lambda e: isinstance(e, ConnectionError),
        probe,
        busy=lambda e: str(e).startswith("No connection available"),
    )
    try:
        assert outages.noted(ConnectionError("No connection available.")) == "redis"
        assert not outages.is_down("redis") and not caplog.records
        assert outages.noted(ValueError("a bug")) is None
        lost = ExceptionGroup("stream", [ValueError("x"), ConnectionRefusedError("refused")])
        assert outages.noted(lost) == "redis"
        assert outages.is_down("redis")
        assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["redis unavailable"]
    finally:
        await outages.close()
