"""``signage doctor``'s checks: what a kiosk needs to play, each with what to do about it.

Every check takes a ``Probe`` (the outside world: environment, device and flag paths, a command
runner, the libmpv loader, an HTTP transport, disk usage) so tests swap each part. A check never
raises: whatever goes wrong becomes a ``Finding`` that says what to fix. Secrets (the device
token) are never part of a finding.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import Enum
from pathlib import Path

import httpx

from core import Settings

CREDENTIALS_FILE = "credentials.json"
MIN_FREE_BYTES = 256 * 1024**2
COMFORTABLE_FREE_BYTES = 1024**3
MAX_CLOCK_SKEW_S = 120.0
SERVICE_USER = "signage"
GL_PACKAGES = ("libegl1", "libgles2", "libgl1-mesa-dri")
# Asks for an OpenGL context the way the player's GL path does, off any screen (SDL's
# offscreen driver: EGL on the GPU's render node, else Mesa's llvmpipe), in a child process
# so that the doctor itself loads neither pygame nor a GL driver.
GL_PROBE = """
import json, os
os.environ["SDL_VIDEODRIVER"] = "offscreen"
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
try:
    from zones import GLOffscreen
    display = GLOffscreen((16, 16))
    info = display.info
    print(json.dumps({"vendor": info.vendor, "renderer": info.renderer, "version": info.version,
                      "software": info.software}))
    display.close()
except Exception as exc:
    print(json.dumps({"error": str(exc)}))
"""
_FONT_MAGIC = (b"\x00\x01\x00\x00", b"OTTO", b"true", b"ttcf")


class Status(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str | None = None


def _run_command(argv: Sequence[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, done.stdout


def load_libmpv() -> str:
    """Load libmpv as python-mpv does; its file name, or OSError."""
    names = [ctypes.util.find_library("mpv"), "libmpv.so.2", "libmpv.so.1"]
    errors = []
    for name in dict.fromkeys(n for n in names if n):
        try:
            ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
        else:
            return name
    raise OSError("; ".join(errors) or "libmpv not found")


def bundled_font_dir() -> Path | None:
    """``zones/fonts`` of the installed package, found without importing pygame."""
    spec = importlib.util.find_spec("zones")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "fonts"


@dataclass
class Probe:
    """The outside world the checks look at; the defaults are the real machine."""

    settings: Settings
    state_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    dri_dir: Path = Path("/dev/dri")
    timesync_flag: Path = Path("/run/systemd/timesync/synchronized")
    font_dir: Path | None = field(default_factory=bundled_font_dir)
    run: Callable[[Sequence[str]], tuple[int, str]] = _run_command
    load_libmpv: Callable[[], str] = load_libmpv
    access: Callable[[Path, int], bool] = os.access
    disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage
    transport: httpx.BaseTransport | None = None
    wall_clock: Callable[[], float] = time.time
    model_file: Path = Path("/proc/device-tree/model")
    boot_configs: tuple[Path, ...] = (Path("/boot/firmware/config.txt"), Path("/boot/config.txt"))


def _raspberry_pi(probe: Probe) -> str | None:
    """The board's model when this is a Raspberry Pi."""
    try:
        model = probe.model_file.read_bytes().decode(errors="replace").strip("\x00 \n")
    except OSError:
        return None
    return model if model.startswith("Raspberry Pi") else None


def check_gl(probe: Probe) -> Finding:
    """Which OpenGL the GL path gets: vendor, renderer, version; a software rasteriser warns."""
    renderer = probe.settings.display.renderer
    if renderer == "software":
        return Finding("gl", Status.OK, "display.renderer = software: OpenGL is not used")
    code, out = probe.run([sys.executable, "-c", GL_PROBE])
    try:
        info = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        info = {"error": f"the probe exited {code} without an answer"}
    packages = f"sudo apt install {' '.join(GL_PACKAGES)}"
    if "error" in info:
        status = Status.FAIL if renderer == "gl" else Status.WARN
        return Finding(
            "gl",
            status,
            f"no OpenGL context: {info['error']}; the player composes in software",
            f"{packages}; on a Raspberry Pi also see the 'pi-gpu' line",
        )
    detail = f"{info['renderer']} ({info['version']}; {info['vendor']})"
    if info.get("software"):
        fix = (
            "a software rasteriser means no GPU driver is in use: on a Raspberry Pi keep "
            "'dtoverlay=vc4-kms-v3d' in config.txt, reboot, and check the 'pi-gpu' line; "
            "elsewhere install the GPU's Mesa driver"
        )
        chosen = "composes on the CPU" if renderer == "gl" else "composes in software (auto)"
        return Finding(
            "gl", Status.WARN, f"{detail}: a software rasteriser, the player {chosen}", fix
        )
    return Finding("gl", Status.OK, f"{detail}: the GL path")


