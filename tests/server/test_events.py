"""SSE against a real uvicorn on 127.0.0.1: pings, ids, replay, replacement, presence races."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import RunningServer, run_in_thread
from server._state import ServerState
from tests.conftest import Backend
from tests.server.conftest import FakeClock, make_settings
from tests.server.server_process import server_process

TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture
def live(tmp_path: Path, backend: Backend) -> Iterator[RunningServer]:
    settings = make_settings(sse_ping_s=1.0, event_replay_size=4, **backend.settings())
    with run_in_thread(settings, tmp_path / "srv") as running:
        yield running


class Stream:
    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    async def next(self, *, comments: bool = False) -> dict[str, Any]:
        """The next event (or comment block when ``comments``), as a dict of its fields."""
        fields: dict[str, Any] = {}
        async for line in self._lines:
            if line == "":
                if fields and (comments or set(fields) != {"comment"}):
                    return fields
                fields = {}
                continue
            name, _, value = line.partition(":")
            key = name or "comment"
            fields[key] = value[1:] if value.startswith(" ") else value
        raise EOFError("stream ended")


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, token: str, last_event_id: str | None = None
) -> AsyncIterator[Stream]:
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with client.stream("GET", "/api/v1/device/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response.aiter_lines())


async def pair(
    client: httpx.AsyncClient, admin: dict[str, str], hw: str = "hw-1"
) -> tuple[str, str]:
    created = (await client.post("/api/v1/pairings", json={"hardware_id": hw})).json()
    claim = await client.post(
        "/api/v1/admin/pairings/claim", json={"code": created["code"], "name": hw}, headers=admin
    )
    paired = await client.get(
        f"/api/v1/pairings/{created['pairing_id']}",
        headers={"Authorization": f"Bearer {created['poll_token']}"},
    )
    return claim.json()["device_id"], paired.json()["device_token"]


async def command(
    client: httpx.AsyncClient, admin: dict[str, str], device_id: str, name: str = "identify"
) -> str:
    r = await client.post(
        f"/api/v1/admin/devices/{device_id}/commands", json={"name": name}, headers=admin
    )
    assert r.status_code == 201
    command_id: str = r.json()["id"]
    return command_id


@asynccontextmanager
async def session(live: RunningServer) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as client:
        yield client, {"Authorization": f"Bearer {live.admin_token}"}


async def test_stream_starts_with_manifest_hint_retry_and_pings(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        _, token = await pair(client, admin)
        async with open_stream(client, token) as stream:
            first = await stream.next()
            assert first["event"] == "manifest" and first["retry"] == "3000"
            manifest = await client.get(
                "/api/v1/device/manifest", headers={"Authorization": f"Bearer {token}"}
            )
            assert json.loads(first["data"]) == {"etag": manifest.headers["etag"]}
            config = await stream.next()
            assert config["event"] == "config" and json.loads(config["data"])["sse_ping_s"] == 1
            ping = await asyncio.wait_for(stream.next(comments=True), timeout=5)
            assert "comment" in ping


async def test_commands_arrive_with_increasing_ids(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        async with open_stream(client, token) as stream:
            await stream.next()
            await stream.next()
            sent = [await command(client, admin, device_id) for _ in range(3)]
            events = [await asyncio.wait_for(stream.next(), timeout=5) for _ in range(3)]
        assert [e["event"] for e in events] == ["command"] * 3
        assert [json.loads(e["data"])["id"] for e in events] == sent
        # Numbers in process; ``ms-seq`` stream ids in Redis: ordered part by part either way.
        ids = [tuple(int(part) for part in e["id"].split("-")) for e in events]
        assert ids == sorted(ids) and len(set(ids)) == 3


async def test_replay_from_last_event_id(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        async with open_stream(client, token) as stream:
            hint = await stream.next()
        missed = [await command(client, admin, device_id) for _ in range(2)]
        async with open_stream(client, token, last_event_id=hint["id"]) as stream:
            replayed = [await asyncio.wait_for(stream.next(), timeout=5) for _ in range(2)]
        assert [json.loads(e["data"])["id"] for e in replayed] == missed
        assert replayed[0]["retry"] == "3000"


async def test_replay_too_old_sends_a_manifest_hint(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        async with open_stream(client, token) as stream:
            hint = await stream.next()
        for _ in range(6):  # more than the replay buffer (4) holds
            await command(client, admin, device_id)
        async with open_stream(client, token, last_event_id=hint["id"]) as stream:
            first = await asyncio.wait_for(stream.next(), timeout=5)
        assert first["event"] == "manifest"
        async with open_stream(client, token, last_event_id="not-a-number") as stream:
            assert (await asyncio.wait_for(stream.next(), timeout=5))["event"] == "manifest"


async def test_second_stream_replaces_the_first(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        async with open_stream(client, token) as first:
            await first.next()
            await first.next()
            async with open_stream(client, token) as second:
                await second.next()
                await second.next()
                with pytest.raises(EOFError):
                    await asyncio.wait_for(first.next(), timeout=5)
                sent = await command(client, admin, device_id)
                event = await asyncio.wait_for(second.next(), timeout=5)
                assert json.loads(event["data"])["id"] == sent


async def test_disconnect_reconnect_race_never_flaps_offline(live: RunningServer) -> None:
    state: ServerState = live.app.state.signage
    seen: list[dict[str, Any]] = []
    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        async with client.stream("GET", "/api/v1/admin/events", headers=admin) as dashboard:

            async def read() -> None:
                async for line in dashboard.aiter_lines():
                    if line.startswith("data:"):
                        seen.append(json.loads(line[5:]))

            reader = asyncio.create_task(read())
            async with AsyncExitStack() as old_stack, AsyncExitStack() as stack:
                old = await old_stack.enter_async_context(open_stream(client, token))
                await old.next()
                # The device reconnects before its old connection has gone...
                new = await stack.enter_async_context(open_stream(client, token))
                await new.next()
                await new.next()
                # ...and the old connection closes late, after the new one is live.
                await old_stack.aclose()
                await asyncio.sleep(0.3)
                metrics = (await client.get("/metrics")).text
                assert "\nsignage_devices_online 1\n" in metrics
                listed = (
                    await client.get(f"/api/v1/admin/devices/{device_id}", headers=admin)
                ).json()
                assert listed["status"] == "online"
                sent = await command(client, admin, device_id)
                assert (
                    json.loads((await asyncio.wait_for(new.next(), timeout=5))["data"])["id"]
                    == sent
                )
            await asyncio.sleep(0.2)
            reader.cancel()
            with suppress(asyncio.CancelledError):
                await reader
    assert state.counters.values["transitions_offline"] == 0
    assert [e["status"] for e in seen if e.get("device_id") == device_id] == ["online"]


async def test_manifest_change_is_announced(live: RunningServer) -> None:
    from tests.server.conftest import PNG

    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        async with open_stream(client, token) as stream:
            await stream.next()
            await stream.next()
            sha = (await client.post("/api/v1/admin/media", content=PNG, headers=admin)).json()[
                "sha256"
            ]
            await client.put(
                "/api/v1/admin/playlists/p",
                json={"id": "p", "items": [{"id": "a", "type": "image", "asset": sha}]},
                headers=admin,
            )
            await client.put(
                "/api/v1/admin/layouts/l",
                json={"id": "l", "zones": [{"id": "z", "w": 100, "h": 100, "playlist": "p"}]},
                headers=admin,
            )
            await client.put(
                f"/api/v1/admin/devices/{device_id}/content",
                json={"default_layout": "l"},
                headers=admin,
            )
            event = await asyncio.wait_for(stream.next(), timeout=5)
            manifest = await client.get(
                "/api/v1/device/manifest", headers={"Authorization": f"Bearer {token}"}
            )
        assert event["event"] == "manifest"
        assert json.loads(event["data"])["etag"] == manifest.headers["etag"]


async def test_revocation_closes_the_open_stream(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        async with open_stream(client, token) as stream:
            await stream.next()
            await stream.next()
            revoked = await client.delete(f"/api/v1/admin/devices/{device_id}", headers=admin)
            assert revoked.status_code == 204
            with pytest.raises(EOFError):
                await asyncio.wait_for(stream.next(), timeout=5)


async def test_dashboard_hears_command_results(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        command_id = await command(client, admin, device_id, "screenshot")
        async with client.stream("GET", "/api/v1/admin/events", headers=admin) as dashboard:
            stream = Stream(dashboard.aiter_lines())
            hello = await stream.next(comments=True)
            assert hello["comment"] == "connected" and hello["retry"] == "3000"
            result = await client.post(
                f"/api/v1/device/commands/{command_id}/result",
                json={"ok": False, "message": "no display"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert result.status_code == 204
            event = await asyncio.wait_for(stream.next(), timeout=5)
        assert event["event"] == "command_result"
        data = json.loads(event["data"])
        assert data["command_id"] == command_id and data["ok"] is False
        assert data["message"] == "no display" and data["device_id"] == device_id


async def test_event_stream_connects_per_address_are_limited(tmp_path: Path) -> None:
    settings = make_settings(sse_ping_s=1.0, sse_connects_per_ip=3)
    with run_in_thread(settings, tmp_path / "limited") as running:
        async with session(running) as (client, admin):
            _, token = await pair(client, admin)
            for _ in range(3):
                async with open_stream(client, token) as stream:
                    await stream.next()
            refused = await client.get(
                "/api/v1/device/events", headers={"Authorization": f"Bearer {token}"}
            )
    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_connects"
    assert 0 < int(refused.headers["retry-after"]) <= 60


async def test_replay_resumes_after_the_last_event_seen_not_at_it(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        device_id, token = await pair(client, admin)
        async with open_stream(client, token) as stream:
            await stream.next()  # the manifest hint...
            await stream.next()  # ...and the configuration every stream opens with
            sent = [await command(client, admin, device_id) for _ in range(3)]
            seen = [await asyncio.wait_for(stream.next(), timeout=5) for _ in range(3)]
        assert [json.loads(e["data"])["id"] for e in seen] == sent
        # The device saw the second command last (the third was lost with the connection).
        async with open_stream(client, token, last_event_id=seen[1]["id"]) as stream:
            first = await asyncio.wait_for(stream.next(), timeout=5)
        assert first["event"] == "command" and first["id"] == seen[2]["id"]
        assert json.loads(first["data"])["id"] == sent[2], "the event seen is not sent again"


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(f"signage_{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


async def test_a_client_leaving_mid_stream_is_unsubscribed_and_its_silence_starts(
    tmp_path: Path, backend: Backend
) -> None:
    clock = FakeClock(time.time())
    settings = make_settings(sse_ping_s=30.0, **backend.settings())
    with run_in_thread(settings, tmp_path / "srv", clock=clock) as running:
        async with session(running) as (client, admin):
            device_id, token = await pair(client, admin)
            async with open_stream(client, token) as stream:
                await stream.next()
                await stream.next()
                assert await _metric(client, "sse_device_streams") == 1
                clock.advance(100.0)  # the stream held, silently, for a while
            # The client has gone without a word: noticed long before the next ping, and
            # its silence starts when the stream closed, not when it opened.
            last_seen = 0.0
            for _ in range(100):
                listed = await client.get(f"/api/v1/admin/devices/{device_id}", headers=admin)
                last_seen = dt.datetime.fromisoformat(listed.json()["last_seen"]).timestamp()
                if last_seen >= clock.now - 1.0:
                    break
                await asyncio.sleep(0.05)
            assert last_seen == pytest.approx(clock.now, abs=1.0)
            assert await _metric(client, "sse_device_streams") == 0


async def test_a_last_event_id_too_long_is_a_problem(live: RunningServer) -> None:
    async with session(live) as (client, admin):
        _, token = await pair(client, admin)
        refused = await client.get(
            "/api/v1/device/events",
            headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "1" * 65},
        )
    assert refused.status_code == 422  # the route's own validation answers it
    assert refused.headers["content-type"] == "application/problem+json"


async def test_streams_end_when_the_server_is_told_to_stop(tmp_path: Path) -> None:
    with server_process(tmp_path / "srv") as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=TIMEOUT) as client:
            admin = {"Authorization": f"Bearer {running.admin_token}"}
            _, token = await pair(client, admin)
            async with open_stream(client, token) as stream:
                await stream.next()
                await stream.next()
                stopped = time.monotonic()
                running.process.send_signal(signal.SIGTERM)
                with pytest.raises(EOFError):
                    await asyncio.wait_for(stream.next(), timeout=10)
            # uvicorn re-raises the signal once it has shut down: -15 is a clean stop.
            assert await asyncio.to_thread(running.process.wait, 10) in (0, -signal.SIGTERM)
        took = time.monotonic() - stopped
        assert running.process.stderr is not None
        log = running.process.stderr.read()
    # Well within uvicorn's graceful shutdown (5 s), which would otherwise wait for the stream.
    assert took < 4.0
    assert "graceful shutdown exceeded" not in log
