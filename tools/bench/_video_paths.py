"""The paths part of ``signage bench video``: a clip played by the real player on each
presentation path, side by side.

Each path runs in a child process (pygame has one window per process): a 1920x1080 layout
with one full-screen video zone looping the clip, on the screen when there is one
(``$DISPLAY``, ``$WAYLAND_DISPLAY`` or a DRM device: what an operator runs on a Pi) or
headless (SDL's dummy driver for software, its offscreen driver with EGL for GL). Measured
over ``seconds`` once the clip plays: frames presented against the clip's frame rate times
the time, frames the frame loop reported late (dropped), and the CPU time of the whole
process (decoding threads included) per presented frame and as a share of one core. The GL
renderer string is printed with every GL figure, so a software rasteriser's (llvmpipe) is
never taken for a GPU's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.bench._verdict import Verdict

SIZE = (1920, 1080)


def screen_available() -> bool:
    """A display to open a real window on: X11, Wayland or KMS (a Pi without X)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return True
    return any(Path("/dev/dri").glob("card*"))


def run_paths(
    clips: list[Path], renderers: list[str], seconds: float, *, headless: bool
) -> list[dict[str, Any]]:
    """One child per (clip, path); their figures."""
    rows = []
    for clip in clips:
        for renderer in renderers:
            print(f"paths: {clip.name} on {renderer}...", file=sys.stderr)
            command = [
                sys.executable, "-m", "tools.bench._video_paths", "--clip", str(clip),
                "--renderer", renderer, "--seconds", str(seconds),
            ]  # fmt: skip
            if headless:
                command.append("--headless")
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=seconds * 4 + 120, check=False
            )
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                error = (done.stderr.strip() or f"exit {done.returncode}")[-300:]
                rows.append({"clip": clip.name, "renderer": renderer, "error": error})
                continue
            rows.append(json.loads(lines[-1]))
    return rows


# The targets a Pi 4 and a Pi 5 must reach with a 1080p60 H.264 clip (docs/video.md), applied
# to every row measured on a GPU or in software; a software rasteriser's GL rows are printed
# but not checked (they are CPU-bound figures, not a GPU's).
MAX_DROPPED = 0
MAX_CPU_PERCENT = 40.0


def check_paths(checks: Verdict, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        name = f"{row['clip']} on {row['renderer']}"
        if "error" in row:
            checks.check(f"{name} played", None, "==", 1)
            continue
        if row["software_rasteriser"]:
            continue
        checks.check(f"{name}: dropped frames", row["dropped"], "<=", MAX_DROPPED)
        checks.check(f"{name}: CPU", row["cpu_percent"], "<", MAX_CPU_PERCENT, " % of one core")


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'clip':<24} {'path':<9} {'presented/expected':>18} {'dropped':>7} "
        f"{'cpu/frame':>9} {'cpu':>6}  where / GL renderer"
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['clip']:<24} {row['renderer']:<9} failed: {row['error']}")
            continue
        gl = row["gl_renderer"] or "-"
        if row["software_rasteriser"]:
            gl += " (SOFTWARE RASTERISER: CPU-bound, not a GPU figure, not checked)"
        lines.append(
            f"{row['clip']:<24} {row['path']:<9} "
            f"{row['presented']:>8}/{row['expected']:<9} {row['dropped']:>7} "
            f"{row['cpu_ms_per_frame']:>7.2f}ms {row['cpu_percent']:>5.1f}%  "
            f"{row['where']} / {gl}"
        )
    return lines


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    """Play the clip on one path in this process; the figures as a dict."""
    from core import Settings
    from player import DirectoryAssets, MediaClock, Player, TimelineEvent, sha256_of

    clip: Path = args.clip.resolve()
    fps = await asyncio.to_thread(_frame_rate, clip)
    with tempfile.TemporaryDirectory(prefix="signage-bench-") as tmp:
        folder = Path(tmp)
        (folder / clip.name).symlink_to(clip)
        sha = await asyncio.to_thread(sha256_of, clip)
        manifest = _manifest(
            sha, clip.name, await asyncio.to_thread(lambda: clip.stat().st_size), args.seconds
        )
        display: dict[str, Any] = {"renderer": args.renderer, "fullscreen": not args.headless}
        if args.headless:
            driver = "offscreen" if args.renderer == "gl" else "dummy"
            display |= {"driver": driver, "width": SIZE[0], "height": SIZE[1]}
        settings = Settings.model_validate({"display": display})
        assets = DirectoryAssets(folder)
        await asyncio.to_thread(assets.scan)
        started = asyncio.Event()

        def on_event(event: TimelineEvent) -> None:
            if event.event == "start" and event.zone == "video":
                started.set()

        player = Player(settings, clock=MediaClock(), assets=assets, device="bench")
        player.add_listener(on_event)
        await player.start()
        try:
            await player.set_manifest(manifest)
            await asyncio.wait_for(started.wait(), timeout=60)
            await asyncio.sleep(1.0)  # the first frames and warm-up are not the steady state
            frames, dropped = player.frames, player.dropped_frames
            cpu, wall = time.process_time(), time.monotonic()
            await asyncio.sleep(args.seconds)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            presented, late = player.frames - frames, player.dropped_frames - dropped
            compositor = player.compositor
            assert compositor is not None
            info = compositor.gl.info if compositor.gl is not None else None
            import pygame

            where = "headless" if args.headless else "screen"
            where += f" ({pygame.display.get_driver()})" if pygame.display.get_init() else ""
        finally:
            await player.stop()
    expected = round(fps * wall)
    return {
        "clip": clip.name,
        "renderer": args.renderer,
        "path": "gl" if info is not None else "software",
        "where": where,
        "gl_renderer": info.renderer if info is not None else None,
        "gl_version": info.version if info is not None else None,
        "software_rasteriser": bool(info is not None and info.software),
        "clip_fps": fps,
        "seconds": round(wall, 2),
        "presented": presented,
        "expected": expected,
        "dropped": max(0, expected - presented) + late,
        "cpu_ms_per_frame": round(cpu * 1000 / max(presented, 1), 2),
        "cpu_percent": round(cpu / wall * 100, 1),
    }


def _manifest(sha: str, name: str, size: int, seconds: float) -> Any:
    """A 1920x1080 layout with one full-screen video zone looping the clip."""
    from protocol import Manifest

    item = {
        "id": "clip", "type": "video", "asset": sha, "loop": True,
        "duration_ms": int((seconds + 30) * 1000),
    }  # fmt: skip
    zone = {"id": "video", "x": 0, "y": 0, "w": SIZE[0], "h": SIZE[1], "playlist": "p"}
    return Manifest.model_validate(
        {
            "version": 1,
            "assets": [{"sha256": sha, "size": size, "mime": "video/mp4"}],
            "playlists": [{"id": "p", "items": [item]}],
            "layouts": [{"id": "l", "width": SIZE[0], "height": SIZE[1], "zones": [zone]}],
            "default_layout": "l",
        }
    )


def _frame_rate(clip: Path) -> float:
    """The clip's frame rate, as mpv reads it (no decoding, no output)."""
    import mpv

    player = mpv.MPV(vo="null", ao="null", aid="no", pause=True)
    try:
        player.loadfile(str(clip))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            fps = player.container_fps
            if fps:
                return float(fps)
            time.sleep(0.02)
        raise SystemExit(f"{clip}: no frame rate (not a video file?)")
    finally:
        player.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description="one path of signage bench video (a child)")
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--renderer", choices=["gl", "software"], required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--headless", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    print(json.dumps(asyncio.run(_child(args))))


if __name__ == "__main__":
    main()
