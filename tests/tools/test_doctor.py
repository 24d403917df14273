"""``signage doctor``: every check against injected environments, and the command's verdict."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from core import Settings, load_settings
from tools import main
from tools.cli._checks import (
    Finding,
    Probe,
    Status,
    bundled_font_dir,
    check_clock,
    check_credentials,
    check_disk,
    check_display,
    check_fonts,
    check_libmpv,
    check_power,
    check_server,
    check_service,
    load_libmpv,
    run_checks,
)
from tools.cli._doctor import print_findings

SERVER = "http://signage.test:8080"
GIB = 1024**3


def settings(**sections: dict[str, object]) -> Settings:
    return load_settings(None, env={}, overrides=sections)


def probe(tmp_path: Path, **changes: object) -> Probe:
    """A machine with nothing: no display, no socket, an empty state directory."""
    values: dict[str, object] = {
        "settings": settings(sync={"server_url": SERVER}),
        "state_dir": tmp_path / "state",
        "env": {},
        "dri_dir": tmp_path / "dri",
        "timesync_flag": tmp_path / "synchronized",
        "font_dir": tmp_path / "fonts",
        "run": lambda argv: (127, ""),
        "access": lambda path, mode: True,
        "disk_usage": lambda path: (64 * GIB, 32 * GIB, 32 * GIB),
    }
    values.update(changes)
    return Probe(**values)  # type: ignore[arg-type]


# --- display ---


def test_display_kmsdrm_when_a_card_is_usable(tmp_path: Path) -> None:
    (tmp_path / "dri").mkdir()
    (tmp_path / "dri/card1").touch()
    finding = check_display(probe(tmp_path))
    assert finding.status is Status.OK
    assert "KMSDRM" in finding.detail
    assert "card1" in finding.detail


def test_display_fails_without_any_output(tmp_path: Path) -> None:
    finding = check_display(probe(tmp_path))
    assert finding.status is Status.FAIL
    assert finding.fix is not None
    assert "vc4-kms-v3d" in finding.fix


def test_display_fails_when_the_card_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "dri").mkdir()
    (tmp_path / "dri/card0").touch()
    finding = check_display(probe(tmp_path, access=lambda path, mode: False))
    assert finding.status is Status.FAIL
    assert finding.fix is not None
    assert "video" in finding.fix
    assert "render" in finding.fix


def test_display_sessions_and_drivers(tmp_path: Path) -> None:
    wayland = check_display(probe(tmp_path, env={"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}))
    assert (wayland.status, wayland.detail) == (Status.OK, "Wayland session wayland-0")
    x11 = check_display(probe(tmp_path, env={"DISPLAY": ":0"}))
    assert (x11.status, x11.detail) == (Status.OK, "X11 display :0")
    forced_x11 = probe(tmp_path, settings=settings(display={"driver": "x11"}))
    assert check_display(forced_x11).status is Status.FAIL
    dummy = probe(tmp_path, settings=settings(display={"driver": "dummy"}), env={"DISPLAY": ":0"})
    assert check_display(dummy).status is Status.WARN


# --- libmpv and fonts ---


def test_libmpv_missing_says_which_package(tmp_path: Path) -> None:
    def missing() -> str:
        raise OSError("libmpv.so.2: cannot open shared object file")

    finding = check_libmpv(probe(tmp_path, load_libmpv=missing))
    assert finding.status is Status.FAIL
    assert finding.fix == "sudo apt install libmpv2"
    assert "cannot open shared object" in finding.detail


def test_libmpv_loads_on_this_machine(tmp_path: Path) -> None:
    assert "mpv" in load_libmpv()  # ./dev installs libmpv2
    assert check_libmpv(probe(tmp_path, load_libmpv=load_libmpv)).status is Status.OK


def test_the_bundled_fonts_are_found(tmp_path: Path) -> None:
    directory = bundled_font_dir()
    assert directory is not None
    finding = check_fonts(probe(tmp_path, font_dir=directory))
    assert finding.status is Status.OK, finding.detail
    assert ".ttf" in finding.detail


def test_fonts_missing_or_not_fonts(tmp_path: Path) -> None:
    assert check_fonts(probe(tmp_path, font_dir=None)).status is Status.FAIL
    assert check_fonts(probe(tmp_path)).status is Status.FAIL  # directory absent
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    assert check_fonts(probe(tmp_path)).status is Status.FAIL  # empty
    (fonts / "Broken.ttf").write_bytes(b"<html>404</html>")
    broken = check_fonts(probe(tmp_path))
    assert broken.status is Status.FAIL
    assert "Broken.ttf" in broken.detail
    (fonts / "Real.ttf").write_bytes(b"\x00\x01\x00\x00" + bytes(60))
    good = check_fonts(probe(tmp_path))
    assert (good.status, good.detail.split(" in ")[0]) == (Status.OK, "Real.ttf")


# --- disk ---


@pytest.mark.parametrize(
    ("free", "status"),
    [(100 * 1024**2, Status.FAIL), (600 * 1024**2, Status.WARN), (5 * GIB, Status.OK)],
)
def test_disk_space_of_the_state_dir(tmp_path: Path, free: int, status: Status) -> None:
    measured: list[Path] = []

    def usage(path: Path) -> tuple[int, int, int]:
        measured.append(path)
        return (8 * GIB, 8 * GIB - free, free)

    finding = check_disk(probe(tmp_path, disk_usage=usage))
    assert finding.status is status
    assert measured == [tmp_path]  # the state dir does not exist yet: its parent is measured
    assert "not created yet" in finding.detail


def test_disk_warning_follows_a_small_cache_budget(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    small_budget = settings(cache={"max_bytes": 300 * 1024**2})
    usage = lambda path: (GIB, 0, 400 * 1024**2)  # noqa: E731
    assert check_disk(probe(tmp_path, disk_usage=usage)).status is Status.WARN
    finding = check_disk(probe(tmp_path, disk_usage=usage, settings=small_budget))
    assert finding.status is Status.OK


# --- clock ---


def timedatectl(output: str, code: int = 0) -> object:
    def run(argv: Sequence[str]) -> tuple[int, str]:
        assert argv[0] == "timedatectl"
        return code, output

    return run


def test_clock_synchronized_by_timesyncd(tmp_path: Path) -> None:
    (tmp_path / "synchronized").touch()
    assert check_clock(probe(tmp_path)).status is Status.OK


@pytest.mark.parametrize(
    ("output", "code", "status"),
    [
        ("NTP=yes\nNTPSynchronized=yes\n", 0, Status.OK),
        ("NTP=yes\nNTPSynchronized=no\n", 0, Status.WARN),
        ("NTP=no\nNTPSynchronized=no\n", 0, Status.FAIL),
        ("", 127, Status.WARN),
        ("System has not been booted with systemd\n", 1, Status.WARN),
    ],
)
def test_clock_from_timedatectl(tmp_path: Path, output: str, code: int, status: Status) -> None:
    finding = check_clock(probe(tmp_path, run=timedatectl(output, code)))
    assert finding.status is status
    if status is Status.FAIL:
        assert finding.fix == "sudo timedatectl set-ntp true"


# --- server ---


def serving(status: int, *, date: float | None = None, seen: list[str] | None = None) -> object:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(str(request.url))
        headers = {"date": formatdate(date, usegmt=True)} if date is not None else {}
        return httpx.Response(status, json={"status": "ok"}, headers=headers)

    return httpx.MockTransport(handler)


def test_server_healthy(tmp_path: Path) -> None:
    seen: list[str] = []
    transport = serving(200, date=time.time(), seen=seen)
    finding = check_server(probe(tmp_path, transport=transport))
    assert finding.status is Status.OK, finding.detail
    assert seen == [f"{SERVER}/healthz"]


def test_server_under_a_path_prefix(tmp_path: Path) -> None:
    seen: list[str] = []
    config = settings(sync={"server_url": "https://example.org/signage/"})
    check_server(probe(tmp_path, settings=config, transport=serving(200, seen=seen)))
    assert seen == ["https://example.org/signage/healthz"]


def test_server_unhealthy_unreachable_or_unset(tmp_path: Path) -> None:
    assert check_server(probe(tmp_path, transport=serving(503))).status is Status.FAIL

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    refused = check_server(probe(tmp_path, transport=httpx.MockTransport(refuse)))
    assert refused.status is Status.FAIL
    assert "Connection refused" in refused.detail
    unset = check_server(probe(tmp_path, settings=settings()))
    assert unset.status is Status.FAIL
    assert unset.fix is not None
    assert "--server" in unset.fix


def test_server_of_a_player_paired_with_dash_dash_server(tmp_path: Path) -> None:
    """`signage play --server URL` pairs without writing sync.server_url: the doctor reads the
    server from the stored credentials."""
    write_credentials(tmp_path, {**GOOD, "server_url": "http://paired.test:8080"})
    seen: list[str] = []
    unset = settings()
    finding = check_server(probe(tmp_path, settings=unset, transport=serving(200, seen=seen)))
    assert finding.status is Status.OK, finding.detail
    assert seen == ["http://paired.test:8080/healthz"]
    assert "credentials.json" in finding.detail
    credentials = check_credentials(probe(tmp_path, settings=unset))
    assert credentials.status is Status.OK


def test_server_reveals_a_clock_far_off(tmp_path: Path) -> None:
    now = 1_800_000_000.0  # whole seconds: the Date header has no fractions
    transport = serving(200, date=now - 3600)
    finding = check_server(probe(tmp_path, transport=transport, wall_clock=lambda: now))
    assert finding.status is Status.WARN
    assert "+3600 s off" in finding.detail


# --- credentials ---


def write_credentials(tmp_path: Path, content: object, mode: int = 0o600) -> Path:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    path = state / "credentials.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    path.chmod(mode)
    return path


GOOD = {"server_url": SERVER, "device_id": "dev-42", "device_token": "s3cret-token-value"}


def test_credentials_present_and_private(tmp_path: Path) -> None:
    write_credentials(tmp_path, GOOD)
    finding = check_credentials(probe(tmp_path))
    assert finding.status is Status.OK
    assert "dev-42" in finding.detail
    assert "s3cret" not in repr(finding)


def test_credentials_absent_means_not_paired(tmp_path: Path) -> None:
    finding = check_credentials(probe(tmp_path))
    assert finding.status is Status.WARN
    assert "pairing code" in finding.detail


def test_credentials_readable_by_others(tmp_path: Path) -> None:
    path = write_credentials(tmp_path, GOOD, mode=0o644)
    finding = check_credentials(probe(tmp_path))
    assert finding.status is Status.FAIL
    assert finding.fix == f"sudo chmod 600 {path}"
    assert "s3cret" not in repr(finding)


@pytest.mark.parametrize(
    "content", ["{not json", [], {"device_id": "dev-42"}, {**GOOD, "device_token": ""}]
)
def test_credentials_damaged(tmp_path: Path, content: object) -> None:
    write_credentials(tmp_path, content)
    finding = check_credentials(probe(tmp_path))
    assert finding.status is Status.FAIL
    assert "damaged" in finding.detail


def test_credentials_for_another_server(tmp_path: Path) -> None:
    write_credentials(tmp_path, {**GOOD, "server_url": "http://old.test"})
    finding = check_credentials(probe(tmp_path))
    assert finding.status is Status.WARN
    assert "http://old.test" in finding.detail


def test_credentials_unreadable(tmp_path: Path) -> None:
    (tmp_path / "state/credentials.json").mkdir(parents=True)
    assert check_credentials(probe(tmp_path)).status is Status.WARN


# --- the service ---


def systemctl(properties: str, code: int = 0) -> object:
    def run(argv: Sequence[str]) -> tuple[int, str]:
        assert argv[:3] == ["systemctl", "show", "signage-player.service"]
        return code, properties

    return run


@pytest.mark.parametrize(
    ("properties", "code", "status"),
    [
        ("LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=0\n", 0, Status.OK),
        ("LoadState=loaded\nActiveState=active\nSubState=running\nNRestarts=7\n", 0, Status.WARN),
        ("LoadState=loaded\nActiveState=activating\nSubState=start\nNRestarts=0\n", 0, Status.WARN),
        (
            "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=9\n",
            0,
            Status.FAIL,
        ),
        ("LoadState=loaded\nActiveState=failed\nSubState=failed\nNRestarts=2\n", 0, Status.FAIL),
        ("LoadState=loaded\nActiveState=inactive\nSubState=dead\nNRestarts=0\n", 0, Status.FAIL),
        ("LoadState=not-found\nActiveState=inactive\n", 0, Status.WARN),
        ("", 1, Status.WARN),
    ],
)
def test_service_state(tmp_path: Path, properties: str, code: int, status: Status) -> None:
    finding = check_service(probe(tmp_path, run=systemctl(properties, code)))
    assert finding.status is status, finding
    if status is Status.FAIL:
        assert finding.fix is not None
        assert "journalctl -u signage-player" in finding.fix


# --- all together ---


def test_a_crashing_check_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    def broken(path: Path) -> tuple[int, int, int]:
        raise RuntimeError("statvfs exploded")

    findings = run_checks(probe(tmp_path, disk_usage=broken, transport=serving(200)))
    assert [f.check for f in findings] == [
        "display",
        "gl",
        "pi-gpu",
        "groups",
        "packages",
        "power",
        "libmpv",
        "fonts",
        "disk",
        "clock",
        "server",
        "credentials",
        "service",
    ]
    disk = findings[8]
    assert disk.status is Status.FAIL
    assert "statvfs exploded" in disk.detail


def test_verdict_counts_failures_only(capsys: pytest.CaptureFixture[str]) -> None:
    healthy = [Finding("a", Status.OK, "fine"), Finding("b", Status.WARN, "meh", "do x")]
    assert print_findings(healthy) == 0
    out = capsys.readouterr().out
    assert "ready to play (1 warning(s))." in out
    assert "fix: do x" in out
    assert print_findings([*healthy, Finding("c", Status.FAIL, "broken", "do y")]) == 1
    assert "1 problem(s) to fix" in capsys.readouterr().out


def test_command_reports_a_bad_config_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "player.toml"
    config.write_text('[sync]\nserver_url = "not a url"\n')
    code = main(["doctor", "--config", str(config), "--data-dir", str(tmp_path / "state")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  config" in out
    assert "sync.server_url" in out
    assert f"state directory {tmp_path / 'state'}" in out
    for check in (
        "display",
        "gl",
        "pi-gpu",
        "groups",
        "power",
        "libmpv",
        "fonts",
        "disk",
        "clock",
        "server",
        "credentials",
        "service",
    ):
        assert f" {check} " in out, check
    assert os.environ.get("STATE_DIRECTORY") is None


# --- power ---


def _run_real(argv: Sequence[str]) -> tuple[int, str]:
    import subprocess

    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def test_power_auto_names_cec_when_the_tv_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.fake_cec import FakeTv

    tv = FakeTv(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tv.dir}{os.pathsep}{os.environ['PATH']}")
    adapter = tmp_path / "cec0"
    adapter.touch()
    found = check_power(
        probe(tmp_path, settings=settings(display={"cec_device": str(adapter)}), run=_run_real)
    )
    assert (found.status, found.detail) == (Status.OK, "auto: cec")
    tv.set(answers=False)
    found = check_power(
        probe(
            tmp_path,
            settings=settings(display={"cec_device": str(adapter), "driver": "x11"}),
            env={"DISPLAY": ":0"},
            run=_run_real,
        )
    )
    assert (found.status, found.detail) == (Status.OK, "auto: x11"), "xset answers on :0"


def test_power_auto_on_kms_is_drm_once_the_player_drives_the_screen(tmp_path: Path) -> None:
    found = check_power(probe(tmp_path))
    assert found.status is Status.OK
    assert found.detail.startswith("auto: drm (DPMS on the KMS connector")
    assert "cec: cec-ctl not found" in found.detail or "cec: no CEC adapter" in found.detail


def test_power_none_is_a_warning_and_a_broken_choice_a_failure(tmp_path: Path) -> None:
    found = check_power(probe(tmp_path, settings=settings(display={"driver": "wayland"})))
    assert found.status is Status.WARN and found.detail.startswith("auto: none")
    assert found.fix is not None and "v4l-utils" in found.fix
    chosen = settings(display={"power": "cec", "cec_device": str(tmp_path / "no-such")})
    found = check_power(probe(tmp_path, settings=chosen))
    assert found.status is Status.FAIL and "display.power is 'cec'" in found.detail
