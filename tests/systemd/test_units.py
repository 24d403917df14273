"""The unit files: what they promise, and systemd-analyze's verdict on them as installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.systemd.conftest import SYSTEMD_DIR, Installer

UNITS = ("signage-player.service", "signage-server.service")
TEMPLATE = "signage-server@.service"
INSTANCE = "signage-server@8080.service"  # the template, as --server-replicas enables it
HOST_UNITS = Path("/usr/lib/systemd/system")


def directives(unit: str) -> dict[str, dict[str, list[str]]]:
    """Section → key → values in order (systemd allows a key several times)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in (SYSTEMD_DIR / unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"{unit}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section[key]
    assert len(values) == 1, f"{key} appears {len(values)} times"
    return values[0]


def test_player_unit_is_a_watched_restarting_notify_service() -> None:
    unit = directives("signage-player.service")
    service = unit["Service"]
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert one(service, "WatchdogSec") == "30"
    assert one(service, "Restart") == "always"
    assert one(unit["Unit"], "StartLimitIntervalSec") == "0"
    assert one(service, "User") == "signage"
    assert one(service, "StateDirectory") == "signage"
    assert one(service, "ExecStart") == (
        "/opt/signage/venv/bin/signage play --config /etc/signage/player.toml"
    )
    assert "PYTHONFAULTHANDLER=1" in one(service, "Environment").split()
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


def test_player_takes_tty1_and_does_not_wait_for_the_network() -> None:
    unit = directives("signage-player.service")
    assert one(unit["Unit"], "Conflicts") == "getty@tty1.service"
    assert "getty@tty1.service" in one(unit["Unit"], "After").split()
    assert one(unit["Service"], "TTYPath") == "/dev/tty1"
    for key in ("After", "Wants", "Requires", "BindsTo"):
        for value in unit["Unit"].get(key, []):
            assert "network-online" not in value
            assert "time-sync" not in value
    # Blanking and the cursor are switched off on tty1 as root ("+"), best effort ("-").
    pre = one(unit["Service"], "ExecStartPre")
    assert pre.startswith("-+/bin/sh -c ")
    assert "setterm --blank 0" in pre
    assert "--cursor off" in pre


def test_player_hardening_keeps_devices_reachable() -> None:
    service = directives("signage-player.service")["Service"]
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "RestrictSUIDSGID",
        "LockPersonality",
    ):
        assert one(service, key) == "yes", key
    assert one(service, "ProtectSystem") == "strict"
    assert one(service, "CapabilityBoundingSet") == ""
    # Each of these would cut off /dev/dri, /dev/input or /dev/snd (KMSDRM, input, audio).
    for key in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock", "PrivateUsers"):
        assert key not in service, key
    assert "AF_NETLINK" in one(service, "RestrictAddressFamilies").split()


def test_server_unit_restarts_and_keeps_its_own_state() -> None:
    unit = directives("signage-server.service")
    service = unit["Service"]
    assert one(service, "Type") == "notify"  # READY=1 once serving (every worker, with several)
    assert one(service, "NotifyAccess") == "main"  # the supervisor, not its workers
    assert one(service, "TimeoutStartSec") == "infinity"  # never kill a migration half-way
    assert one(service, "Restart") == "always"
    assert one(unit["Unit"], "StartLimitIntervalSec") == "0"
    assert one(service, "StateDirectory") == "signage-server"
    assert one(service, "DynamicUser") == "yes"
    assert one(service, "ExecStart") == (
        "/opt/signage/venv/bin/signage server --config /etc/signage/server.toml"
    )
    assert one(service, "PrivateDevices") == "yes"


def staged_root(install: Installer, stage: Path) -> Path:
    """The tree install.sh writes, plus the host's stock units and stand-ins for the binaries."""
    assert install("--server", "http://10.0.0.5:8080").returncode == 0
    assert HOST_UNITS.is_dir(), "systemd is missing: ./dev installs it with apt"
    shutil.copytree(HOST_UNITS, stage / "usr/lib/systemd/system", symlinks=True)
    for unit in (*UNITS, TEMPLATE):
        for key, values in directives(unit)["Service"].items():
            if not key.startswith("Exec"):
                continue
            for value in values:
                binary = stage / value.lstrip("-+@:!").split()[0].lstrip("/")
                binary.parent.mkdir(parents=True, exist_ok=True)
                binary.write_text("#!/bin/sh\n")
                binary.chmod(0o755)
    return stage


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: ./dev installs systemd"
    return subprocess.run(
        ["systemd-analyze", f"--root={root}", "--man=no", "--no-pager", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_replica_template_is_the_server_unit_with_a_port_and_a_shared_user() -> None:
    single, template = directives("signage-server.service"), directives(TEMPLATE)
    service = template["Service"]
    assert one(service, "User") == one(service, "Group") == "signage-server"
    assert "DynamicUser" not in service  # the replicas share /var/lib/signage-server
    assert one(service, "StateDirectory") == "signage-server"
    assert one(service, "ExecStart") == (
        "/opt/signage/venv/bin/signage server --config /etc/signage/server.toml --port %i"
    )
    assert one(service, "SyslogIdentifier") == "signage-server-%i"
    assert "%i" in one(template["Unit"], "Description")
    # Everything else, hardening included, as the single server's unit has it.
    differ = {"DynamicUser", "User", "Group", "ExecStart", "SyslogIdentifier"}
    assert {k: v for k, v in single["Service"].items() if k not in differ} == {
        k: v for k, v in service.items() if k not in differ
    }
    assert template["Unit"].keys() == single["Unit"].keys()
    assert template["Install"] == single["Install"]


@pytest.mark.parametrize("unit", [*UNITS, INSTANCE])
def test_systemd_analyze_verify_is_silent(install: Installer, stage: Path, unit: str) -> None:
    root = staged_root(install, stage)
    done = analyze(root, "verify", unit)
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""  # unknown keys and bad values are warnings


def test_verify_would_catch_a_broken_unit(install: Installer, stage: Path) -> None:
    """The check above can fail: a typo and a missing binary are both reported."""
    root = staged_root(install, stage)
    path = root / "etc/systemd/system/signage-player.service"
    path.write_text(
        path.read_text()
        .replace("WatchdogSec=30", "WatchdogSecs=30")
        .replace("/opt/signage/venv/bin/signage play", "/opt/signage/venv/bin/missing play")
    )
    done = analyze(root, "verify", "signage-player.service")
    assert done.returncode != 0
    assert "Unknown key 'WatchdogSecs'" in done.stderr
    assert "/opt/signage/venv/bin/missing" in done.stderr


@pytest.mark.parametrize(("unit", "ceiling"), [(UNITS[0], 3.0), (UNITS[1], 2.0), (INSTANCE, 2.0)])
def test_exposure_stays_low(install: Installer, stage: Path, unit: str, ceiling: float) -> None:
    root = staged_root(install, stage)
    done = analyze(root, "--offline=yes", "security", unit)
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= ceiling
