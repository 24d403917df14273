"""``signage bench sync``: the screens of one sync group on this machine, in step or not.

Real players (the simulator's devices on the real clock: cache, player, sync agent, offscreen
displays), the real reference server on 127.0.0.1 and its real time endpoint. What one machine
cannot have is simulated: each screen's own clock (seconds off, up to 100 ppm fast or slow,
applied to what that player believes about time) and a network with jitter between the
screens and the server (delays added on the way out and back of every time exchange). One
screen is powered on late, another loses power for a few seconds and comes back.

The figure is, per boundary (an item switch on the group's grid, or a layout change), the
spread of its presentation across the screens: latest minus earliest presented frame, each
instant read on the host's monotonic clock right after the frame was handed to the display
(true time for every screen). A screen's first item after it loaded a layout on its own (boot,
joining, coming back) is shown at once, mid-slot, and is not a boundary. Targets (DESIGN
section 14): spread p99 < 1 frame (16.7 ms), max < 2 frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tools.bench._verdict import Verdict, cannot_run

FRAME_MS = 1000 / 60
SIZE = (640, 360)
COLOURS = {"red": (200, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 200)}
# Four screens: (system clock offset s, oscillator drift ppm).
CLOCKS = [(2.5, 80.0), (-4.1, -95.0), (0.7, 30.0), (11.0, -60.0)]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="spread of each switch across the screens of a sync group",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--devices", type=int, default=4, help="screens in the group (4)")
    parser.add_argument(
        "--latency-ms", type=float, default=1.0, help="one-way network latency (1 ms)"
    )
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=4.0,
        help="mean of the exponential extra delay each way (4 ms)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="20 s (a smoke run)")
    parser.set_defaults(handler=_handler)


def write_content(folder: Path) -> None:
    """Three coloured slides and a text strip, on short durations: many boundaries."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in COLOURS.items():
        Image.new("RGB", SIZE, colour).save(folder / f"{name}.png")
    width, height = SIZE
    (folder / "content.toml").write_text(
        f"""
default_layout = "wall"

[[playlists]]
id = "slides"
items = [
    {{ id = "red", type = "image", file = "red.png", duration_ms = 1000 }},
    {{ id = "green", type = "image", file = "green.png", duration_ms = 700 }},
    {{ id = "blue", type = "image", file = "blue.png", duration_ms = 1300 }},
]

[[playlists]]
id = "strip"
items = [
    {{ id = "one", type = "text", text = "one", duration_ms = 900, background = "#000000" }},
    {{ id = "two", type = "text", text = "two", duration_ms = 1100, background = "#202020" }},
]

[[layouts]]
id = "wall"
width = {width}
height = {height}
zones = [
    {{ id = "main", x = 0, y = 0, w = {width}, h = {height - 60}, playlist = "slides" }},
    {{ id = "strip", x = 0, y = {height - 60}, w = {width}, h = 60, playlist = "strip" }},
]
""",
        encoding="utf-8",
    )


def scenario_text(duration_s: float, devices: int, latency_ms: float, jitter_ms: float) -> str:
    join_at, restart_at = round(duration_s / 4, 1), round(duration_s * 0.6, 1)
    lines = [
        f"[sync]\nlatency_ms = {latency_ms}\njitter_ms = {jitter_ms}\nseed = 7\n",
        "[settings]\ndisplay = { width = 640, height = 360 }\n",
    ]
    for index in range(devices):
        offset, drift = CLOCKS[index % len(CLOCKS)]
        join = join_at if index == devices - 1 and devices > 1 else 0.0
        lines.append(
            f"[[devices]]\nclock_offset_s = {offset}\ndrift_ppm = {drift}\njoin_at = {join}\n"
        )
    if devices > 2:
        lines.append(
            f'[[events]]\nat = {restart_at}\naction = "restart_device"\ndevice = "sim-2"\n'
            "off_seconds = 1.5\n"
        )
    return "\n".join(lines)


async def _run(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from tools.sim import FramePolicy, SimOptions, Simulation, parse_scenario, prepare_out

    write_content(root / "content")
    scenario = parse_scenario(
        scenario_text(args.duration, args.devices, args.latency_ms, args.jitter_ms),
        base=root,
        source="signage bench sync",
    )
    options = SimOptions(
        duration_s=args.duration,
        out=root / "out",
        speed=1.0,
        devices=args.devices,
        content=root / "content",
        scenario=scenario,
        frames=FramePolicy.parse("none"),
        device_overrides=dict(scenario.settings),
        real_exchanges=True,
    )
    prepare_out(options.out)
    result = await Simulation(options).run()
    summary: dict[str, Any] = result.summary
    return summary


def _handler(args: argparse.Namespace) -> int:
    if args.quick:
        args.duration = 20.0
    if args.duration < 10 or not 2 <= args.devices <= 16:
        cannot_run("--duration must be at least 10 s and --devices between 2 and 16")
    if args.latency_ms < 0 or args.jitter_ms < 0:
        cannot_run("--latency-ms and --jitter-ms cannot be negative")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from core import configure_logging

    configure_logging("error")  # a screen powered off on purpose is not news
    with tempfile.TemporaryDirectory(prefix="signage-bench-sync-") as tmp:
        summary = asyncio.run(_run(Path(tmp), args))
    group = summary.get("sync") or {}
    spread = group.get("spread_ms") or {}
    verdict = Verdict()
    verdict.check("sync spread p99", spread.get("p99"), "<", round(FRAME_MS, 2), " ms")
    verdict.check("sync spread max", spread.get("max"), "<", round(2 * FRAME_MS, 2), " ms")
    verdict.check("boundaries on every screen", group.get("on_every_device"), ">", 0)
    verdict.check("errors", summary["errors"], "==", 0)
    report = {
        "devices": args.devices,
        "duration_s": args.duration,
        "network": {"latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms},
        "clocks": [
            {"clock_offset_s": o, "drift_ppm": d}
            for o, d in (CLOCKS[i % len(CLOCKS)] for i in range(args.devices))
        ],
        "sync": group,
        "switches": summary["switches"],
        "deadlines": summary["deadlines"],
        "late_ms": summary["late_ms"],
        "targets": verdict.as_json(),
    }
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    frames = {k: None if v is None else v / FRAME_MS for k, v in spread.items() if k != "count"}
    print(
        f"{args.devices} screens, {args.duration:g} s, time exchanges over HTTP with "
        f"{args.latency_ms:g} ms latency + {args.jitter_ms:g} ms mean jitter each way"
    )
    print(
        f"boundaries: {group.get('boundaries', 0)} "
        f"({group.get('on_every_device', 0)} on every screen; "
        f"{group.get('unmatched', 0)} starts of a screen on its own)"
    )
    if spread:
        print(
            f"spread: p50 {spread['p50']:.2f} ms  p99 {spread['p99']:.2f} ms  "
            f"max {spread['max']:.2f} ms  (frames at 60 Hz: p99 {frames['p99']:.2f}, "
            f"max {frames['max']:.2f})"
        )
    late = summary["late_ms"]
    if late.get("count"):
        print(f"lateness of each start: p99 {late['p99']} ms, max {late['max']} ms")
    print(verdict.report())
    return verdict.exit_code()
