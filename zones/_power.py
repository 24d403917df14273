"""The screen's power: backends that put the display in standby and wake it, behind one interface.

``display.power`` chooses one: ``cec`` (HDMI-CEC through ``cec-ctl`` from Debian's
``v4l-utils``: ``<Standby>`` and ``<Image View On>`` to the TV, its power status read back),
``drm`` (the DPMS property of the connector, on the KMS device the player itself drives through
SDL's KMSDRM video driver), ``x11`` (``xset dpms force off|on`` in an X session) or ``none``
(nothing is switched: the player only stops drawing). ``auto`` takes the first that works here,
in that order; ``signage doctor`` says which. Every call may block (a subprocess, an ioctl): the
player runs them in a worker thread.

What each can know: a TV answers CEC's ``<Give Device Power Status>`` (or does not, when CEC is
off in its menu: then the state is ``unknown``, never assumed); DRM and X11 read back their own
DPMS state, which says the signal is off, not that the panel is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

from core import DisplayConfig, PlayerError

log = logging.getLogger(__name__)

ScreenState = Literal["on", "standby", "unknown"]
BackendName = Literal["cec", "drm", "x11", "none"]
Runner = Callable[[Sequence[str]], tuple[int, str]]
COMMAND_TIMEOUT_S = 10.0
AUTO_ORDER = ("cec", "drm", "x11")


def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """(exit status, stdout and stderr) of a short command; 127 when it cannot run."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, done.stdout + done.stderr


class ScreenPower(Protocol):
    """One way of switching the screen. Methods block; ``probe`` never raises."""

    @property
    def name(self) -> BackendName: ...

    def probe(self) -> str | None:
        """None when this backend works here, else why not (one line)."""
        ...

    def set(self, on: bool) -> None:
        """Wake the screen or put it in standby; ``PlayerError`` when that failed."""
        ...

    def read(self) -> ScreenState:
        """The state the screen reports (``unknown`` when it does not say)."""
        ...


class NoPower:
    """``none``: nothing is switched. The player stops drawing; the panel stays lit."""

    name: BackendName = "none"

    def probe(self) -> str | None:
        return None

    def set(self, on: bool) -> None:
        """Nothing to switch: the player blanks the picture itself."""

    def read(self) -> ScreenState:
        return "unknown"


_PWR_STATE = re.compile(r"pwr-state:\s*[^(\n]*\(0x0?([0-9a-fA-F])\)")
_PHYS_ADDR = re.compile(r"Physical Address\s*:\s*([0-9a-f]\.[0-9a-f]\.[0-9a-f]\.[0-9a-f])")


class CecPower:
    """HDMI-CEC through ``cec-ctl``: the player's HDMI output acts as a playback device and
    talks to the TV (logical address 0)."""

    name: BackendName = "cec"

    def __init__(
        self,
        device: str = "/dev/cec0",
        *,
        command: str = "cec-ctl",
        osd_name: str = "signage",
        run: Runner = run_command,
    ) -> None:
        self.device = device
        self.command = command
        self.osd_name = osd_name[:14]  # the CEC OSD name holds 14 characters
        self._run = run
        self._configured = False
        self._physical: str | None = None

    def _cec(self, *args: str) -> tuple[int, str]:
        return self._run([self.command, "-d", self.device, *args])

    def _configure(self) -> None:
        """Claim a logical address as a playback device (once; the kernel keeps it)."""
        if self._configured:
            return
        code, out = self._cec("--playback", "--osd-name", self.osd_name)
        if code != 0:
            raise PlayerError(f"cec-ctl could not configure {self.device}: {_last_line(out)}")
        match = _PHYS_ADDR.search(out)
        if match and match.group(1) != "f.f.f.f":
            self._physical = match.group(1)
        self._configured = True

    def probe(self) -> str | None:
        if shutil.which(self.command) is None and not Path(self.command).is_file():
            return f"{self.command} not found (apt install v4l-utils)"
        if not Path(self.device).exists():
            return f"no CEC adapter at {self.device}"
        try:
            self._configure()
        except PlayerError as exc:
            return str(exc)
        if self.read() == "unknown":
            return "the TV does not answer HDMI-CEC (is CEC enabled in its menu?)"
        return None

    def set(self, on: bool) -> None:
        self._configure()
        if on:
            code, out = self._cec("--to", "0", "--image-view-on")
            if code == 0 and self._physical is not None:
                # Make the TV switch its input to us, as a source that wakes it would.
                code, out = self._cec("--to", "0", "--active-source", f"phys-addr={self._physical}")
        else:
            code, out = self._cec("--to", "0", "--standby")
        if code != 0:
            word = "wake" if on else "standby"
            raise PlayerError(f"cec-ctl {word} failed (exit {code}): {_last_line(out)}")

    def read(self) -> ScreenState:
        try:
            self._configure()
        except PlayerError:
            return "unknown"
        code, out = self._cec("--to", "0", "--give-device-power-status")
        match = _PWR_STATE.search(out) if code == 0 else None
        if match is None:
            return "unknown"
        # 0 on, 1 standby, 2 in transition standby -> on, 3 in transition on -> standby.
        return "on" if match.group(1) in ("0", "2") else "standby"


