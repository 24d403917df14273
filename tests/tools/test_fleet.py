"""The fleet simulator against a real in-process server, and its refusal of remote targets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import ConfigError, load_settings
from server import RunningServer, run_in_thread
from tools import main
from tools.sim._fleet import (
    FleetOptions,
    format_fleet_report,
    is_loopback_url,
    require_loopback,
    run_fleet,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = load_settings(
        None,
        env={},
        overrides={
            "data_dir": str(tmp_path),
            "server": {"heartbeat_interval_s": 5.0, "pairing_requests_per_ip": 100},
        },
    )
    running = run_in_thread(settings, tmp_path)
    try:
        yield running
    finally:
        running.stop()


async def test_fleet_pairs_heartbeats_and_hears_the_change(server: RunningServer) -> None:
    options = FleetOptions(
        devices=6,
        duration_s=7.0,
        server_url=server.url,
        admin_token=server.admin_token,
        seed=7,
    )
    report = await run_fleet(options)
    assert report["paired"] == 6
    assert report["errors"] == {}
    assert report["heartbeats"] >= 1
    assert report["heartbeat_latency_ms"]["count"] == report["heartbeats"]
    assert report["fanout"]["devices_reached"] == 6
    assert report["fanout"]["all_s"] is not None and report["fanout"]["all_s"] < 5
    text = format_fleet_report(report)
    assert "paired          6/6" in text
    assert "6/6 devices heard the manifest change" in text


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://127.3.2.1", True),
        ("http://[::1]:8080", True),
        ("http://localhost:8080", True),
        ("http://192.0.2.7:8080", False),
        ("https://example.invalid", False),
        ("not a url", False),
    ],
)
def test_loopback_detection(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_remote_targets_need_explicit_permission() -> None:
    with pytest.raises(ConfigError, match="--allow-remote"):
        require_loopback("http://192.0.2.7:8080", allow_remote=False)
    require_loopback("http://192.0.2.7:8080", allow_remote=True)


def test_command_refuses_a_remote_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIGNAGE_ADMIN_TOKEN", "x" * 32)
    assert main(["fleet", "--server", "http://192.0.2.7:8080", "--devices", "1"]) == 1
    assert "--allow-remote" in capsys.readouterr().err


def test_command_runs_a_fleet_against_a_local_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fleet.json"
    code = main(["fleet", "--devices", "3", "--duration", "3", "--seed", "1", "--json", str(out)])
    assert code == 0
    assert "paired          3/3" in capsys.readouterr().out
    assert json.loads(out.read_text())["fanout"]["devices_reached"] == 3
