"""``signage bench timing``: switch lateness, drift against chained sleeps, idle CPU.

On the real monotonic clock, with a 1920x1080 layout of three zones (image, text, clock).
Three measurements in one run:

1. ``--switches`` image switches played by ``signage play``, headless and in a real X11 window
   at 1920x1080 (``$DISPLAY``, else Xvfb), on the path ``--renderer`` asks for (``both``: GL
   and software side by side): ``late_ms`` of each, measured from the presented frame, as
   p50/p99/max and in frames at 60 Hz; the mean lateness of the first and last hundred
   switches of the first run shows whether error accumulates.
2. the same switches by a naive loop (``show; sleep(duration)``): its accumulated drift, and the
   ratio to the player's.
3. CPU seconds per minute of the player on a static slideshow, against the same content redrawn
   and presented every frame.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core import Settings
    from player import DirectoryAssets
    from protocol import Manifest
    from tools.bench._lateness import Lateness

FRAME_MS = 1000 / 60
SIZE = (1920, 1080)


@dataclass
class Results:
    runs: list[dict[str, object]]
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
    player_drift_ms: float
    naive_drift_ms: float
    drift_ratio: float
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


def _switch_runs(manifest: Manifest, directory: Path, args: argparse.Namespace) -> list[Lateness]:
    """The lateness runs: each place (headless, window) on each path asked for."""
    from tools.bench._lateness import measure
    from tools.bench._xvfb import xvfb, xvfb_available

    path = directory / "manifest.json"
    path.write_text(manifest.model_dump_json(by_alias=True))
    renderers = ["software", "gl"] if args.renderer == "both" else [args.renderer]
    runs = []

    def run(where: str, display: str | None) -> None:
        for renderer in renderers:
            print(f"player: {args.switches} switches, {where}, {renderer}...", file=sys.stderr)
            runs.append(
                measure(
                    path, directory, switches=args.switches, item_ms=args.item_ms,
                    renderer=renderer, display=display, where=where,
                )
            )  # fmt: skip

    if args.where in ("both", "headless"):
        run("headless", None)
    if args.where in ("both", "window"):
        import os

        if os.environ.get("DISPLAY"):
            run(f"window ({os.environ['DISPLAY']})", os.environ["DISPLAY"])
        elif xvfb_available():
            with xvfb(SIZE) as display:
                run("window (Xvfb 1920x1080)", display)
        else:
            for renderer in renderers:
                missing = Lateness("window", renderer, error="no $DISPLAY and no Xvfb")
                runs.append(missing)
    return runs


async def _naive_switches(
    assets: DirectoryAssets, shas: dict[str, str], switches: int, item_ms: int
) -> float:
    """Accumulated drift (ms) of ``show(item); await sleep(duration)`` over the same switches."""
    import pygame

    from protocol import ImageItem
    from zones import Compositor, ImageRenderer, OffscreenDisplay, RenderContext, Scene, ZoneView

    context = RenderContext(zone_id="main", asset_path=assets.path_of)
    scene = Scene("naive", SIZE)
    view = scene.add_zone(ZoneView("main", pygame.Rect(0, 0, 1440, 960)))
    compositor = Compositor(OffscreenDisplay(SIZE))
    compositor.present(scene)
    items = [ImageItem(id=n, type="image", asset=shas[n], duration_ms=item_ms) for n in shas]
    start = time.monotonic_ns()
    drift_ms = 0.0
    for k in range(switches + 1):
        renderer = ImageRenderer(context)
        await renderer.prepare(items[k % 2], view.rect.size)
        view.show(renderer, time.monotonic_ns())
        compositor.compose(time.monotonic_ns())
        drift_ms = (time.monotonic_ns() - (start + k * item_ms * 1_000_000)) / 1e6
        await asyncio.sleep(item_ms / 1000)
    scene.release()
    return drift_ms


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
    runs: list[Lateness],
    naive_drift: float,
    static: float,
    every: float,
    idle: list[float],
    args: Any,
) -> Results:
    lates = next((r.late_ms for r in runs if r.late_ms), [float("nan")] * 2)
    ordered = sorted(lates)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    head, tail = lates[:100], lates[-100:]
    player_drift = lates[-1]
    return Results(
        runs=[r.as_dict() for r in runs],
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
        player_drift_ms=player_drift,
        naive_drift_ms=naive_drift,
        drift_ratio=naive_drift / max(abs(player_drift), 0.01),
        static_cpu_s_per_min=static * 60,
        every_frame_cpu_s_per_min=every * 60,
        static_cpu_percent=static * 100,
        cpu_ratio=every / max(static, 1e-6),
        within_1_frame=sum(1 for x in lates if x <= FRAME_MS) / len(lates),
        within_2_frames=sum(1 for x in lates if x <= 2 * FRAME_MS) / len(lates),
        idle_loop_p99_ms=idle[min(len(idle) - 1, int(len(idle) * 0.99))],
        idle_loop_max_ms=idle[-1],
    )


def _report(r: Results, runs: list[Lateness]) -> str:
    from tools.bench._lateness import HEADER

    checks = [
        (f"{run.where}, {run.renderer}->{run.path}: p99 <= 1 frame and max <= 2", run.met)
        for run in runs
    ]
    checks += [
        (
            "no drift growth (last 100 vs first 100 < 1 ms)",
            r.last_100_mean_ms - r.first_100_mean_ms < 1.0,
        ),
        ("static slideshow < 2 % of one core", r.static_cpu_percent < 2.0),
    ]
    lines = [
        f"switch lateness of `signage play`, {r.item_ms} ms items (3-zone 1920x1080 layout):",
        HEADER,
        *(run.row() for run in runs),
        f"first run: within 1 frame {r.within_1_frame:.1%}, within 2 {r.within_2_frames:.1%}",
        f"noise    an idle asyncio loop on this machine wakes p99 {r.idle_loop_p99_ms:.2f} ms, "
        f"max {r.idle_loop_max_ms:.2f} ms late",
        f"drift    mean lateness of the first 100 {r.first_100_mean_ms:.2f} ms, "
        f"of the last 100 {r.last_100_mean_ms:.2f} ms",
        f"         accumulated: player {r.player_drift_ms:.2f} ms, chained sleeps "
        f"{r.naive_drift_ms:.1f} ms (ratio {r.drift_ratio:.0f}x)",
        f"cpu      static slideshow {r.static_cpu_s_per_min:.2f} s/min "
        f"({r.static_cpu_percent:.2f} % of one core); redrawn every frame "
        f"{r.every_frame_cpu_s_per_min:.1f} s/min ({r.cpu_ratio:.0f}x more)",
    ]
    lines += [f"[{'ok' if passed else 'MISSED'}] {name}" for name, passed in checks]
    return "\n".join(lines)


async def _bench(args: argparse.Namespace) -> tuple[Results, list[Lateness]]:
    from player import DirectoryAssets

    with tempfile.TemporaryDirectory(prefix="signage-bench-") as tmp:
        directory = Path(tmp)
        shas = await asyncio.to_thread(_make_content, directory)
        manifest = _manifest(shas, args.item_ms)
        assets = DirectoryAssets(directory)
        await asyncio.to_thread(assets.scan)
        runs = await asyncio.to_thread(_switch_runs, manifest, directory, args)
        print("naive chained-sleep loop...", file=sys.stderr)
        naive = await _naive_switches(assets, shas, args.switches, args.item_ms)
        print("cpu: static slideshow, then every frame...", file=sys.stderr)
        static = await _cpu_static(manifest, assets, args.cpu_seconds)
        every = await _cpu_every_frame(manifest, assets, args.cpu_seconds)
        idle = await _idle_loop_lateness()
    return _summary(runs, naive, static, every, idle, args), runs


def _run(args: argparse.Namespace) -> int:
    import os

    os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    results, runs = asyncio.run(_bench(args))
    print(_report(results, runs))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(results), indent=2) + "\n")
    return 0


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
        help="presentation path of the player (default: auto, what a kiosk picks; both: GL "
        "and software side by side)",
    )
    parser.add_argument(
        "--where",
        choices=["both", "headless", "window"],
        default="both",
        help="headless (SDL dummy or offscreen driver), in a real X11 window at 1920x1080 "
        "($DISPLAY, else Xvfb), or both (default)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures")
    parser.set_defaults(handler=_run)
