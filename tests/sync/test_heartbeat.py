"""Heartbeat: jitter, metrics over the interval, server time, interval changes, Retry-After."""

from __future__ import annotations

import datetime as dt
import json
from collections import namedtuple
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol import Command, QuarantinedItem
from sync import DeviceClient, HeartbeatLoop, HostSampler, SyncReport, jittered, read_temperature
from tests.sync.device_fakes import FakeHost

CpuTimes = namedtuple("CpuTimes", "user system idle iowait")
SERVER_TIME = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)


def test_jitter_stays_within_twenty_percent() -> None:
    assert jittered(30, lambda: 0.0) == pytest.approx(24.0)
    assert jittered(30, lambda: 1.0) == pytest.approx(36.0)
    assert jittered(30, lambda: 0.5) == pytest.approx(30.0)


def test_cpu_is_measured_over_the_interval_not_since_boot(tmp_path: Path) -> None:
    """Vizora 7.7: a lifetime average hides a device that is busy now."""
    # Since boot: 10 % busy. During the last interval: 90 % busy.
    readings = iter([CpuTimes(5, 5, 90, 0), CpuTimes(50, 50, 100, 0)])
    sampler = HostSampler(tmp_path, cpu_times=lambda: next(readings), temperature=lambda: None)
    sample = sampler.sample()
    assert sample.cpu_percent == pytest.approx(90.0)
    assert sample.temperature_c is None
    assert sample.disk_total_bytes > 0 and sample.uptime_s > 0


def test_temperature_from_a_sensor_or_the_thermal_zone(tmp_path: Path) -> None:
    Sensor = namedtuple("Sensor", "label current high critical")
    assert read_temperature(lambda: {"cpu_thermal": [Sensor("", 48.3, None, None)]}) == 48.3
    zone = tmp_path / "temp"
    zone.write_text("51234\n")
    assert read_temperature(dict, thermal_zone=zone) == pytest.approx(51.234)
    assert read_temperature(dict, thermal_zone=tmp_path / "none") is None


class Server:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.responses: list[httpx.Response] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        if self.responses:
            return self.responses.pop(0)
        return httpx.Response(
            200,
            json={
                "server_time": SERVER_TIME.isoformat(),
                "manifest_etag": '"e2"',
                "heartbeat_interval_s": 45,
                "commands": [{"id": "c1", "name": "reload"}],
            },
        )


def loop_for(server: Server, host: FakeHost, tmp_path: Path, report: SyncReport) -> HeartbeatLoop:
    client = DeviceClient(
        httpx.AsyncClient(transport=httpx.MockTransport(server)), "http://s.test", token="t" * 20
    )
    return HeartbeatLoop(
        client,
        host,
        HostSampler(tmp_path, temperature=lambda: 44.0),
        report,
        interval_s=30,
        player_version="0.1.0",
        on_commands=_collect,
        on_manifest_etag=hints.append,
        rng=lambda: 0.5,
    )


received: list[Command] = []
hints: list[str] = []


async def _collect(commands: list[Command]) -> None:
    received.extend(commands)


async def test_a_beat_reports_metrics_and_applies_the_answer(tmp_path: Path) -> None:
    received.clear()
    hints.clear()
    server, host = Server(), FakeHost()
    report = SyncReport(
        manifest_version=3, manifest_etag='"e1"', manifest_error="bad", impressions_dropped=4
    )
    loop = loop_for(server, host, tmp_path, report)
    await loop.beat()
    metrics = server.bodies[0]["metrics"]
    assert metrics["state"] == "playing"
    assert metrics["temperature_c"] == 44.0
    assert metrics["manifest_version"] == 3
    assert metrics["manifest_error"] == "bad"
    assert metrics["impressions_dropped"] == 4
    assert metrics["player_version"] == "0.1.0"
    assert metrics["power"] == {
        "wanted": "on",
        "reason": "schedule",
        "backend": "none",
        "display": "unknown",
        "error": None,
    }
    assert "interrupt" not in metrics, "left out while unused"
    assert host.server_times == [SERVER_TIME]
    assert loop.interval_s == 45
    assert [c.id for c in received] == ["c1"]
    assert hints == ['"e2"']


async def test_quarantined_items_are_reported_in_the_heartbeat(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    since = dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.UTC)
    host.quarantined = [
        QuarantinedItem(
            asset="a" * 64,
            zone="main",
            item="v1",
            since=since,
            until=since + dt.timedelta(days=1),
            reason="the player stopped abnormally while it was playing",
        )
    ]
    await loop_for(server, host, tmp_path, SyncReport()).beat()
    (entry,) = server.bodies[0]["metrics"]["quarantined"]
    assert entry["zone"] == "main" and entry["item"] == "v1" and entry["asset"] == "a" * 64
    assert entry["until"] == "2026-11-22T09:00:00Z"


async def test_retry_after_on_429_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeat 429: the next beat waits at least Retry-After, never a tight retry."""
    server, host = Server(), FakeHost()
    problem = {"title": "Too many", "status": 429, "code": "heartbeat_too_frequent"}
    server.responses.append(httpx.Response(429, json=problem, headers={"Retry-After": "90"}))
    loop = loop_for(server, host, tmp_path, SyncReport())
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 2:
            raise LookupError("stop")

    monkeypatch.setattr(loop, "_sleep", fake_sleep)
    with pytest.raises(LookupError):
        await loop.run()
    assert delays[0] == 90.0
    assert delays[1] == pytest.approx(45.0)  # the server's interval, jitter pinned at 0 %
    assert loop.beats == 1


async def test_a_failed_beat_waits_a_full_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, host = Server(), FakeHost()
    server.responses.append(httpx.Response(503))
    loop = loop_for(server, host, tmp_path, SyncReport())
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        raise LookupError("stop")

    monkeypatch.setattr(loop, "_sleep", fake_sleep)
    with pytest.raises(LookupError):
        await loop.run()
    assert delays == [pytest.approx(30.0)]
    assert loop.failures == 1


async def test_an_answer_the_protocol_does_not_allow_is_retried_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, host = Server(), FakeHost()
    server.responses.append(httpx.Response(200, json={"server_time": "not a time"}))
    loop = loop_for(server, host, tmp_path, SyncReport())
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 2:
            raise LookupError("stop")

    monkeypatch.setattr(loop, "_sleep", fake_sleep)
    with pytest.raises(LookupError):
        await loop.run()
    assert loop.failures == 0 and loop.beats == 1, "the second beat went through"
    assert delays[0] == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("refresh_at", "rotated"),
    [
        (SERVER_TIME + dt.timedelta(days=1), False),  # whatever the device's own clock says
        (SERVER_TIME, True),
        (None, False),
    ],
)
async def test_token_rotation_is_due_by_the_servers_time(
    tmp_path: Path, refresh_at: dt.datetime | None, rotated: bool
) -> None:
    server, host = Server(), FakeHost()
    body = {
        "server_time": SERVER_TIME.isoformat(),
        "manifest_etag": '"e2"',
        "heartbeat_interval_s": 45,
        "token_expires_at": (SERVER_TIME + dt.timedelta(days=30)).isoformat(),
    }
    if refresh_at is not None:
        body["token_refresh_at"] = refresh_at.isoformat()
    server.responses.append(httpx.Response(200, json=body))
    due: list[bool] = []

    async def on_token_due() -> None:
        due.append(True)

    loop = loop_for(server, host, tmp_path, SyncReport())
    loop.on_token_due = on_token_due
    await loop.beat()
    assert due == ([True] if rotated else [])
