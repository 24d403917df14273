"""``signage bench timing``: switch lateness, drift against chained sleeps, idle CPU.

Headless (SDL dummy driver), on the real monotonic clock, with a 1920x1080 layout of three
zones (image, text, clock). Three measurements in one run:

1. ``--switches`` image switches played by the player: ``late_ms`` of each, measured from the
   presented frame, as p50/p99/max and in frames at 60 Hz.
2. the same switches by a baseline loop that differs from the player only in how it sleeps:
   the same image renderer and decode cache, the next item prepared while the current one
   shows, the same compositor and display, but ``await sleep(duration)`` after each switch
   instead of sleeping until an absolute deadline. Drift, for both, is the slope of lateness
   against time (ms per hour), fitted by least squares, with its 95 % confidence interval.
3. CPU seconds per minute of the player on a static slideshow, against the same content redrawn
   and presented every frame.
4. the same image switches played by ``signage play`` (a child process each) headless and in a
   real X11 window at 1920x1080 (``$DISPLAY``, else an Xvfb started for the run), on the
   presentation path ``--renderer`` asks for (``both``: software and GL side by side).

Targets (DESIGN section 14): p99 lateness within one 60 Hz frame, max within two (also for
each run of 4., except GL on a software rasteriser such as llvmpipe, whose figures are the
CPU's), no drift (the player's 95 % interval contains 0), a static slideshow under 2 % of one
core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from tools.bench._verdict import Verdict, cannot_run

if TYPE_CHECKING:
    from core import Settings
    from player import DirectoryAssets
    from protocol import Manifest
    from tools.bench._lateness import Lateness

FRAME_MS = 1000 / 60
SIZE = (1920, 1080)
MS_PER_H = 3_600_000.0


@dataclass(frozen=True)
class Drift:
    """Least-squares slope of lateness (ms) against scheduled time, in ms per hour, with the
    two-sided 95 % confidence interval from the t distribution (n - 2 degrees of freedom)."""

    slope_ms_per_h: float
    low_ms_per_h: float
    high_ms_per_h: float
    samples: int

    @property
    def excludes_zero_by(self) -> float:
        """How far the interval lies from 0 (0 when it contains 0: no drift detected)."""
        return max(self.low_ms_per_h, -self.high_ms_per_h, 0.0)


def t_quantile_975(dof: int) -> float:
    """The 97.5 % quantile of Student's t (Cornish-Fisher expansion around the normal one;
    within 0.1 % of the exact value from 5 degrees of freedom on)."""
    z = NormalDist().inv_cdf(0.975)
    v = float(max(dof, 1))
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def drift(points: list[tuple[float, float]]) -> Drift:
    """``points``: (scheduled time in ms since the first switch, lateness in ms).

    The residuals of a frame loop are not quite independent (a busy second delays several
    switches), so the interval is a guide to the noise, not an exact coverage probability.
    """
    n = len(points)
    if n < 3:
        raise ValueError("a slope and its interval need at least three switches")
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("the switches must be spread over time")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    residual = sum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in points)
    half = t_quantile_975(n - 2) * math.sqrt(residual / (n - 2) / sxx)
    return Drift(slope * MS_PER_H, (slope - half) * MS_PER_H, (slope + half) * MS_PER_H, samples=n)


@dataclass
class Results:
    switches: int
    item_ms: int
    late_p50_ms: float
    late_p99_ms: float
    late_max_ms: float
    late_p50_frames: float
    late_p99_frames: float
    late_max_frames: float
    first_100_mean_ms: float
    last_100_mean_ms: float
    player_drift: Drift
    baseline_drift: Drift
    baseline_last_late_ms: float
    static_cpu_s_per_min: float
    every_frame_cpu_s_per_min: float
    static_cpu_percent: float
    cpu_ratio: float
    within_1_frame: float
    within_2_frames: float
    idle_loop_p99_ms: float
    idle_loop_max_ms: float


def _make_content(directory: Path) -> dict[str, str]:
    """Two photo-like JPEGs (gradients decode like pictures, not like flat colours)."""
    from PIL import Image

    from player import sha256_of

    shas = {}
    for name, tint in (("one.jpg", (40, 90, 200)), ("two.jpg", (210, 120, 40))):
        gradient = Image.linear_gradient("L").resize((1280, 720))
        picture = Image.merge("RGB", [gradient.point(lambda v, t=t: (v * t) // 255) for t in tint])
        path = directory / name
        picture.save(path, quality=85)
        shas[name] = sha256_of(path)
    return shas


def _manifest(shas: dict[str, str], item_ms: int) -> Manifest:
    from protocol import Manifest

    one, two = shas["one.jpg"], shas["two.jpg"]
    return Manifest.model_validate(
        {
            "version": 1,
            "assets": [{"sha256": s, "size": 1, "mime": "image/jpeg"} for s in (one, two)],
            "playlists": [
                {
                    "id": "images",
                    "items": [
                        {"id": "one", "type": "image", "asset": one, "duration_ms": item_ms},
                        {"id": "two", "type": "image", "asset": two, "duration_ms": item_ms},
                    ],
                },
                {"id": "text", "items": [{"id": "t", "type": "text", "text": "Welcome"}]},
                {"id": "clock", "items": [{"id": "c", "type": "clock", "format": "%H:%M:%S"}]},
            ],
            "layouts": [
                {
                    "id": "bench",
                    "width": SIZE[0],
                    "height": SIZE[1],
                    "zones": [
                        {"id": "main", "x": 0, "y": 0, "w": 1440, "h": 960, "playlist": "images"},
                        {"id": "side", "x": 1440, "y": 0, "w": 480, "h": 960, "playlist": "clock"},
                        {"id": "text", "x": 0, "y": 960, "w": 1920, "h": 120, "playlist": "text"},
                    ],
                }
            ],
            "default_layout": "bench",
        }
    )


def _settings() -> Settings:
    from core import Settings

    return Settings.model_validate(
        {"display": {"width": SIZE[0], "height": SIZE[1], "fullscreen": False, "driver": "dummy"}}
    )


async def _player_switches(
    manifest: Manifest, assets: DirectoryAssets, switches: int, item_ms: int
) -> list[tuple[float, float]]:
    """(deadline in ms since the first, late_ms) of every switch of the image zone after the
    first frame."""
    from player import MediaClock, Player, TimelineEvent

    lates: list[tuple[float, float]] = []
    done = asyncio.Event()

    def on_event(event: TimelineEvent) -> None:
        if (
            event.event == "start"
            and event.zone == "main"
            and event.late_ms is not None
            and event.due is not None
        ):
            lates.append((event.due * 1000, event.late_ms))
            if len(lates) > switches:
                done.set()

    player = Player(_settings(), clock=MediaClock(), assets=assets, device="bench")
    player.add_listener(on_event)
    await player.start()
    try:
        await player.set_manifest(manifest)
        await asyncio.wait_for(done.wait(), timeout=switches * item_ms / 1000 * 3 + 30)
    finally:
        await player.stop()
    first = lates[1][0] if len(lates) > 1 else 0.0
    return [(due - first, late) for due, late in lates[1 : switches + 1]]


def _switch_runs(manifest: Manifest, directory: Path, args: argparse.Namespace) -> list[Lateness]:
    """``signage play`` in each place (headless, window) on each path asked for."""
    import os

    from tools.bench._lateness import Lateness, measure
    from tools.bench._xvfb import xvfb, xvfb_available

    path = directory / "manifest.json"
    path.write_text(manifest.model_dump_json(by_alias=True))
    renderers = ["software", "gl"] if args.renderer == "both" else [args.renderer]
    runs: list[Lateness] = []

    def run(where: str, display: str | None) -> None:
        for renderer in renderers:
            print(
                f"signage play: {args.switches} switches, {where}, {renderer}...", file=sys.stderr
            )
            runs.append(
                measure(
                    path, directory, switches=args.switches, item_ms=args.item_ms,
                    renderer=renderer, display=display, where=where,
                )
            )  # fmt: skip

    if args.where in ("both", "headless"):
        run("headless", None)
    if args.where in ("both", "window"):
        if os.environ.get("DISPLAY"):
            run(f"window ({os.environ['DISPLAY']})", os.environ["DISPLAY"])
        elif xvfb_available():
            with xvfb(SIZE) as display:
                run("window (Xvfb 1920x1080)", display)
        else:
            runs += [Lateness("window", r, error="no $DISPLAY and no Xvfb") for r in renderers]
    return runs


async def _baseline_switches(
    assets: DirectoryAssets, shas: dict[str, str], switches: int, item_ms: int
) -> list[tuple[float, float]]:
    """The same switches, the next item prepared while one shows (same renderer, same decode
    cache, same compositor and display), but paced by ``await sleep(duration)`` after each
    switch: (scheduled ms since the first switch, lateness against that schedule)."""
    import pygame

    from protocol import ImageItem
    from zones import Compositor, ImageRenderer, RenderContext, Scene, ScreenDisplay, ZoneView

    context = RenderContext(zone_id="main", asset_path=assets.path_of)
    scene = Scene("baseline", SIZE)
    view = scene.add_zone(ZoneView("main", pygame.Rect(0, 0, 1440, 960)))
    display = ScreenDisplay(_settings().display)
    compositor = Compositor(display)
    compositor.present(scene)
    items = [ImageItem(id=n, type="image", asset=shas[n], duration_ms=item_ms) for n in shas]

    async def prepared(k: int) -> ImageRenderer:
        renderer = ImageRenderer(context)
        await renderer.prepare(items[k % 2], view.rect.size)
        return renderer

    following = asyncio.create_task(prepared(0))
    points: list[tuple[float, float]] = []
    start: int | None = None
    try:
        for k in range(switches + 1):
            renderer = await following
            view.show(renderer, time.monotonic_ns())
            compositor.compose(time.monotonic_ns())
            presented = time.monotonic_ns()
            start = presented if start is None else start
            scheduled = k * item_ms
            points.append((scheduled, (presented - start) / 1e6 - scheduled))
            following = asyncio.create_task(prepared(k + 1))  # preloaded, as the player does
            await asyncio.sleep(item_ms / 1000)
        (await following).release()
    finally:
        scene.release()
        display.close()
    return points[1:]


async def _cpu_static(manifest: Manifest, assets: DirectoryAssets, seconds: float) -> float:
    """CPU seconds used per wall second by the player on a slideshow of 5 s items."""
    from player import MediaClock, Player
    from protocol import Manifest

    data = manifest.model_dump(by_alias=True)
    for item in data["playlists"][0]["items"]:
        item["duration_ms"] = 5_000
    slideshow = Manifest.model_validate(data)
    player = Player(_settings(), clock=MediaClock(), assets=assets, device="bench")
    await player.start()
    try:
        await player.set_manifest(slideshow)
        await asyncio.sleep(1.0)  # first decode and first frame are not the steady state
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu) / (time.monotonic() - wall)
    finally:
        await player.stop()


async def _cpu_every_frame(manifest: Manifest, assets: DirectoryAssets, seconds: float) -> float:
    """The same layout composed and presented in full 60 times a second."""
    from player import NS_PER_S, MediaClock, Presentation
    from zones import Compositor, RenderContext, ScreenDisplay

    clock = MediaClock()
    layout = manifest.layout("bench")

    def context(zone_id: str) -> RenderContext:
        return RenderContext(zone_id=zone_id, asset_path=assets.path_of)

    presentation = Presentation(manifest, layout, clock=clock, preload_ns=0, context_for=context)
    await presentation.prime()
    display = ScreenDisplay(_settings().display)
    compositor = Compositor(display)
    presentation.start(clock.now_ns())
    presentation.tick(clock.now_ns())
    compositor.present(presentation.scene)
    frame_ns = NS_PER_S // 60
    cpu, wall = time.process_time(), time.monotonic()
    deadline = clock.now_ns()
    end = deadline + int(seconds * NS_PER_S)
    while deadline < end:
        presentation.scene.invalidate()
        compositor.compose(clock.now_ns())
        deadline += frame_ns
        await clock.sleep_until(deadline)
    used = (time.process_time() - cpu) / (time.monotonic() - wall)
    presentation.release()
    display.close()
    return used


async def _idle_loop_lateness(samples: int = 300) -> list[float]:
    """How late an otherwise idle asyncio loop wakes on this machine: the noise floor."""
    lates = []
    for _ in range(samples):
        deadline = time.monotonic_ns() + 20_000_000
        await asyncio.sleep((deadline - time.monotonic_ns()) / 1e9)
        lates.append((time.monotonic_ns() - deadline) / 1e6)
    return sorted(lates)


def _summary(
    points: list[tuple[float, float]],
    baseline: list[tuple[float, float]],
    static: float,
    every: float,
    idle: list[float],
    args: Any,
) -> Results:
    lates = [late for _, late in points]
    ordered = sorted(lates)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    edge = max(1, min(100, len(lates) // 4))
    head, tail = lates[:edge], lates[-edge:]
    return Results(
        switches=len(lates),
        item_ms=args.item_ms,
        late_p50_ms=statistics.median(lates),
        late_p99_ms=p99,
        late_max_ms=max(lates),
        late_p50_frames=statistics.median(lates) / FRAME_MS,
        late_p99_frames=p99 / FRAME_MS,
        late_max_frames=max(lates) / FRAME_MS,
        first_100_mean_ms=statistics.fmean(head),
        last_100_mean_ms=statistics.fmean(tail),
        player_drift=drift(points),
        baseline_drift=drift(baseline),
        baseline_last_late_ms=baseline[-1][1],
        static_cpu_s_per_min=static * 60,
        every_frame_cpu_s_per_min=every * 60,
        static_cpu_percent=static * 100,
        cpu_ratio=every / max(static, 1e-6),
        within_1_frame=sum(1 for x in lates if x <= FRAME_MS) / len(lates),
        within_2_frames=sum(1 for x in lates if x <= 2 * FRAME_MS) / len(lates),
        idle_loop_p99_ms=idle[min(len(idle) - 1, int(len(idle) * 0.99))],
        idle_loop_max_ms=idle[-1],
    )


def _verdict(r: Results, runs: list[Lateness]) -> Verdict:
    verdict = Verdict()
    verdict.check("switch lateness p99", round(r.late_p99_ms, 2), "<=", round(FRAME_MS, 1), " ms")
    verdict.check(
        "switch lateness max", round(r.late_max_ms, 2), "<=", round(2 * FRAME_MS, 1), " ms"
    )
    verdict.check(
        "player drift: distance of its 95 % interval from 0",
        round(r.player_drift.excludes_zero_by, 2),
        "<=",
        0,
        " ms/h",
    )
    verdict.check("static slideshow CPU", round(r.static_cpu_percent, 2), "<", 2.0, " % of a core")
    for run in runs:
        name = f"signage play {run.where}, {run.renderer}->{run.path}"
        if run.error is not None or not run.late_ms:
            verdict.check(f"{name}: lateness p99", None, "<=", round(FRAME_MS, 1), " ms")
        elif not run.software_rasteriser:  # llvmpipe's figures are the CPU's, not a GPU's
            verdict.check(f"{name}: p99", round(run.p99, 2), "<=", round(FRAME_MS, 1), " ms")
            verdict.check(f"{name}: max", round(run.max, 2), "<=", round(2 * FRAME_MS, 1), " ms")
    return verdict


def _drift_line(name: str, d: Drift) -> str:
    return (
        f"{name} {d.slope_ms_per_h:+.1f} ms/h (95 % interval {d.low_ms_per_h:+.1f} to "
        f"{d.high_ms_per_h:+.1f}, {d.samples} switches)"
    )


def _report(r: Results, runs: list[Lateness], verdict: Verdict) -> str:
    from tools.bench._lateness import HEADER

    lines = [
        f"switches: {r.switches} of {r.item_ms} ms items (3-zone 1920x1080 layout, headless)",
        f"late_ms  p50 {r.late_p50_ms:.2f}  p99 {r.late_p99_ms:.2f}  max {r.late_max_ms:.2f}",
        f"frames   p50 {r.late_p50_frames:.3f}  p99 {r.late_p99_frames:.3f}  "
        f"max {r.late_max_frames:.3f}  (at 60 Hz); within 1 frame {r.within_1_frame:.1%}, "
        f"within 2 {r.within_2_frames:.1%}",
        f"noise    an idle asyncio loop on this machine wakes p99 {r.idle_loop_p99_ms:.2f} ms, "
        f"max {r.idle_loop_max_ms:.2f} ms late",
        f"drift    mean lateness of the first switches {r.first_100_mean_ms:.2f} ms, "
        f"of the last {r.last_100_mean_ms:.2f} ms",
        "         " + _drift_line("player (absolute deadlines)", r.player_drift),
        "         "
        + _drift_line("baseline (chained sleeps)  ", r.baseline_drift)
        + f"; {r.baseline_last_late_ms:.1f} ms behind at the end",
        f"cpu      static slideshow {r.static_cpu_s_per_min:.2f} s/min "
        f"({r.static_cpu_percent:.2f} % of one core); redrawn every frame "
        f"{r.every_frame_cpu_s_per_min:.1f} s/min ({r.cpu_ratio:.0f}x more)",
        f"signage play, {r.item_ms} ms items, headless and in a real window, per path "
        "(GL on a software rasteriser: not checked, CPU-bound):",
        HEADER,
        *(run.row() for run in runs),
    ]
    return "\n".join([*lines, verdict.report()])


async def _bench(args: argparse.Namespace) -> tuple[Results, list[Lateness]]:
    from player import DirectoryAssets

    with tempfile.TemporaryDirectory(prefix="signage-bench-") as tmp:
        directory = Path(tmp)
        shas = await asyncio.to_thread(_make_content, directory)
        manifest = _manifest(shas, args.item_ms)
        assets = DirectoryAssets(directory)
        await asyncio.to_thread(assets.scan)
        print(f"player: {args.switches} switches...", file=sys.stderr)
        lates = await _player_switches(manifest, assets, args.switches, args.item_ms)
        print("baseline: the same switches paced by chained sleeps...", file=sys.stderr)
        baseline = await _baseline_switches(assets, shas, args.switches, args.item_ms)
        print("cpu: static slideshow, then every frame...", file=sys.stderr)
        static = await _cpu_static(manifest, assets, args.cpu_seconds)
        every = await _cpu_every_frame(manifest, assets, args.cpu_seconds)
        idle = await _idle_loop_lateness(50 if args.quick else 300)
        runs = await asyncio.to_thread(_switch_runs, manifest, directory, args)
    return _summary(lates, baseline, static, every, idle, args), runs


def _run(args: argparse.Namespace) -> int:
    import os

    if args.quick:
        args.switches, args.item_ms, args.cpu_seconds = 60, 100, 2.0
    if args.switches < 3 or args.item_ms < 1 or args.cpu_seconds <= 0:
        cannot_run("--switches must be >= 3, --item-ms >= 1 and --cpu-seconds > 0")
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    results, runs = asyncio.run(_bench(args))
    verdict = _verdict(results, runs)
    print(_report(results, runs, verdict))
    if args.json is not None:
        plays = [run.as_dict() for run in runs]
        figures = asdict(results) | {"signage_play": plays, "targets": verdict.as_json()}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return verdict.exit_code()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "timing",
        help="switch lateness, drift and idle CPU of the player",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--switches", type=int, default=1000, metavar="N")
    parser.add_argument("--item-ms", type=int, default=200, metavar="MS", help="image duration")
    parser.add_argument(
        "--cpu-seconds", type=float, default=15.0, metavar="S", help="length of each CPU run"
    )
    parser.add_argument(
        "--renderer",
        choices=["auto", "gl", "software", "both"],
        default="auto",
        help="presentation path of the signage play runs (default: auto, what a kiosk picks; "
        "both: software and GL side by side)",
    )
    parser.add_argument(
        "--where",
        choices=["both", "headless", "window"],
        default="both",
        help="signage play headless (SDL dummy or offscreen driver), in a real X11 window at "
        "1920x1080 ($DISPLAY, else Xvfb), or both (default)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures")
    parser.add_argument(
        "--quick", action="store_true", help="60 switches of 100 ms, 2 s CPU runs (a smoke run)"
    )
    parser.set_defaults(handler=_run)
