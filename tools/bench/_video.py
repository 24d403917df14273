"""``signage bench video``: switch timing, black/frozen frames, software-path fps, leaks.

Runs the real video renderer (libmpv, software render API) on the committed test clips in a
60 Hz frame loop standing in for the compositor. Reports: switch lateness (first frame of the
new item presented, minus its deadline) and black/frozen frame counts for video→video,
video→image and image→video, cut at deadlines or at the end of the file, with 4K and rotated
clips; the event loop's stalls during each run (``player.LoopStallProbe``: the loop's own
busy time, and how late a wake-up came); frames per second the software path sustains at
720p, 1080p and 4K (scaled into a full-HD zone); which decoders and sizes play; RSS and open
descriptors over many switches. Black and frozen
frames are judged by the detector the simulator and the tests use (``zones.is_black``, each item
against its own reference render; ``zones.FreezeWatch``).

Targets (DESIGN section 14): for every kind of switch, lateness p99 within one 60 Hz frame and
max within two, no black frame, no frozen frame, and the loop never busy nor stalled longer
than one frame; every frame of each clip presented on the software path; no descriptor and
at most ``RSS_TARGET_MB`` of memory kept over the leak run. Then the clips played by the real
player on each presentation path (``--renderer``), side by side: frames presented against
expected, dropped, CPU per frame, and the GL renderer (targets: no dropped frame and under 40 %
of one core, except on a software rasteriser, whose GL figures are not a GPU's).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.bench._verdict import Verdict, cannot_run
from tools.bench._video_switch import (
    FRAME_NS,
    SwitchRun,
    _context,
    _item,
    _switch_run,
    reference_mask,
)

if TYPE_CHECKING:
    from zones import VideoRenderers

DEFAULT_CLIPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "video"
FRAME_MS = FRAME_NS / 1e6
RSS_TARGET_MB = 20.0  # kept after the warm-up switches of the leak run
PATH_CLIP = "h264_1920x1080_1s.mp4"


async def _fps(video: VideoRenderers, clip: Path, passes: int) -> dict[str, Any]:
    """Cost of one frame: rendering it (on the output's render thread) and copying it on the
    loop; and frames presented while playing the 30-frame clip from start to end ``passes``
    times in a 60 Hz loop."""
    import pygame

    width, height = _size_of(clip) or (1280, 720)
    if width > 1920:  # a 4K clip in a full-HD zone: mpv scales it down
        width, height = 1920, height * 1920 // width
    size = (width, height)
    screen, surface = pygame.Surface(size), pygame.Surface(size)
    renderer = video(_context())
    await renderer.prepare(_item(clip, 0, duration_ms=None), size)
    output = renderer._output
    assert output is not None
    render_costs, copy_costs = [], []
    for _ in range(40):
        before = output.latest
        requested = time.monotonic_ns()
        output.request_frame()
        for _ in range(2000):  # at most ~1 s
            await asyncio.sleep(0.0005)
            if (info := output.latest) is not before and info is not None:
                render_costs.append((info.rendered_ns - requested) / 1e9)
                break
        started = time.perf_counter()
        with output.front() as frame:
            assert frame is not None
            screen.blit(frame, (0, 0))
        copy_costs.append(time.perf_counter() - started)
    renderer.release()
    per_frame_ms = statistics.median(render_costs) * 1000
    loop_ms = statistics.median(copy_costs) * 1000
    presented, expected = 0, 0
    for index in range(passes):
        renderer = video(_context())
        await renderer.prepare(_item(clip, index, duration_ms=None), size)
        tick = time.monotonic_ns()
        renderer.start(tick)
        while not renderer.ended:
            if renderer.draw(surface, tick):
                screen.blit(surface, (0, 0))
            tick += FRAME_NS
            await asyncio.sleep(max(tick - time.monotonic_ns(), 0) / 1e9)
        presented += renderer.frames_painted
        expected += 30
        renderer.release()
    return {
        "clip": clip.name,
        "size": f"{size[0]}x{size[1]}",
        "frame_cost_ms": round(per_frame_ms, 2),
        "loop_cost_ms": round(loop_ms, 2),
        "capacity_fps": round(1000 / per_frame_ms, 1),
        "presented_frames": f"{presented}/{expected}",
        "presented_ratio": round(presented / expected, 3),
    }


def _size_of(clip: Path) -> tuple[int, int] | None:
    match = re.search(r"(\d+)x(\d+)", clip.name)
    return (int(match[1]), int(match[2])) if match else None


async def _decoders(video: VideoRenderers, clips: Path) -> list[dict[str, Any]]:
    from core import ZoneError

    rows = []
    for clip in sorted(await asyncio.to_thread(lambda: list(clips.iterdir()))):
        if clip.suffix not in {".mp4", ".webm", ".mkv", ".m4a"}:
            continue
        size = _size_of(clip) or (320, 180)
        renderer = video(_context())
        started = time.perf_counter()
        try:
            await renderer.prepare(_item(clip, 0, duration_ms=None), size)
        except ZoneError as exc:
            result = f"error: {exc}"
        else:
            result = "plays"
        rows.append(
            {
                "clip": clip.name,
                "result": result,
                "prepare_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
        renderer.release()
    return rows


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def _leaks(video: VideoRenderers, clip: Path, switches: int) -> dict[str, Any]:
    import pygame

    size = (320, 180)
    surface = pygame.Surface(size)
    warmup = min(100, switches // 2)
    samples: list[tuple[int, float, int]] = []
    previous: Any = None
    for index in range(switches):
        renderer = video(_context())
        await renderer.prepare(_item(clip, index, duration_ms=1000), size)
        renderer.start(time.monotonic_ns())
        renderer.draw(surface, time.monotonic_ns())
        if previous is not None:
            previous.stop()
            previous.release()
        previous = renderer
        await asyncio.sleep(0)
        if index + 1 == warmup or (index + 1) % 100 == 0 or index + 1 == switches:
            await asyncio.sleep(0.2)  # the last unload (and its trim) runs on a thread
            gc.collect()
            samples.append((index + 1, round(_rss_mb(), 1), _fds()))
    previous.release()
    base = next(s for s in samples if s[0] == warmup)
    return {
        "switches": switches,
        "warmup": warmup,
        "rss_growth_mb": round(samples[-1][1] - base[1], 1),
        "rss_max_growth_mb": round(max(s[1] for s in samples) - base[1], 1),
        "fd_growth": samples[-1][2] - base[2],
        "handles_created": video.pool.created,
        "samples": samples,
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from core import VideoConfig
    from player import LoopStallProbe
    from zones import VideoRenderers

    clips: Path = args.clips
    if not (clips / "h264_320x180_2s.mp4").is_file():
        cannot_run(f"test clips not found in {clips}: pass --clips DIR (tests/data/video)")
    video = VideoRenderers(VideoConfig())
    h264, vp9, short, uhd, rotated = (
        clips / "h264_320x180_2s.mp4",
        clips / "vp9_320x180_2s.webm",
        clips / "h264_160x90_0.4s.mp4",
        clips / "h264_3840x2160_1s.mp4",
        clips / "h264_1280x720_1s_rotate90.mp4",
    )
    size, n = (640, 360), args.switches
    try:
        refs = {
            clip: await reference_mask(video, clip, size)
            for clip in (h264, vp9, short, uhd, rotated)
        }

        async def run(kind: str, plan: Callable[[int], Path | None], **extra: Any) -> SwitchRun:
            probe = LoopStallProbe()
            async with probe.running():
                switched = await _switch_run(video, kind, plan, size, n, references=refs, **extra)
            switched.loop_busy_max_ms = probe.max_busy_ms
            switched.loop_late_max_ms = probe.max_ms
            return switched

        runs = [
            await run("video→video", lambda i: (h264, vp9)[i % 2]),
            await run("video→image", lambda i: None if i % 2 else h264),
            await run("image→video", lambda i: h264 if i % 2 else None),
            await run("video→video at end", lambda i: short, at_end=True),
            await run("video→image at end", lambda i: None if i % 2 else short, at_end=True),
            await run("4K video→video", lambda i: uhd),
            await run("4K video→image", lambda i: None if i % 2 else uhd),
            await run("rotated video→video", lambda i: (rotated, h264)[i % 2]),
        ]
        fps = [
            await _fps(video, clips / name, args.passes)
            for name in ("h264_1280x720_1s.mp4", "h264_1920x1080_1s.mp4", uhd.name)
        ]
        decoders = await _decoders(video, clips)
        leaks = await _leaks(video, short, args.leak_switches)
    finally:
        video.close()
    return {
        "switching": [r.summary() for r in runs],
        "fps": fps,
        "decoders": decoders,
        "leaks": leaks,
    }


def _print(report: dict[str, Any]) -> None:
    for row in report["switching"]:
        print(
            f"{row['kind']:<12} {row['switches']:>3} switches  lateness p50 "
            f"{row['lateness_p50_ms']} ms  p99 {row['lateness_p99_ms']} ms  max "
            f"{row['lateness_max_ms']} ms  black frames {row['black_frames']}  frozen "
            f"{row['frozen_frames']} (longest hold {row['longest_hold_ms']} ms; "
            f"longest unchanged picture at a switch: "
            f"{row['max_gap_at_switch_frames']} frames, elsewhere "
            f"{row['steady_max_gap_frames']}; late prepares {row['late_prepares']}; loop busy "
            f"max {row['loop_busy_max_ms']} ms, stalled max {row['loop_late_max_ms']} ms)"
        )
    for row in report["fps"]:
        print(
            f"sw path {row['clip']} into {row['size']:>9}: {row['frame_cost_ms']} ms/frame "
            f"rendered (render thread), {row['loop_cost_ms']} ms copied on the loop = "
            f"{row['capacity_fps']} fps capacity; frames presented at 30 fps: "
            f"{row['presented_frames']}"
        )
    for row in report["decoders"]:
        print(f"  {row['clip']:<26} {row['result']}  (prepare {row['prepare_ms']} ms)")
    leaks = report["leaks"]
    print(
        f"{leaks['switches']} switches: RSS {leaks['rss_growth_mb']:+} MB (at most "
        f"{leaks['rss_max_growth_mb']:+} MB on the way) and "
        f"{leaks['fd_growth']:+} fds after {leaks['warmup']} warm-up switches; "
        f"{leaks['handles_created']} mpv handles created in all"
    )


def verdict(report: dict[str, Any]) -> Verdict:
    checks = Verdict()
    for row in report["switching"]:
        kind = row["kind"]
        checks.check(
            f"{kind} lateness p99", row["lateness_p99_ms"], "<=", round(FRAME_MS, 1), " ms"
        )
        checks.check(
            f"{kind} lateness max", row["lateness_max_ms"], "<=", round(2 * FRAME_MS, 1), " ms"
        )
        checks.check(f"{kind} black frames", row["black_frames"], "==", 0)
        checks.check(f"{kind} frozen frames", row["frozen_frames"], "==", 0)
        checks.check(
            f"{kind} loop busy max", row["loop_busy_max_ms"], "<=", round(FRAME_MS, 1), " ms"
        )
        checks.check(
            f"{kind} loop stall max", row["loop_late_max_ms"], "<=", round(FRAME_MS, 1), " ms"
        )
    for row in report["fps"]:
        checks.check(f"{row['clip']} frames presented", row["presented_ratio"], ">=", 1.0)
    leaks = report["leaks"]
    checks.check("descriptors kept over the leak run", leaks["fd_growth"], "<=", 0)
    checks.check(
        "memory kept over the leak run", leaks["rss_growth_mb"], "<=", RSS_TARGET_MB, " MB"
    )
    return checks


def _run(args: argparse.Namespace) -> int:
    if args.quick:
        args.switches, args.leak_switches, args.passes = 4, 30, 1
    if args.switches < 1 or args.leak_switches < 2 or args.passes < 1:
        cannot_run("--switches and --passes must be >= 1, --leak-switches >= 2")
    report = asyncio.run(_main(args))
    checks = verdict(report)
    report["targets"] = checks.as_json()
    _print(report)
    print(checks.report())
    from tools.bench._video_paths import format_rows, run_paths, screen_available

    report = asyncio.run(_main(args)) if not args.paths_only else {}
    if report:
        _print(report)
    renderers = ["gl", "software"] if args.renderer == "both" else [args.renderer]
    clips = args.path_clip or [args.clips / c for c in ("h264_1280x720_1s.mp4", PATH_CLIP)]
    headless = args.headless or not screen_available()
    report["paths"] = run_paths(clips, renderers, args.path_seconds, headless=headless)
    print("\n".join(format_rows(report["paths"])))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return checks.exit_code()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "video",
        help="video zone: switch lateness, black/frozen frames, fps, leaks",
        description=(__doc__ or "").split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, metavar="DIR")
    parser.add_argument("--switches", type=int, default=40, metavar="N", help="per kind")
    parser.add_argument("--leak-switches", type=int, default=1000, metavar="N")
    parser.add_argument("--passes", type=int, default=5, metavar="N", help="fps: plays per clip")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write figures")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="4 switches per kind, 30 leak switches, one fps pass, the 1080p clip for 2 s on "
        "each path (a smoke run)",
    )
    parser.add_argument(
        "--renderer",
        choices=["gl", "software", "both"],
        default="both",
        help="presentation paths the clips are played on, side by side (default: both)",
    )
    parser.add_argument(
        "--path-clip",
        type=Path,
        action="append",
        metavar="FILE",
        help="a clip to play on each path (repeatable; default: the 720p and 1080p test clips; "
        "on a Pi: a 1080p60 H.264 file, see docs/video.md)",
    )
    parser.add_argument(
        "--path-seconds", type=float, default=10.0, metavar="S", help="play time per path"
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="play the paths headless even when a screen is available",
    )
    parser.add_argument(
        "--paths-only", action="store_true", help="only the paths part (skip switches, leaks)"
    )
    parser.set_defaults(handler=_run)
