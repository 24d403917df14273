"""Switch lateness of the real ``signage play``, headless or in a real window, on either path.

Each run is a child process (pygame has one window per process): ``signage play --manifest``
with a timeline, on SDL's dummy driver (software) or offscreen driver (GL) headless, or in an
X11 window at 1920x1080 (``$DISPLAY``, else an Xvfb started for the run). ``late_ms`` comes
from the timeline, i.e. from the presented frame: on the GL path, when the swap returned.
The path the player took and its GL renderer come from its ``presentation path`` log line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

FRAME_MS = 1000 / 60


@dataclass
class Lateness:
    where: str  # "headless" or "window (Xvfb 1920x1080)"...
    renderer: str  # what was asked: auto, gl or software
    path: str = "?"  # what the player took: gl or software
    gl_renderer: str | None = None
    vsync: bool | None = None
    late_ms: list[float] = field(default_factory=list)
    error: str | None = None

    def _at(self, q: float) -> float:
        ordered = sorted(self.late_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.late_ms) if self.late_ms else float("nan")

    @property
    def p99(self) -> float:
        return self._at(0.99)

    @property
    def max(self) -> float:
        return max(self.late_ms) if self.late_ms else float("nan")

    @property
    def software_rasteriser(self) -> bool:
        """GL drawn by the CPU (Mesa llvmpipe...): its lateness says nothing about a GPU."""
        import re

        return self.path == "gl" and bool(
            re.search(r"llvmpipe|softpipe|swrast|software rasterizer", self.gl_renderer or "", re.I)
        )

    @property
    def met(self) -> bool:
        """p99 within one 60 Hz frame and max within two (DESIGN section 14)."""
        return bool(self.late_ms) and self.p99 <= FRAME_MS and self.max <= 2 * FRAME_MS

    def row(self) -> str:
        if self.error is not None:
            return f"{self.where:<26} {self.renderer:<8} failed: {self.error}"
        gl = f"  [{self.gl_renderer}]" if self.gl_renderer else ""
        if self.gl_renderer and self.path != "gl":
            gl = f"  [passed over: {self.gl_renderer}]"
        path = f"{self.renderer}->{self.path}"
        return (
            f"{self.where:<26} {path:<18} {len(self.late_ms):>5}  "
            f"{self.p50:7.2f} {self.p99:7.2f} {self.max:7.2f}  "
            f"{self.p99 / FRAME_MS:5.2f} {self.max / FRAME_MS:5.2f}  "
            f"{'ok' if self.met else 'MISSED'}{gl}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "where": self.where,
            "renderer": self.renderer,
            "path": self.path,
            "gl_renderer": self.gl_renderer,
            "vsync": self.vsync,
            "switches": len(self.late_ms),
            "late_p50_ms": self.p50,
            "late_p99_ms": self.p99,
            "late_max_ms": self.max,
            "met": self.met,
            "error": self.error,
        }


HEADER = (
    f"{'where':<26} {'asked->path':<18} {'n':>5}  {'p50':>7} {'p99':>7} {'max':>7}  "
    f"{'p99/f':>5} {'max/f':>5}  (ms; /f: in 60 Hz frames)"
)


def measure(
    manifest: Path,
    assets: Path,
    *,
    switches: int,
    item_ms: int,
    renderer: str,
    display: str | None,
    where: str,
    zone: str = "main",
    size: tuple[int, int] = (1920, 1080),
) -> Lateness:
    """Play ``manifest`` for ``switches`` item switches of ``zone``; their ``late_ms``.

    ``display`` is an X11 ``DISPLAY`` (a window of ``size``), or None for headless.
    """
    result = Lateness(where, renderer)
    with tempfile.TemporaryDirectory(prefix="signage-lateness-") as tmp:
        folder = Path(tmp)
        config = {
            "display": {
                "width": size[0],
                "height": size[1],
                "fullscreen": False,
                "renderer": renderer,
            },
            "logging": {"level": "info", "format": "json"},
        }
        (folder / "player.toml").write_text(tomli_w.dumps(config))
        timeline = folder / "timeline.jsonl"
        seconds = (switches + 2) * item_ms / 1000 + 3
        command = [
            sys.executable, "-m", "tools", "play", "--manifest", str(manifest),
            "--assets", str(assets), "--timeline", str(timeline), "--duration", f"{seconds:.1f}",
            "--config", str(folder / "player.toml"), "--data-dir", str(folder / "data"),
            "--renderer", renderer,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
        env.pop("SDL_VIDEODRIVER", None)
        if display is None:
            command.append("--headless")
        else:
            env["DISPLAY"] = display
            env.pop("WAYLAND_DISPLAY", None)
            env["SDL_VIDEODRIVER"] = "x11"
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds * 3 + 60
        )
        _read_log(done.stderr, result)
        if done.returncode != 0:
            result.error = f"signage play exited {done.returncode}: {done.stderr.strip()[-300:]}"
            return result
        lates = []
        for line in timeline.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "start" and event["zone"] == zone and event["late_ms"] is not None:
                lates.append(float(event["late_ms"]))
        result.late_ms = lates[1 : switches + 1]  # the first is the layout appearing
    return result


def _read_log(stderr: str, result: Lateness) -> None:
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("msg", "").startswith("presentation path"):
            result.path = str(record.get("path", "?"))
            result.gl_renderer = record.get("renderer")
            result.vsync = record.get("vsync")
