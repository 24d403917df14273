"""What a simulation is asked to do (``SimOptions``), what it returns, and its settings."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import ConfigError, Settings, load_settings
from tools.sim._clock import Speed
from tools.sim._frames import FramePolicy
from tools.sim._scenario import Scenario
from zones import Display

OUTPUTS = ("timeline.jsonl", "summary.json", "frames", "devices", "server")
MARKER = ".signage-sim"


@dataclass(frozen=True)
class SimOptions:
    duration_s: float
    out: Path
    speed: Speed = 1.0
    devices: int = 1
    content: str | Path = "demo"
    content_base: Path | None = None
    server_url: str | None = None
    admin_token: str | None = None
    scenario: Scenario | None = None
    start: dt.datetime | None = None
    frames: FramePolicy = field(default_factory=lambda: FramePolicy("switch"))
    device_overrides: dict[str, Any] = field(default_factory=dict)
    server_overrides: dict[str, Any] = field(default_factory=dict)  # the in-process server's
    fps: float | None = None  # the players' animation frame rate; None: player.frame_rate_hz
    make_display: Callable[[int], Display] | None = None
    port: int = 0  # of the in-process server; 0: any free port
    adopt: bool = False  # devices paired by hand join the simulated group (the demo)
    # Clock exchanges over HTTP to the real server (with the scenario's network delays added)
    # instead of a simulated server; real clock only (``signage bench sync``).
    real_exchanges: bool = False
    first_device: int = 1  # devices are named sim-<first_device>, sim-<first_device + 1>, ...
    progress: Callable[[str], None] = lambda _message: None


@dataclass
class SimResult:
    summary: dict[str, Any]
    failures: list[str]
    out: Path


def prepare_out(out: Path) -> None:
    """Clear what a previous run left (only the simulator's own outputs).

    A folder that is not empty and was not written by the simulator is refused: ``--out ~``
    must not delete someone's ``~/frames``.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError([f"--out: {out} is a file, not a folder"])
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ConfigError(
            [f"--out: {out} is not empty and holds no earlier simulation: choose another folder"]
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by signage sim; its outputs are replaced on each run\n")
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def server_settings(out: Path, devices: int, server: dict[str, Any] | None = None) -> Settings:
    """The in-process server's settings; ``server`` overrides its [server] section."""
    # The whole simulated fleet pairs and connects from one address.
    section = {
        "pairing_requests_per_ip": max(10, devices * 4),
        "sse_connects_per_ip": max(300, devices * 20),
    } | (server or {})
    return load_settings(
        None, env={}, overrides={"data_dir": str(out / "server"), "server": section}
    )


def device_settings(options: SimOptions, name: str, root: Path, server_url: str) -> Settings:
    overrides: dict[str, Any] = {
        "data_dir": str(root),
        "sync": {"server_url": server_url, "device_name": name, "hardware_id": f"signage-{name}"},
        "display": {"driver": "dummy", "fullscreen": False},
    }
    for section, values in options.device_overrides.items():
        if isinstance(values, dict) and isinstance(overrides.get(section), dict):
            overrides[section] = overrides[section] | values
        else:
            overrides[section] = values
    return load_settings(None, env={}, overrides=overrides)
