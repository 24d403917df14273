"""The player in a real X11 window (Xvfb at 1920x1080) and headless, on both paths: every
switch is presented and its lateness reported at the end of the run.

Timing targets are not asserted here (the machine may be loaded): ``signage bench timing``
checks them. What is asserted is that the runs really happened where they say: the X11
driver in a 1920x1080 window, the path asked for (``auto`` passes llvmpipe over), the GL
renderer named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.bench._lateness import HEADER, Lateness, measure
from tools.bench._timing import _make_content, _manifest
from tools.bench._xvfb import xvfb

pytestmark = pytest.mark.slow

SWITCHES = 40
ITEM_MS = 150


@pytest.fixture(scope="module")
def x11() -> Iterator[str]:
    with xvfb((1920, 1080)) as display:
        yield display


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("content")
    manifest = folder / "manifest.json"
    manifest.write_text(_manifest(_make_content(folder), ITEM_MS).model_dump_json(by_alias=True))
    return manifest, folder


def _gl_is_software() -> bool:
    probe = (
        "from zones import GLOffscreen\n"
        "d = GLOffscreen((16, 16)); print(d.info.software); d.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.strip().endswith("True")


@pytest.mark.parametrize("renderer", ["software", "gl", "auto"])
@pytest.mark.parametrize("where", ["window", "headless"])
def test_switches_in_a_real_window_and_headless(
    where: str,
    renderer: str,
    x11: str,
    content: tuple[Path, Path],
    lateness_report: list[str],
) -> None:
    manifest, folder = content
    display = x11 if where == "window" else None
    label = "window (Xvfb 1920x1080)" if display else "headless"
    run: Lateness = measure(
        manifest, folder, switches=SWITCHES, item_ms=ITEM_MS, renderer=renderer,
        display=display, where=label,
    )  # fmt: skip
    if not lateness_report:
        lateness_report.append(f"{SWITCHES} image switches of {ITEM_MS} ms, 1920x1080 layout")
        lateness_report.append(HEADER)
    lateness_report.append(run.row())
    assert run.error is None, run.error
    assert len(run.late_ms) == SWITCHES, "every switch presented"
    assert min(run.late_ms) >= 0
    expected = renderer
    if renderer == "auto":
        # Headless auto is SDL's dummy driver (no GL); in the window llvmpipe is passed over.
        expected = "software" if display is None or _gl_is_software() else "gl"
    assert run.path == expected
    if expected == "gl":
        assert run.gl_renderer, "the GL renderer is named, so llvmpipe is never taken for a GPU"


def test_the_window_is_a_real_x11_window_of_the_screen_size(x11: str, tmp_path: Path) -> None:
    probe = (
        "import json, os, pygame\n"
        "from core import DisplayConfig\n"
        "from zones import open_display\n"
        "d = open_display(DisplayConfig(fullscreen=False, renderer='software'))\n"
        "print(json.dumps([pygame.display.get_driver(), list(d.size),\n"
        "    os.environ.get('SDL_FRAMEBUFFER_ACCELERATION')]))\n"
        "d.close()\n"
    )
    env = {**os.environ, "DISPLAY": x11, "SDL_VIDEODRIVER": "x11"}
    env.pop("SDL_FRAMEBUFFER_ACCELERATION", None)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    driver, size, acceleration = json.loads(out.stdout.strip().splitlines()[-1])
    assert (driver, size) == ("x11", [1920, 1080])
    assert acceleration == "0", "window updates go through X11, not SDL's GL 2D renderer"