class X11Power:
    """DPMS of an X server through ``xset`` (``$DISPLAY``)."""

    name: BackendName = "x11"

    def __init__(self, env: dict[str, str] | None = None, *, run: Runner = run_command) -> None:
        self._env = os.environ if env is None else env
        self._run = run

    def _xset(self, *args: str) -> tuple[int, str]:
        return self._run(["xset", "-display", self._env.get("DISPLAY", ""), *args])

    def probe(self) -> str | None:
        if not self._env.get("DISPLAY"):
            return "no X session ($DISPLAY is unset)"
        if shutil.which("xset") is None:
            return "xset not found (apt install x11-xserver-utils)"
        code, out = self._xset("q")
        if code != 0:
            return f"xset q failed: {_last_line(out)}"
        if "DPMS is" not in out:
            return "the X server has no DPMS extension"
        return None

    def set(self, on: bool) -> None:
        steps: list[tuple[str, ...]] = (
            [("dpms", "force", "on")]
            # DPMS must be enabled to force it; zero timeouts keep X from blanking on its own.
            if on
            else [("+dpms",), ("dpms", "0", "0", "0"), ("dpms", "force", "off")]
        )
        for step in steps:
            code, out = self._xset(*step)
            if code != 0:
                raise PlayerError(f"xset {' '.join(step)} failed: {_last_line(out)}")

    def read(self) -> ScreenState:
        code, out = self._xset("q")
        if code != 0:
            return "unknown"
        if "Monitor is On" in out:
            return "on"
        if re.search(r"Monitor is (Off|in Standby|in Suspend)", out):
            return "standby"
        return "unknown"


_DPMS_ON, _DPMS_OFF = 0, 3
_DRM_MODE_CONNECTED = 1
_SYSWM_KMSDRM = 13


class _SdlVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint8), ("minor", ctypes.c_uint8), ("patch", ctypes.c_uint8)]


class _KmsdrmInfo(ctypes.Structure):
    _fields_ = [("dev_index", ctypes.c_int), ("drm_fd", ctypes.c_int), ("gbm_dev", ctypes.c_void_p)]


class _WmInfoUnion(ctypes.Union):
    _fields_ = [("kmsdrm", _KmsdrmInfo), ("dummy", ctypes.c_uint8 * 64)]


class _SysWmInfo(ctypes.Structure):
    """SDL_SysWMinfo (SDL_syswm.h, SDL 2.0.15 and later)."""

    _fields_ = [("version", _SdlVersion), ("subsystem", ctypes.c_int), ("info", _WmInfoUnion)]


class _DrmModeRes(ctypes.Structure):
    """drmModeRes (xf86drmMode.h)."""

    _fields_ = [
        ("count_fbs", ctypes.c_int),
        ("fbs", ctypes.POINTER(ctypes.c_uint32)),
        ("count_crtcs", ctypes.c_int),
        ("crtcs", ctypes.POINTER(ctypes.c_uint32)),
        ("count_connectors", ctypes.c_int),
        ("connectors", ctypes.POINTER(ctypes.c_uint32)),
        ("count_encoders", ctypes.c_int),
        ("encoders", ctypes.POINTER(ctypes.c_uint32)),
        ("min_width", ctypes.c_uint32),
        ("max_width", ctypes.c_uint32),
        ("min_height", ctypes.c_uint32),
        ("max_height", ctypes.c_uint32),
    ]


