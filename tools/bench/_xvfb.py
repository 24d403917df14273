"""A real X11 display without a screen: Xvfb (Debian ``xvfb``), for measuring in a window.

The benchmarks and the tests start one at 1920x1080x24 when no ``$DISPLAY`` is given, so a
player runs in a real X11 window (SDL's x11 driver; GLX or EGL on Mesa for the GL path)
rather than SDL's dummy driver, where presenting costs nothing.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from core import SignageError
from tools.bench._processes import stop

SOCKETS = Path("/tmp/.X11-unix")  # noqa: S108 - where every X server puts its socket


def xvfb_available() -> bool:
    return shutil.which("Xvfb") is not None


def _taken(number: int) -> bool:
    lock = Path(f"/tmp/.X{number}-lock")  # noqa: S108 - the X servers' lock files
    return (SOCKETS / f"X{number}").exists() or lock.exists()


@contextlib.contextmanager
def xvfb(size: tuple[int, int] = (1920, 1080), *, timeout_s: float = 10.0) -> Iterator[str]:
    """Start Xvfb on a free display number; yields ``":N"`` (for ``DISPLAY``), stops it after."""
    binary = shutil.which("Xvfb")
    if binary is None:
        raise SignageError("Xvfb is not installed (Debian: apt install xvfb)")
    number = next(n for n in range(90, 400) if not _taken(n))
    display = f":{number}"
    process = subprocess.Popen(
        [binary, display, "-screen", "0", f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not (SOCKETS / f"X{number}").exists():
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise SignageError(f"Xvfb {display} exited: {error.strip()[-300:]}")
            if time.monotonic() > deadline:
                raise SignageError(f"Xvfb {display} did not start within {timeout_s:g} s")
            time.sleep(0.05)
        yield display
    finally:
        stop(process, timeout_s=5)
        if process.stderr is not None:
            process.stderr.close()
