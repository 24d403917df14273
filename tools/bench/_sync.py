"""``signage bench sync``: the screens of one sync group on this machine, in step or not.

Real players (the simulator's devices on the real clock: cache, player, sync agent, offscreen
displays), each in a process of its own as each screen is a device of its own, against the real
reference server on 127.0.0.1 and its real time endpoint. What one machine cannot have is
simulated: each screen's own clock (seconds off, up to 100 ppm fast or slow, applied to what
that player believes about time) and a network with jitter between the screens and the server
(delays added on the way out and back of every time exchange). One screen is powered on late,
another loses power for a moment and comes back.

Two figures, each checked against one frame (p99) and two (max):

- **switches**, against display frames (16.7 and 33.3 ms, DESIGN section 14): per boundary (an
  item switch on the group's grid, or a layout change), the spread of its presentation across
  the screens: latest minus earliest presented frame, each instant read on the host's
  monotonic clock (shared by every process) right after the frame was handed to the display.
  A screen's first item after it loaded a layout on its own (boot, joining, coming back) is
  shown at once, mid-slot, and is not a boundary. The spread of the deadlines the screens
  aimed at is printed too: how well their clocks agreed, apart from how late each presented.
- **video**, against frames of the clip (40 and 80 ms for the 25 frames/s test clip; screens
  within one of its frames show the same picture of it): a 10 s clip plays in one zone, then
  a picture for 1.5 s. After every presented frame, each screen's playback position (mpv's
  last report, carried forward to the frame's instant) is compared with the position true
  group time gives; the spread is, per 100 ms of group time, the largest difference between
  the screens. The first 300 ms of each occurrence (its start, or the seek of a screen joining
  mid-clip) are left out: starts are what the first figure measures.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.bench._verdict import Verdict, cannot_run

FRAME_MS = 1000 / 60
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
SIZE = (640, 360)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # where ``python -m tools...`` resolves
CLIP = Path(__file__).resolve().parents[2] / "tests" / "data" / "video" / "h264_320x180_10s.mp4"
CLIP_SLOT_MS, AFTER_CLIP_MS = 10_000, 1500  # the video zone's cycle: the clip, then a picture
SETTLE_NS = 300 * NS_PER_MS  # a start (or a joining seek) is not the steady state
CLIP_FRAME_MS = 40.0  # the test clip is 25 frames/s (tests/data/video/make_clips.sh)
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
    parser.add_argument("--quick", action="store_true", help="30 s (a smoke run)")
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
    {{ id = "clip", type = "video", file = "clip.mp4", duration_ms = {CLIP_SLOT_MS} }},
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


def screen_scenario(index: int, args: argparse.Namespace, epoch_s: int, duration_s: float) -> str:
    """One screen's scenario: the group's sync and network, its own clock, its power cut."""
    offset, drift = CLOCKS[(index - 1) % len(CLOCKS)]
    epoch = dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat()
    # The last screen is powered on late (its process is up from the start: starting one
    # would take the others' CPU, which separate devices would not share).
    join_at = round(duration_s / 4, 1) if index == args.devices else 0.0
    text = (
        f"[sync]\nepoch = {epoch}\nlatency_ms = {args.latency_ms}\n"
        f"jitter_ms = {args.jitter_ms}\nseed = {index}\n\n"
        f"[[devices]]\nclock_offset_s = {offset}\ndrift_ppm = {drift}\njoin_at = {join_at}\n"
    )
    if index == 2 and args.devices > 2:  # the screen that loses power for a moment
        text += (
            f'\n[[events]]\nat = {round(duration_s * 0.5, 1)}\naction = "restart_device"\n'
            "off_seconds = 1.5\n"
        )
    return text


class VideoWatch:
    """After each presented frame of each screen: how far its clip is from group time's
    position (true group time: the server's clock is this host's)."""

    def __init__(self, epoch_ns: int) -> None:
        self.epoch_ns = epoch_ns
        self.deviations: dict[str, list[tuple[int, float]]] = {}  # (group ns, ms) per screen
        self.seeks: dict[int, int] = {}  # per playing occurrence (renderer id)
        self.first_seen: dict[int, int] = {}  # when each occurrence was first seen playing
        self.clip_frame_ms = CLIP_FRAME_MS  # the clip's frame interval, as mpv tells it

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
        interval = getattr(renderer, "frame_interval_ns", None)
        if isinstance(interval, int) and interval > 0:
            self.clip_frame_ms = interval / NS_PER_MS
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
            "clip_frame_ms": self.clip_frame_ms,
            "screens": len(self.deviations),
            "samples": len(every),
            "deviation_ms": distribution(every),
            "spread_ms": distribution(spreads),
            "seeks": sum(self.seeks.values()),
        }


async def _screen(index: int, spec: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str]:
    """Run one screen's process; (index, its report or None, its stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench._sync_screen",
        json.dumps(spec),
        cwd=PACKAGE_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    report = Path(spec["out"]) / "screen.json"
    if process.returncode != 0 or not report.is_file():
        return index, None, stderr.decode(errors="replace")[-2000:]
    loaded: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return index, loaded, ""