def check_pi_gpu(probe: Probe) -> Finding:
    """On a Raspberry Pi: the KMS overlay and the GPU's device nodes the GL path needs."""
    model = _raspberry_pi(probe)
    if model is None:
        return Finding("pi-gpu", Status.OK, "not a Raspberry Pi: nothing Pi-specific to check")
    config = next((path for path in probe.boot_configs if path.is_file()), None)
    overlays: list[str] = []
    if config is not None:
        for line in config.read_text(errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("dtoverlay="):
                overlays.append(line.removeprefix("dtoverlay=").split(",")[0].strip())
    where = str(config or probe.boot_configs[0])
    if "vc4-kms-v3d" not in overlays:
        found = "vc4-fkms-v3d (fake KMS)" if "vc4-fkms-v3d" in overlays else "no KMS overlay"
        return Finding(
            "pi-gpu",
            Status.FAIL,
            f"{model}: {where} has {found}: no GPU driver for KMSDRM and OpenGL ES",
            f"put 'dtoverlay=vc4-kms-v3d' under [all] in {where} and reboot (install.sh does it)",
        )
    cards = sorted(probe.dri_dir.glob("card*")) if probe.dri_dir.is_dir() else []
    renders = sorted(probe.dri_dir.glob("renderD*")) if probe.dri_dir.is_dir() else []
    if not cards or not renders:
        return Finding(
            "pi-gpu",
            Status.FAIL,
            f"{model}: vc4-kms-v3d is set but {probe.dri_dir} lacks "
            f"{'card*' if not cards else 'renderD*'} (was the Pi rebooted since?)",
            "sudo reboot; if it persists, check dmesg for vc4/v3d errors",
        )
    return Finding(
        "pi-gpu",
        Status.OK,
        f"{model}: vc4-kms-v3d in {where}; {', '.join(p.name for p in cards + renders)}",
    )


def check_groups(probe: Probe) -> Finding:
    """The service user can open the display (video) and the GPU's render node (render)."""
    code, out = probe.run(["id", "-nG", SERVICE_USER])
    if code != 0:
        return Finding(
            "groups",
            Status.WARN,
            f"no '{SERVICE_USER}' user (the service runs as it)",
            "sudo systemd/install.sh --server URL creates it",
        )
    missing = [group for group in ("video", "render") if group not in out.split()]
    if missing:
        return Finding(
            "groups",
            Status.FAIL,
            f"'{SERVICE_USER}' is not in {' and '.join(missing)}: no KMS display or GPU access",
            f"sudo usermod -aG video,render,input,audio {SERVICE_USER}; then restart the service",
        )
    return Finding("groups", Status.OK, f"'{SERVICE_USER}' is in video and render")


def check_gl_packages(probe: Probe) -> Finding:
    missing = []
    for package in GL_PACKAGES:
        code, out = probe.run(["dpkg-query", "-W", "-f=${Status}", package])
        if code == 127:
            return Finding("packages", Status.WARN, "cannot ask dpkg which packages are installed")
        if code != 0 or "install ok installed" not in out:
            missing.append(package)
    if missing:
        return Finding(
            "packages",
            Status.WARN,
            f"missing {', '.join(missing)}: the GL path cannot start (software is used)",
            f"sudo apt install {' '.join(missing)}",
        )
    return Finding("packages", Status.OK, f"{', '.join(GL_PACKAGES)} installed")


def check_display(probe: Probe) -> Finding:
    driver = (probe.settings.display.driver or "").lower()
    env = probe.env
    if driver == "dummy":
        return Finding(
            "display",
            Status.WARN,
            "display.driver is 'dummy': nothing is shown on a screen",
            "remove display.driver from the configuration unless this box is headless on purpose",
        )
    if driver in ("", "wayland") and env.get("WAYLAND_DISPLAY"):
        return Finding("display", Status.OK, f"Wayland session {env['WAYLAND_DISPLAY']}")
    if driver in ("", "x11") and env.get("DISPLAY"):
        return Finding("display", Status.OK, f"X11 display {env['DISPLAY']}")
    if driver in ("wayland", "x11"):
        variable = "WAYLAND_DISPLAY" if driver == "wayland" else "DISPLAY"
        return Finding(
            "display",
            Status.FAIL,
            f"display.driver is '{driver}' but ${variable} is unset",
            "unset display.driver to use KMSDRM on the console, or start the player in the session",
        )
    return _check_kms(probe)


def _check_kms(probe: Probe) -> Finding:
    cards = sorted(probe.dri_dir.glob("card*")) if probe.dri_dir.is_dir() else []
    if not cards:
        return Finding(
            "display",
            Status.FAIL,
            f"no X11 or Wayland session and no KMS device ({probe.dri_dir}/card*)",
            "on a Raspberry Pi keep 'dtoverlay=vc4-kms-v3d' in /boot/firmware/config.txt and "
            "reboot; elsewhere install the GPU's kernel driver",
        )
    usable = [card for card in cards if probe.access(card, os.R_OK | os.W_OK)]
    if not usable:
        return Finding(
            "display",
            Status.FAIL,
            f"KMSDRM: cannot open {', '.join(map(str, cards))} as this user",
            "the player's user needs the video and render groups "
            "(sudo usermod -aG video,render,input,audio signage; install.sh does it)",
        )
    return Finding("display", Status.OK, f"KMSDRM on {usable[0]}")


def _video_driver(probe: Probe) -> str:
    """The SDL video driver the player will use here, as ``check_display`` reasons."""
    driver = (probe.settings.display.driver or "").lower()
    if driver:
        return driver
    if probe.env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "x11" if probe.env.get("DISPLAY") else "kmsdrm"


def check_power(probe: Probe) -> Finding:
    """Which backend puts the screen in standby (``display.power``), and why not the others."""
    from zones import choose_power  # the backends live with the display (zones._power)

    config = probe.settings.display
    driver = _video_driver(probe)
    backend, passed = choose_power(config, video_driver=driver, run=probe.run, env=dict(probe.env))
    if config.power != "auto":
        reason = backend.probe() if backend.name != "drm" else None
        if reason is not None:
            return Finding(
                "power",
                Status.FAIL,
                f"display.power is '{config.power}' but it cannot work: {reason}",
                'fix that, or set display.power = "auto"',
            )
        return Finding("power", Status.OK, f"{backend.name} (display.power)")
    if backend.name != "none":
        return Finding("power", Status.OK, f"auto: {backend.name}")
    # DPMS through DRM needs the screen the player opens: judged here by what it needs.
    if driver == "kmsdrm" and ctypes.util.find_library("drm") is not None:
        cec = passed[0] if passed else "cec: not tried"
        return Finding(
            "power",
            Status.OK,
            f"auto: drm (DPMS on the KMS connector, once the player drives the screen); {cec}",
        )
    return Finding(
        "power",
        Status.WARN,
        "auto: none, the screen is never put in standby (" + "; ".join(passed) + ")",
        "for HDMI-CEC: apt install v4l-utils and enable CEC on the TV (a power schedule "
        "then switches it); without it the screen shows black while off",
    )


def check_libmpv(probe: Probe) -> Finding:
    try:
        name = probe.load_libmpv()
    except OSError as exc:
        return Finding(
            "libmpv", Status.FAIL, f"libmpv cannot be loaded: {exc}", "sudo apt install libmpv2"
        )
    return Finding("libmpv", Status.OK, f"loaded {name}")


def check_fonts(probe: Probe) -> Finding:
    fix = "reinstall the player (sudo systemd/install.sh): the package ships zones/fonts/"
    directory = probe.font_dir
    if directory is None or not directory.is_dir():
        return Finding(
            "fonts", Status.FAIL, f"the bundled font directory is missing ({directory})", fix
        )
    try:
        fonts = sorted(
            p for p in directory.iterdir() if p.suffix.lower() in (".ttf", ".otf", ".ttc")
        )
    except OSError as exc:
        return Finding("fonts", Status.FAIL, f"cannot list {directory}: {exc}", fix)
    readable = []
    for path in fonts:
        try:
            with path.open("rb") as handle:
                magic = handle.read(4)
        except OSError:
            continue
        if magic in _FONT_MAGIC:
            readable.append(path.name)
    if not readable:
        found = ", ".join(p.name for p in fonts) or "no font files"
        return Finding("fonts", Status.FAIL, f"no usable font in {directory} ({found})", fix)
    return Finding("fonts", Status.OK, f"{', '.join(readable)} in {directory}")


def _mib(size: int) -> str:
    return f"{size / 1024**2:.0f} MiB"


def check_disk(probe: Probe) -> Finding:
    path = probe.state_dir
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    try:
        _total, _used, free = probe.disk_usage(existing)
    except OSError as exc:
        return Finding("disk", Status.WARN, f"cannot measure free space at {existing}: {exc}")
    where = f"{path}" if existing == path else f"{path} (not created yet; measured at {existing})"
    fix = (
        "free space on that file system, or lower cache.max_bytes so evictions keep up "
        "(docs/configuration.md)"
    )
    if free < MIN_FREE_BYTES:
        return Finding("disk", Status.FAIL, f"only {_mib(free)} free for {where}", fix)
    wanted = min(COMFORTABLE_FREE_BYTES, probe.settings.cache.max_bytes)
    if free < wanted:
        return Finding("disk", Status.WARN, f"{_mib(free)} free for {where}: little room", fix)
    return Finding("disk", Status.OK, f"{_mib(free)} free for {where}")


def check_clock(probe: Probe) -> Finding:
    if probe.timesync_flag.exists():
        return Finding("clock", Status.OK, "synchronized (systemd-timesyncd)")
    code, out = probe.run(["timedatectl", "show", "--property=NTP", "--property=NTPSynchronized"])
    values = _properties(out)
    if code != 0 or "NTPSynchronized" not in values:
        return Finding(
            "clock",
            Status.WARN,
            "cannot tell whether the clock is synchronized (no timedatectl answer)",
            "make sure an NTP client runs; until then schedules follow the server's time",
        )
    if values["NTPSynchronized"] == "yes":
        return Finding("clock", Status.OK, "synchronized (NTP)")
    if values.get("NTP") == "no":
        return Finding(
            "clock",
            Status.FAIL,
            "no NTP synchronization is enabled: a Pi has no battery clock",
            "sudo timedatectl set-ntp true",
        )
    return Finding(
        "clock",
        Status.WARN,
        "NTP is enabled but not synchronized yet; schedules follow the server's time until then",
        "check that UDP port 123 reaches an NTP server (timedatectl timesync-status)",
    )


def _properties(output: str) -> dict[str, str]:
    """``KEY=value`` lines, as ``systemctl show`` and ``timedatectl show`` print them."""
    return dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)


