"""Each fault of issue 7 against the real reference server on 127.0.0.1.

The server runs in a thread behind an ASGI layer that can inject errors (tests/sync/live_server.py);
the device is the real SyncAgent with a fake host standing in for cache and player.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from protocol import TextItem
from sync import (
    ImpressionQueue,
    ImpressionRecorder,
    RequestFailed,
    SyncAgent,
    SyncReport,
    open_database,
)
from tests.sync.device_fakes import FakeHost
from tests.sync.live_server import LiveServer, device_settings, publish, running, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server").start()
    yield server
    server.stop()


class Device:
    def __init__(self, live: LiveServer, state_dir: Path) -> None:
        self.live = live
        self.state_dir = state_dir
        self.host = FakeHost()
        self.http = httpx.AsyncClient()
        self.agent = SyncAgent(
            device_settings(), state_dir, self.host, http=self.http, server_url=live.url
        )
        self.device_id = ""

    def text(self) -> str | None:
        if not self.host.manifests or not self.host.manifests[-1].playlists:
            return None
        item = self.host.manifests[-1].playlists[0].items[0]
        return item.text if isinstance(item, TextItem) else None

    async def pair(self) -> str:
        await wait_for(lambda: len(self.host.pairing_codes) >= 1, what="a pairing code")
        code = self.host.pairing_codes[-1]
        with self.live.admin() as admin:
            self.device_id = await asyncio.to_thread(admin.claim, code, "Lobby")
        await wait_for(lambda: self.agent.watcher is not None, what="the paired session")
        return self.device_id

    async def publish(self, text: str) -> None:
        with self.live.admin() as admin:
            await asyncio.to_thread(publish, admin, self.device_id, text)

    async def close(self) -> None:
        await self.http.aclose()
        self.agent.close()


@pytest.fixture
async def device(live: LiveServer, tmp_path: Path) -> AsyncIterator[Device]:
    dev = Device(live, tmp_path / "device")
    async with running(dev.agent.run()):
        await dev.pair()
        await dev.publish("hello")
        await wait_for(lambda: dev.text() == "hello", what="first content")
        yield dev
    await dev.close()


async def test_pairs_and_plays_what_the_server_publishes(device: Device) -> None:
    credentials = device.state_dir / "credentials.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    await device.publish("second")
    await wait_for(lambda: device.text() == "second", what="the update over SSE")
    assert device.host.pairing_codes and len(device.host.pairing_codes) == 1
    assert device.agent.watcher is not None and not device.agent.watcher.polling


async def test_server_down_at_boot_plays_the_last_manifest(
    device: Device, live: LiveServer
) -> None:
    live.stop()
    rebooted = Device(live, device.state_dir)
    try:
        assert await rebooted.agent.restore()
        assert rebooted.text() == "hello"
        async with running(rebooted.agent.run()):
            await wait_for(
                lambda: rebooted.agent.watcher is not None and rebooted.agent.watcher.polling,
                what="polling fallback while the server is down",
            )
            assert rebooted.host.pairing_codes == [], "credentials kept: no pairing screen"
            assert rebooted.text() == "hello"
    finally:
        await rebooted.close()


async def test_server_killed_mid_play_recovers_without_a_reconnect_storm(
    device: Device, live: LiveServer
) -> None:
    watcher = device.agent.watcher
    assert watcher is not None
    shown = len(device.host.manifests)
    connects = watcher.connects
    live.stop()
    await wait_for(lambda: watcher.polling, what="polling fallback")
    failures_at_poll = watcher.failures
    await asyncio.sleep(1.5)
    # Full-jitter backoff capped at 0.5 s: a handful of attempts, not a tight loop.
    assert watcher.failures - failures_at_poll <= 20
    assert len(device.host.manifests) == shown, "no visible change while the server is away"
    assert device.host.pairing_codes == [device.host.pairing_codes[0]]
    live.start()
    await wait_for(lambda: watcher.connects > connects, what="the event stream back")
    assert not watcher.polling
    await device.publish("after the outage")
    await wait_for(lambda: device.text() == "after the outage", what="content after the outage")


async def test_503_with_retry_after_is_honoured(device: Device, live: LiveServer) -> None:
    watcher = device.agent.watcher
    assert watcher is not None
    live.faults.status["/device/events"] = (503, 1)
    live.faults.status["/device/manifest"] = (500, None)
    live.stop()
    live.start()  # drops the open stream; every reconnect now meets the 503
    await wait_for(lambda: live.faults.hits.get("/device/events", 0) >= 1, what="a 503")
    started = time.monotonic()
    first = live.faults.hits["/device/events"]
    await asyncio.sleep(2.5)
    elapsed = time.monotonic() - started
    # Without Retry-After the 0.5 s cap would allow ~10 attempts; with it, one a second.
    assert live.faults.hits["/device/events"] - first <= elapsed / 1.0 + 1
    assert device.text() == "hello", "the last good manifest keeps playing"
    live.faults.status.clear()
    await device.publish("recovered")
    await wait_for(lambda: device.text() == "recovered", what="recovery after 503s")


async def test_a_stream_that_stalls_without_closing_is_replaced(
    device: Device, live: LiveServer
) -> None:
    watcher = device.agent.watcher
    assert watcher is not None
    live.faults.stall_events = True
    live.stop()
    live.start()
    await wait_for(lambda: watcher.connects >= 2, what="a connection to the stalling stream")
    stalled_at = watcher.connects
    # Pings are swallowed; the read timeout (2.5 x the 1 s ping) must end the stream.
    await wait_for(lambda: watcher.connects > stalled_at, within_s=20, what="stall detected")
    live.faults.stall_events = False
    await wait_for(lambda: watcher.connects > stalled_at + 1, within_s=20, what="healthy stream")
    await device.publish("unstalled")
    await wait_for(lambda: device.text() == "unstalled", what="content after the stall")


async def test_401_goes_back_to_pairing_and_keeps_the_cache(
    device: Device, live: LiveServer
) -> None:
    live.faults.status["/device/impressions"] = (503, None)  # undelivered when revoked
    at = dt.datetime.now(dt.UTC)
    device.agent.recorder.record(layout="l1", zone="main", item="t1", event="start", at=at)
    await device.agent.recorder.drain()
    assert len(device.agent.recorder.queue) == 1
    with live.admin() as admin:
        await asyncio.to_thread(admin.revoke, device.device_id)
    await wait_for(lambda: len(device.host.pairing_codes) >= 2, what="the pairing screen again")
    assert not (device.state_dir / "credentials.json").exists()
    assert not (device.state_dir / "manifest.json").exists()
    assert device.host.cache_clears == 0
    assert len(device.agent.recorder.queue) == 0, "the revoked identity's queue is dropped"
    live.faults.status.clear()
    # A new claim makes it a device again.
    await device.pair()
    await device.publish("re-paired")
    await wait_for(lambda: device.text() == "re-paired", what="content after re-pairing")


async def test_malformed_manifest_is_rejected_and_reported(
    device: Device, live: LiveServer
) -> None:
    live.faults.corrupt_manifest = True
    await device.publish("never shown")
    report = device.agent.report
    await wait_for(lambda: report.manifest_error is not None, what="the rejection")
    assert device.text() == "hello", "the last good manifest is kept"
    assert device.agent.heartbeat is not None
    await device.agent.heartbeat.beat()
    with live.admin() as admin:
        devices = await asyncio.to_thread(admin.devices)
    metrics = next(d for d in devices if d["id"] == device.device_id)["metrics"]
    assert "rejected" in metrics["manifest_error"]
    live.faults.corrupt_manifest = False
    await device.publish("valid again")
    await wait_for(lambda: device.text() == "valid again", what="the next good manifest")
    assert report.manifest_error is None


async def test_heartbeat_429_carries_retry_after(device: Device) -> None:
    heartbeat = device.agent.heartbeat
    assert heartbeat is not None
    with pytest.raises(RequestFailed) as caught:
        for _ in range(5):
            await heartbeat.beat()
    assert caught.value.status == 429
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1


async def test_command_delivered_twice_runs_once(device: Device, live: LiveServer) -> None:
    live.faults.status["/result"] = (503, None)  # the server never hears back: it redelivers
    with live.admin() as admin:
        await asyncio.to_thread(admin.command, device.device_id, "reload")
    await wait_for(lambda: device.host.reloads == 1, what="the command over SSE")
    heartbeat, commands = device.agent.heartbeat, device.agent.commands
    assert heartbeat is not None and commands is not None
    await asyncio.sleep(2.6)  # past the server's heartbeat rate window
    response = await heartbeat.beat()
    assert [c.name for c in response.commands] == ["reload"], "redelivered by the heartbeat"
    await wait_for(lambda: commands._queue.empty(), what="the redelivery handled")
    await asyncio.sleep(0.1)
    assert device.host.reloads == 1
    live.faults.status.clear()
    assert await commands.deliver_pending()
    with live.admin() as admin:
        info = await asyncio.to_thread(
            admin.request, "GET", f"/api/v1/admin/devices/{device.device_id}/commands"
        )
    assert info[0]["result"]["ok"] is True


async def test_impressions_resent_after_a_lost_ack_are_counted_once(
    device: Device, live: LiveServer, tmp_path: Path
) -> None:
    """Vizora 7.3: an offline queue re-emitted without acks double counts; ours waits for acks."""
    recorder = ImpressionRecorder(ImpressionQueue(open_database(tmp_path / "pop")), SyncReport())
    now = dt.datetime.now(dt.UTC)
    for event in ("start", "end"):
        recorder.record(layout="l1", zone="main", item="t1", event=event, at=now)
    await recorder.drain()
    live.faults.lose_response.add("/device/impressions")
    with pytest.raises(RequestFailed):
        await recorder.upload_once(device.agent.client)
    assert len(recorder.queue) == 2, "nothing leaves the queue without an acknowledgement"
    live.faults.lose_response.clear()
    assert await recorder.upload_once(device.agent.client) == 2
    assert recorder.duplicates == 2, "the server had them already: counted once"
    assert len(recorder.queue) == 0


async def test_heartbeat_reports_what_the_device_is_doing(device: Device, live: LiveServer) -> None:
    assert device.agent.heartbeat is not None
    await device.agent.heartbeat.beat()
    with live.admin() as admin:
        devices = await asyncio.to_thread(admin.devices)
    info = next(d for d in devices if d["id"] == device.device_id)
    assert info["status"] == "online"
    metrics = info["metrics"]
    assert metrics["state"] == "playing" and metrics["layout"] == "l1"
    assert metrics["manifest_version"] == device.host.manifests[-1].version
    assert metrics["disk_total_bytes"] > 0 and 0 <= metrics["cpu_percent"] <= 100
    assert info["player_version"], "sent when pairing"


async def test_the_token_is_rotated_before_it_expires_with_no_gap(
    device: Device, live: LiveServer
) -> None:
    """Two thirds into the token's life the heartbeat says so; the device rotates, stores the
    new token first, keeps its stream and content, and the old token stops working."""
    credentials = device.state_dir / "credentials.json"
    old = device.agent.client.token
    assert old is not None
    heartbeat = device.agent.heartbeat
    assert heartbeat is not None
    live.skew_s = live.settings.server.device_token_ttl_s * 2 / 3 + 60
    await wait_for(lambda: device.agent.client.token != old, within_s=20, what="a rotation")
    new = device.agent.client.token
    assert new is not None and new in credentials.read_text()
    beats = heartbeat.beats
    await wait_for(lambda: heartbeat.beats > beats, within_s=20, what="a heartbeat with it")
    async with httpx.AsyncClient(base_url=live.url) as client:
        stale = await client.get(
            "/api/v1/device/manifest", headers={"Authorization": f"Bearer {old}"}
        )
    assert stale.status_code == 401
    await device.publish("after the rotation")
    await wait_for(lambda: device.text() == "after the rotation", what="content after it")
    assert len(device.host.pairing_codes) == 1, "never back to the pairing screen"
    assert heartbeat.failures == 0