async def _run(
    root: Path, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], VideoWatch]:
    """Each screen in a process of its own, against one server in this one."""
    from core import load_settings
    from server import AdminClient, run_in_thread
    from tools.sim import GROUP, load_content, seed

    write_content(root / "content")
    settings = load_settings(
        None,
        env={},
        overrides={"data_dir": str(root / "server"), "server": {"pairing_requests_per_ip": 100}},
    )
    server = await asyncio.to_thread(run_in_thread, settings, root / "server")
    epoch_s = int(time.time())

    def spec(index: int, duration_s: float) -> dict[str, Any]:
        return {
            "index": index,
            "out": str(root / f"screen-{index}"),
            "duration": duration_s,
            "until_ns": until_ns,
            "content": str(root / "content"),
            "server": server.url,
            "token": server.admin_token,
            "epoch_s": epoch_s,
            "scenario": screen_scenario(index, args, epoch_s, duration_s),
        }

    try:
        # The content and the group's sync first, once: the screens then find it there.
        with AdminClient(server.url, server.admin_token) as admin:
            await asyncio.to_thread(seed, admin, load_content(root / "content"))
            epoch = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
            await asyncio.to_thread(admin.set_group_sync, GROUP, epoch=epoch)
        until_ns = time.monotonic_ns() + int(args.duration * NS_PER_S)  # all stop together
        done = await asyncio.gather(
            *(_screen(i, spec(i, args.duration)) for i in range(1, args.devices + 1))
        )
    finally:
        await asyncio.to_thread(server.stop)
    failed = [(i, err) for i, report, err in done if report is None]
    if failed:
        index, err = failed[0]
        cannot_run(f"screen {index} failed: {err.strip().splitlines()[-1:] or ['no output']}")
    from player import read_timeline

    reports = [report for _, report, _ in done if report is not None]
    base = min(r["run_t0_ns"] for r in reports)
    records: list[dict[str, Any]] = []
    watch = VideoWatch(epoch_s * NS_PER_S)
    for index, report, _ in done:
        assert report is not None
        shift = (report["run_t0_ns"] - base) / NS_PER_S
        for record in read_timeline(root / f"screen-{index}" / "timeline.jsonl"):
            record["t"] += shift
            if record.get("due") is not None:
                record["due"] += shift
            records.append(record)
        watch.deviations.update(report["deviations"])
        watch.seeks[index] = report["seeks"]
    return records, reports, watch


def _handler(args: argparse.Namespace) -> int:
    if args.quick:
        args.duration = 30.0
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
        records, reports, watch = asyncio.run(_run(Path(tmp), args))
    from tools.sim import distribution, sync_spread

    group = sync_spread(records, FRAME_MS) or {}
    spread = group.get("spread_ms") or {}
    video = watch.figures()
    video_spread = video["spread_ms"]
    starts = [r for r in records if r["event"] == "start"]
    late = distribution([float(r["late_ms"]) for r in starts if r.get("late_ms") is not None])
    # Each screen's group time against the server's clock, sampled every second.
    clock_error = {
        f"sim-{index}": distribution([abs(e) for e in report["group_time_error_ms"]])
        for index, report in enumerate(reports, start=1)
    }
    errors = sum(1 for r in records if r["event"] == "error")
    verdict = Verdict()
    verdict.check("sync spread p99", spread.get("p99"), "<", round(FRAME_MS, 2), " ms")
    verdict.check("sync spread max", spread.get("max"), "<", round(2 * FRAME_MS, 2), " ms")
    verdict.check("boundaries on every screen", group.get("on_every_device"), ">", 0)
    # A clip's "frame" is its own: screens within one show the same picture of it.
    clip_frame = video["clip_frame_ms"]
    verdict.check("video spread p99", video_spread["p99"], "<", round(clip_frame, 2), " ms")
    verdict.check("video spread max", video_spread["max"], "<", round(2 * clip_frame, 2), " ms")
    verdict.check("errors", errors, "==", 0)
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
        "switches": len(starts),
        "late_ms": late,
        "screens": [{k: r[k] for k in ("run_t0_ns", "seeks", "errors")} for r in reports],
        "group_time_error_ms": clock_error,
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
    print(
        "group time off the server's clock, max per screen: "
        + ", ".join(
            f"{name} {figures['max']:.2f} ms"
            for name, figures in clock_error.items()
            if figures["max"] is not None
        )
    )
    deadlines = group.get("deadline_spread_ms") or {}
    if deadlines.get("count"):
        print(
            f"deadlines the screens aimed at: spread p50 {deadlines['p50']:.2f} ms  "
            f"p99 {deadlines['p99']:.2f} ms  max {deadlines['max']:.2f} ms (their clocks' "
            "agreement; the rest of the spread is how late each presented)"
        )
    if late.get("count"):
        print(f"lateness of each start: p99 {late['p99']} ms, max {late['max']} ms")
    print(verdict.report())
    return verdict.exit_code()