def check_service(probe: Probe) -> Finding:
    unit = "signage-player.service"
    code, out = probe.run(
        ["systemctl", "show", unit, "--property=LoadState,ActiveState,SubState,NRestarts"]
    )
    values = _properties(out)
    if code != 0 or "LoadState" not in values:
        return Finding("service", Status.WARN, f"cannot ask systemd about {unit}")
    if values["LoadState"] != "loaded":
        return Finding(
            "service",
            Status.WARN,
            f"{unit} is not installed",
            "sudo systemd/install.sh --server URL",
        )
    active, sub = values.get("ActiveState", "?"), values.get("SubState", "?")
    restarts = int(values.get("NRestarts") or 0)
    detail = f"{active} ({sub}), restarted {restarts} time(s) since it was started"
    logs = "read why in journalctl -u signage-player -b (a traceback, or 'Watchdog timeout')"
    if active == "active":
        return Finding("service", Status.WARN if restarts >= 3 else Status.OK, detail, logs)
    if active == "activating" and sub != "auto-restart":
        return Finding("service", Status.WARN, f"{detail}: still starting", logs)
    fix = f"{logs}; then sudo systemctl enable --now {unit}"
    return Finding("service", Status.FAIL, detail, fix)


def _paired_server(probe: Probe) -> str | None:
    """The server ``credentials.json`` was paired with (``signage play --server URL``
    writes no configuration), when it can be read."""
    try:
        data = json.loads((probe.state_dir / CREDENTIALS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = data.get("server_url") if isinstance(data, dict) else None
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def check_server(probe: Probe) -> Finding:
    url = probe.settings.sync.server_url
    source = ""
    if not url:
        url = _paired_server(probe)
        source = f" (the server in {CREDENTIALS_FILE})"
    if not url:
        return Finding(
            "server",
            Status.FAIL,
            "no server configured (sync.server_url) and not paired with one",
            "set server_url under [sync] in /etc/signage/player.toml, or rerun "
            "install.sh --server URL",
        )
    health = url.rstrip("/") + "/healthz"
    timeout = httpx.Timeout(probe.settings.sync.connect_timeout_s)
    try:
        with httpx.Client(transport=probe.transport, timeout=timeout) as client:
            started = time.monotonic()
            response = client.get(health)
            elapsed_ms = (time.monotonic() - started) * 1000
    except httpx.HTTPError as exc:
        return Finding(
            "server",
            Status.FAIL,
            f"{health}{source} is unreachable: {type(exc).__name__}: {exc}",
            "check the address, that the server runs (systemctl status signage-server there), "
            "and the network from here (ping, firewall, proxy)",
        )
    if response.status_code != 200:
        return Finding(
            "server",
            Status.FAIL,
            f"{health} answered HTTP {response.status_code}",
            "look at the server's log (journalctl -u signage-server)",
        )
    detail = f"{health} answered in {elapsed_ms:.0f} ms{source}"
    skew = _clock_skew(response, probe.wall_clock())
    if skew is not None and abs(skew) > MAX_CLOCK_SKEW_S:
        return Finding(
            "server",
            Status.WARN,
            f"{detail}, but this clock is {skew:+.0f} s off the server's",
            "enable NTP (sudo timedatectl set-ntp true)",
        )
    return Finding("server", Status.OK, detail)


def _clock_skew(response: httpx.Response, now: float) -> float | None:
    try:
        server_time = parsedate_to_datetime(response.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
    return now - server_time


def check_credentials(probe: Probe) -> Finding:
    path = probe.state_dir / CREDENTIALS_FILE
    try:
        mode = path.stat().st_mode
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Finding(
            "credentials",
            Status.WARN,
            "not paired yet: the screen shows a pairing code",
            "claim the code on the server (signage admin pair CODE --name NAME)",
        )
    except OSError as exc:
        return Finding(
            "credentials",
            Status.WARN,
            f"cannot read {path} as this user: {exc.strerror}",
            "run the doctor as root: sudo signage doctor",
        )
    if stat.S_IMODE(mode) & 0o077:
        return Finding(
            "credentials",
            Status.FAIL,
            f"{path} is readable by others (mode {stat.S_IMODE(mode):04o})",
            f"sudo chmod 600 {path}",
        )
    try:
        data = json.loads(raw)
        device_id = data["device_id"]
        valid = isinstance(device_id, str) and bool(device_id) and bool(data["device_token"])
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        return Finding(
            "credentials",
            Status.FAIL,
            f"{path} is damaged",
            f"sudo rm {path} && sudo systemctl restart signage-player (the screen pairs again)",
        )
    paired_with = data.get("server_url")
    configured = probe.settings.sync.server_url
    if (
        isinstance(paired_with, str)
        and configured
        and paired_with.rstrip("/") != configured.rstrip("/")
    ):
        return Finding(
            "credentials",
            Status.WARN,
            f"paired as {device_id} with {paired_with}, but the configured server is {configured}",
            "pair again with the configured server, or set server_url back",
        )
    return Finding("credentials", Status.OK, f"paired as device {device_id}")


CHECKS: tuple[Callable[[Probe], Finding], ...] = (
    check_display,
    check_gl,
    check_pi_gpu,
    check_groups,
    check_gl_packages,
    check_power,
    check_libmpv,
    check_fonts,
    check_disk,
    check_clock,
    check_server,
    check_credentials,
    check_service,
)


def run_checks(probe: Probe) -> list[Finding]:
    findings = []
    for check in CHECKS:
        try:
            findings.append(check(probe))
        except Exception as exc:  # one broken probe must not hide the other findings
            name = check.__name__.removeprefix("check_")
            findings.append(Finding(name, Status.FAIL, f"the check itself failed: {exc!r}"))
    return findings