class _DrmModeConnector(ctypes.Structure):
    """drmModeConnector (xf86drmMode.h)."""

    _fields_ = [
        ("connector_id", ctypes.c_uint32),
        ("encoder_id", ctypes.c_uint32),
        ("connector_type", ctypes.c_uint32),
        ("connector_type_id", ctypes.c_uint32),
        ("connection", ctypes.c_int),
        ("mmWidth", ctypes.c_uint32),
        ("mmHeight", ctypes.c_uint32),
        ("subpixel", ctypes.c_int),
        ("count_modes", ctypes.c_int),
        ("modes", ctypes.c_void_p),
        ("count_props", ctypes.c_int),
        ("props", ctypes.POINTER(ctypes.c_uint32)),
        ("prop_values", ctypes.POINTER(ctypes.c_uint64)),
        ("count_encoders", ctypes.c_int),
        ("encoders", ctypes.POINTER(ctypes.c_uint32)),
    ]


class _DrmModeProperty(ctypes.Structure):
    """drmModePropertyRes (xf86drmMode.h): only the leading fields are read."""

    _fields_ = [
        ("prop_id", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 32),
    ]


def _sdl_library() -> ctypes.CDLL | None:
    """The SDL2 that pygame loaded (its wheel bundles one): found in this process's maps."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.rsplit(" ", 1)[-1]
        if "libSDL2-2" in path or path.endswith("libSDL2-2.0.so.0"):
            try:
                return ctypes.CDLL(path)
            except OSError:
                return None
    return None


class DrmPower:
    """DPMS through the DRM connector of the KMS device the player drives (SDL's KMSDRM
    driver holds it as DRM master, so the property is set on SDL's own file descriptor)."""

    name: BackendName = "drm"

    def __init__(self) -> None:
        self._fd: int | None = None
        self._drm: ctypes.CDLL | None = None
        self._targets: list[tuple[int, int]] = []  # (connector id, DPMS property id)

    def _open(self) -> str | None:
        if self._targets:
            return None
        import pygame

        if not pygame.display.get_init() or pygame.display.get_driver() != "kmsdrm":
            return "the player does not drive a KMS device (SDL video driver is not kmsdrm)"
        sdl = _sdl_library()
        name = ctypes.util.find_library("drm") or "libdrm.so.2"
        try:
            drm = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            return f"libdrm not available: {exc}"
        if sdl is None:
            return "cannot find the SDL library pygame loaded"
        fd = self._sdl_drm_fd(sdl)
        if fd is None:
            return "SDL does not say which DRM device it drives"
        targets = self._dpms_connectors(drm, fd)
        if not targets:
            return "no connected DRM connector with a DPMS property"
        self._drm, self._fd, self._targets = drm, fd, targets
        return None

    @staticmethod
    def _sdl_drm_fd(sdl: ctypes.CDLL) -> int | None:
        sdl.SDL_GetWindowFromID.restype = ctypes.c_void_p
        sdl.SDL_GetWindowFromID.argtypes = [ctypes.c_uint32]
        sdl.SDL_GetWindowWMInfo.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        sdl.SDL_GetWindowWMInfo.restype = ctypes.c_int
        for window_id in range(1, 17):  # pygame's window is one of the first
            window = sdl.SDL_GetWindowFromID(window_id)
            if not window:
                continue
            info = _SysWmInfo()
            sdl.SDL_GetVersion(ctypes.byref(info.version))
            if sdl.SDL_GetWindowWMInfo(window, ctypes.byref(info)) and (
                info.subsystem == _SYSWM_KMSDRM
            ):
                return int(info.info.kmsdrm.drm_fd)
        return None

    @staticmethod
    def _dpms_connectors(drm: ctypes.CDLL, fd: int) -> list[tuple[int, int]]:
        drm.drmModeGetResources.restype = ctypes.POINTER(_DrmModeRes)
        drm.drmModeGetConnector.restype = ctypes.POINTER(_DrmModeConnector)
        drm.drmModeGetConnector.argtypes = [ctypes.c_int, ctypes.c_uint32]
        drm.drmModeGetProperty.restype = ctypes.POINTER(_DrmModeProperty)
        drm.drmModeGetProperty.argtypes = [ctypes.c_int, ctypes.c_uint32]
        for free in ("drmModeFreeResources", "drmModeFreeConnector", "drmModeFreeProperty"):
            getattr(drm, free).argtypes = [ctypes.c_void_p]
        resources = drm.drmModeGetResources(fd)
        if not resources:
            return []
        targets = []
        try:
            for index in range(resources.contents.count_connectors):
                connector = drm.drmModeGetConnector(fd, resources.contents.connectors[index])
                if not connector:
                    continue
                try:
                    found = connector.contents
                    if found.connection != _DRM_MODE_CONNECTED:
                        continue
                    for slot in range(found.count_props):
                        prop = drm.drmModeGetProperty(fd, found.props[slot])
                        if not prop:
                            continue
                        if prop.contents.name == b"DPMS":
                            targets.append((found.connector_id, prop.contents.prop_id))
                        drm.drmModeFreeProperty(prop)
                finally:
                    drm.drmModeFreeConnector(connector)
        finally:
            drm.drmModeFreeResources(resources)
        return targets

    def probe(self) -> str | None:
        try:
            return self._open()
        except (OSError, AttributeError) as exc:  # a libdrm without a symbol we call
            return f"DRM unavailable: {exc}"

    def set(self, on: bool) -> None:
        reason = self.probe()
        if reason is not None or self._drm is None or self._fd is None:
            raise PlayerError(f"DPMS through DRM: {reason}")
        setter = self._drm.drmModeConnectorSetProperty
        setter.argtypes = [ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint64]
        for connector, prop in self._targets:
            if setter(self._fd, connector, prop, _DPMS_ON if on else _DPMS_OFF) != 0:
                error = os.strerror(ctypes.get_errno())
                raise PlayerError(f"DPMS {'on' if on else 'off'} refused by DRM: {error}")

    def read(self) -> ScreenState:
        if self.probe() is not None or self._drm is None or self._fd is None:
            return "unknown"
        drm = self._drm
        states = []
        for connector_id, prop_id in self._targets:
            connector = drm.drmModeGetConnector(self._fd, connector_id)
            if not connector:
                return "unknown"
            try:
                found = connector.contents
                for slot in range(found.count_props):
                    if found.props[slot] == prop_id:
                        states.append(found.prop_values[slot] == _DPMS_ON)
            finally:
                drm.drmModeFreeConnector(connector)
        if not states:
            return "unknown"
        return "on" if any(states) else "standby"


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def power_backend(
    config: DisplayConfig, *, run: Runner = run_command, env: dict[str, str] | None = None
) -> ScreenPower:
    """The backend ``display.power`` names (``auto``: see ``choose_power``)."""
    kind = config.power
    if kind == "cec":
        return CecPower(config.cec_device, run=run)
    if kind == "drm":
        return DrmPower()
    if kind == "x11":
        return X11Power(env, run=run)
    return NoPower()


# ``auto`` only switches a screen the player itself shows on: DPMS of another X display (a
# developer's desktop) or another KMS device is not ours to turn off.
_AUTO_NEEDS_DRIVER = {"drm": "kmsdrm", "x11": "x11"}


def choose_power(
    config: DisplayConfig,
    *,
    video_driver: str | None,
    run: Runner = run_command,
    env: dict[str, str] | None = None,
) -> tuple[ScreenPower, list[str]]:
    """The backend to use and, for ``auto``, why each one before it was passed over.

    A backend named explicitly is used even when its probe fails (its errors are reported
    then); ``auto`` takes the first of cec, drm, x11 that works and drives the screen the
    player shows on (``video_driver``: SDL's), else ``none``.
    """
    if config.power != "auto":
        return power_backend(config, run=run, env=env), []
    passed: list[str] = []
    for kind in AUTO_ORDER:
        needed = _AUTO_NEEDS_DRIVER.get(kind)
        if needed is not None and video_driver != needed:
            passed.append(f"{kind}: the player does not show through {needed}")
            continue
        backend = power_backend(config.model_copy(update={"power": kind}), run=run, env=env)
        reason = backend.probe()
        if reason is None:
            return backend, passed
        passed.append(f"{kind}: {reason}")
    return NoPower(), passed
