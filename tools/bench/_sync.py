"""``signage bench sync``: the screens of one sync group on this machine, in step or not.

Real players (the simulator's devices on the real clock: cache, player, sync agent, offscreen
displays), the real reference server on 127.0.0.1 and its real time endpoint. What one machine
cannot have is simulated: each screen's own clock (seconds off, up to 100 ppm fast or slow,
applied to what that player believes about time) and a network with jitter between the
screens and the server (delays added on the way out and back of every time exchange). One
screen is powered on late, another loses power for a few seconds and comes back.

Two figures, each checked against one and two display frames (16.7 and 33.3 ms; DESIGN
section 14):

- **switches**: per boundary (an item switch on the group's grid, or a layout change), the
  spread of its presentation across the screens: latest minus earliest presented frame, each
  instant read on the host's monotonic clock right after the frame was handed to the display
  (true time for every screen). A screen's first item after it loaded a layout on its own
  (boot, joining, coming back) is shown at once, mid-slot, and is not a boundary.
- **video**: a looping clip plays in one zone for six seconds of each cycle. After every
  presented frame, each screen's playback position (mpv's last report, carried forward to the
  frame's instant) is compared with the position true group time gives; the spread is, per
  100 ms of group time, the largest difference between the screens. The first 300 ms of each
  occurrence (a start, or a seek of a screen joining mid-clip) are left out: starts are what
  the first figure measures.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench._verdict import Verdict, cannot_run

FRAME_MS = 1000 / 60
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
SIZE = (640, 360)
CLIP = Path(__file__).resolve().parents[2] / "tests" / "data" / "video" / "h264_320x180_2s.mp4"
CLIP_SLOT_MS, AFTER_CLIP_MS = 6000, 1500  # the video zone's cycle: the clip, then a picture
SETTLE_NS = 300 * NS_PER_MS  # a start (or a joining seek) is not the steady state
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
    """Three coloured slides, a text strip (short durations: many boundaries) and a clip."""
    import shutil

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, colour in COLOURS.items():
        Image.new("RGB", SIZE, colour).save(folder / f"{name}.png")
    shutil.copy(CLIP, folder / "clip.mp4")
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
id = "clips"
items = [
    {{ id = "clip", type = "video", file = "clip.mp4", duration_ms = {CLIP_SLOT_MS}, loop = true }},
    {{ id = "after", type = "image", file = "green.png", duration_ms = {AFTER_CLIP_MS} }},
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
    {{ id = "main", x = 0, y = 0, w = {width // 2}, h = {height - 60}, playlist = "slides" }},
    {{ id = "video", x = {width // 2}, y = 0, w = {width // 2}, h = 180, playlist = "clips" }},
    {{ id = "strip", x = 0, y = {height - 60}, w = {width}, h = 60, playlist = "strip" }},
]
""",
        encoding="utf-8",
    )


def scenario_text(
    duration_s: float, devices: int, latency_ms: float, jitter_ms: float, epoch_s: int
) -> str:
    join_at, restart_at = round(duration_s / 4, 1), round(duration_s * 0.6, 1)
    epoch = dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat()
    lines = [
        f"[sync]\nepoch = {epoch}\nlatency_ms = {latency_ms}\njitter_ms = {jitter_ms}\nseed = 7\n",
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


class VideoWatch:
    """After each presented frame of each screen: how far its clip is from group time's
    position (true group time: the server's clock is this host's)."""

    def __init__(self, epoch_ns: int) -> None:
        self.epoch_ns = epoch_ns
        self.deviations: dict[str, list[tuple[int, float]]] = {}  # (group ns, ms) per screen
        self.seeks: dict[int, int] = {}  # per playing occurrence (renderer id)
        self.first_seen: dict[int, int] = {}  # when each occurrence was first seen playing

    def sample_at(self, device: Any, _t: float) -> None:
        self.sample(device)

    def sample(self, device: Any) -> None:
        now_mono, group_ns = time.monotonic_ns(), time.time_ns()
        player = device.player
        scene = None if player is None or player.compositor is None else player.compositor.active
        if scene is None:
            return
        views = [view for view in scene.zones if view.zone_id == "video"]
        if not views:
            return  # an idle screen (pairing, preparing)
        renderer = views[0].renderer
        position = getattr(renderer, "position", None)
        follower = getattr(renderer, "follower", None)
        if position is None or follower is None or not follower.duration_ns:
            return
        self.seeks[id(renderer)] = follower.seeks
        began = self.first_seen.setdefault(id(renderer), now_mono)
        if now_mono - began < SETTLE_NS:
            return  # this screen's start of the clip (or its seek, when it joined mid-clip)
        cycle = (CLIP_SLOT_MS + AFTER_CLIP_MS) * NS_PER_MS
        into = (group_ns - self.epoch_ns) % cycle
        if not SETTLE_NS <= into < CLIP_SLOT_MS * NS_PER_MS - SETTLE_NS:
            return
        seconds, seen_ns = position
        shown = round(seconds * NS_PER_S) + (now_mono - seen_ns)
        length = follower.duration_ns
        deviation = (shown - into + length // 2) % length - length // 2
        self.deviations.setdefault(device.name, []).append((group_ns, deviation / NS_PER_MS))

    def figures(self) -> dict[str, Any]:
        from tools.sim import distribution

        buckets: dict[int, dict[str, list[float]]] = {}
        for name, samples in self.deviations.items():
            for group_ns, deviation in samples:
                buckets.setdefault(group_ns // (100 * NS_PER_MS), {}).setdefault(name, []).append(
                    deviation
                )
        spreads = []
        for seen in buckets.values():
            if len(seen) >= 2:
                means = [sum(v) / len(v) for v in seen.values()]
                spreads.append(max(means) - min(means))
        every = [abs(d) for samples in self.deviations.values() for _, d in samples]
        return {
            "screens": len(self.deviations),
            "samples": len(every),
            "deviation_ms": distribution(every),
            "spread_ms": distribution(spreads),
            "seeks": sum(self.seeks.values()),
        }


async def _run(root: Path, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    from tools.sim import FramePolicy, SimOptions, Simulation, parse_scenario, prepare_out

    write_content(root / "content")
    epoch_s = int(time.time())
    scenario = parse_scenario(
        scenario_text(args.duration, args.devices, args.latency_ms, args.jitter_ms, epoch_s),
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
    watch = VideoWatch(epoch_s * NS_PER_S)

    class Watched(Simulation):
        def make_devices(self) -> None:
            super().make_devices()
            for device in self.devices:
                device.frame_listeners.append(functools.partial(watch.sample_at, device))

    result = await Watched(options).run()
    summary: dict[str, Any] = result.summary
    return summary, watch.figures()


def _handler(args: argparse.Namespace) -> int:
    if args.quick:
        args.duration = 20.0
    if args.duration < 10 or not 2 <= args.devices <= 16:
        cannot_run("--duration must be at least 10 s and --devices between 2 and 16")
    if args.latency_ms < 0 or args.jitter_ms < 0:
        cannot_run("--latency-ms and --jitter-ms cannot be negative")
    if not CLIP.is_file():
        cannot_run(f"the test clip is missing: {CLIP}")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from core import configure_logging

    configure_logging("error")  # a screen powered off on purpose is not news
    with tempfile.TemporaryDirectory(prefix="signage-bench-sync-") as tmp:
        summary, video = asyncio.run(_run(Path(tmp), args))
    group = summary.get("sync") or {}
    spread = group.get("spread_ms") or {}
    video_spread = video["spread_ms"]
    verdict = Verdict()
    verdict.check("sync spread p99", spread.get("p99"), "<", round(FRAME_MS, 2), " ms")
    verdict.check("sync spread max", spread.get("max"), "<", round(2 * FRAME_MS, 2), " ms")
    verdict.check("boundaries on every screen", group.get("on_every_device"), ">", 0)
    verdict.check("video spread p99", video_spread["p99"], "<", round(FRAME_MS, 2), " ms")
    verdict.check("video spread max", video_spread["max"], "<", round(2 * FRAME_MS, 2), " ms")
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
        "video": video,
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
    deviation = video["deviation_ms"]
    if video["samples"]:
        print(
            f"video: {video['samples']} frames on {video['screens']} screens, position off group "
            f"time p99 {deviation['p99']:.2f} ms, max {deviation['max']:.2f} ms; spread between "
            f"screens p99 {video_spread['p99']:.2f} ms, max {video_spread['max']:.2f} ms; "
            f"{video['seeks']} seek(s)"
        )
    late = summary["late_ms"]
    if late.get("count"):
        print(f"lateness of each start: p99 {late['p99']} ms, max {late['max']} ms")
    print(verdict.report())
    return verdict.exit_code()
