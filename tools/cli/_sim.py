"""``signage sim``: run real players headless against the reference server and report."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("sim-out")
# At --speed max, animation (tickers, fades, a seconds clock) is sampled every 10 s of media
# time; switches are presented at their deadlines whatever this is (docs/simulator.md).
MAX_SPEED_FPS = 0.1


def _speed(text: str) -> float | str:
    if text == "max":
        return "max"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a positive number or 'max', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a positive number or 'max', got {text!r}")
    return value


def _fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"frames per second, got {text!r}") from None
    if not 0.001 <= value <= 240:
        raise argparse.ArgumentTypeError(f"between 0.001 and 240 frames per second, got {text}")
    return value


def _duration(text: str) -> float:
    value = float(text)
    if not 0 < value <= 31 * 86_400:
        raise argparse.ArgumentTypeError(f"between 0 and 31 days in seconds, got {text}")
    return value


def _start(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an ISO 8601 time, got {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("--start needs a UTC offset, e.g. +01:00 or Z")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run real players headless against the reference server",
        description=(
            "Start the reference server (unless --server), seed content, start N real players "
            "headless that pair through the real flow, and run them for S seconds of media "
            "time. Writes OUT/timeline.jsonl, OUT/frames/, OUT/summary.json and each device's "
            "state under OUT/devices/. With --speed max a virtual clock jumps from deadline "
            "to deadline."
        ),
    )
    parser.add_argument("--duration", type=_duration, metavar="S", help="media seconds (60)")
    parser.add_argument(
        "--speed", type=_speed, metavar="N|max", help="1 = real time (default), or max"
    )
    parser.add_argument("--devices", type=int, metavar="N", help="players to run (1)")
    parser.add_argument("--server", metavar="URL", help="use this server (SIGNAGE_ADMIN_TOKEN)")
    parser.add_argument(
        "--content", metavar="demo|DIR", help="content folder with content.toml (demo)"
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE|NAME",
        help="events and expectations: a TOML file, or a bundled scenario's name",
    )
    parser.add_argument(
        "--start", type=_start, metavar="ISO", help="wall time at the start (default: now)"
    )
    parser.add_argument(
        "--frames",
        metavar="POLICY",
        help="none, switch, first (+start: also a transition's first frame) or every:N (see docs)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where timeline.jsonl, frames/, summary.json and devices/ go ({DEFAULT_OUT})",
    )
    parser.add_argument(
        "--window",
        action="store_true",
        help="show the first device in a window (needs a display)",
    )
    parser.add_argument(
        "--renderer",
        choices=["auto", "gl", "software"],
        default="software",
        help="presentation path of the players (default: software; gl: each device draws "
        "into its own framebuffer of one offscreen OpenGL context, see docs/simulator.md)",
    )
    parser.add_argument(
        "--fps",
        type=_fps,
        metavar="N",
        help=f"the players' frame-rate cap for animation, may be below 1 "
        f"(default: 60, or {MAX_SPEED_FPS:g} with --speed max)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port of the in-process server (default: any free)"
    )
    parser.add_argument(
        "--adopt",
        action="store_true",
        help="screens paired by hand to the in-process server get the same content (the demo)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only the summary")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="error",
        help="the devices' and server's log (stderr; default: error)",
    )
    parser.set_defaults(handler=run)


def _pick(cli: Any, scenario: Any, default: Any) -> Any:
    if cli is not None:
        return cli
    return default if scenario is None else scenario


def build_options(args: argparse.Namespace) -> Any:
    from core import ConfigError
    from tools.sim import FramePolicy, SimOptions, check_events_fit, load_scenario

    scenario = load_scenario(scenario_path(args.scenario)) if args.scenario is not None else None
    run = scenario.run if scenario is not None else None
    speed = _pick(args.speed, run.speed if run else None, 1.0)
    if isinstance(speed, str):
        speed = None if speed == "max" else float(speed)
    duration = _pick(args.duration, run.duration if run else None, 60.0)
    devices = _pick(args.devices, run.devices if run else None, 1)
    if not 1 <= devices <= 64:
        raise ConfigError([f"--devices: between 1 and 64, got {devices}"])
    frames = _pick(args.frames, run.frames if run else None, "first" if speed is None else "switch")
    content = _pick(args.content, run.content if run else None, "demo")
    content_base = scenario.base if scenario is not None and args.content is None else Path.cwd()
    if scenario is not None:
        check_events_fit(scenario, duration, source=str(args.scenario))
    token = os.environ.get("SIGNAGE_ADMIN_TOKEN") if args.server else None
    if args.server and not token:
        raise ConfigError(["--server needs the server's admin token in SIGNAGE_ADMIN_TOKEN"])
    if args.server and scenario is not None and scenario.server:
        raise ConfigError(["the scenario's [server] settings need the in-process server"])
    return SimOptions(
        duration_s=duration,
        out=args.out,
        speed=speed,
        devices=devices,
        content=content,
        content_base=content_base,
        server_url=args.server,
        admin_token=token,
        scenario=scenario,
        start=_pick(args.start, run.start if run else None, None),
        frames=FramePolicy.parse(frames),
        device_overrides=_device_overrides(scenario),
        server_overrides=dict(scenario.server) if scenario is not None else {},
        fps=_frame_rate(scenario, speed, args.fps),
        make_display=_display_maker(args.window, args.renderer),
        port=args.port,
        adopt=args.adopt,
        progress=(lambda _m: None) if args.quiet else _progress,
    )


def scenario_path(given: Path) -> Path:
    """A file, or the name of a scenario bundled in tools/demo/scenarios/."""
    from tools.sim import DEMO_DIR

    bundled = DEMO_DIR / "scenarios" / f"{given.name.removesuffix('.toml')}.toml"
    if not given.exists() and given.parent == Path() and bundled.exists():
        return bundled
    return given


def _device_overrides(scenario: Any) -> dict[str, Any]:
    """The scenario's device settings (copied: the devices may add to them)."""
    return {
        k: dict(v) if isinstance(v, dict) else v
        for k, v in (scenario.settings if scenario is not None else {}).items()
    }


def _frame_rate(scenario: Any, speed: float | None, fps: float | None) -> float | None:
    """The players' animation frame rate; None: their settings' ``player.frame_rate_hz``.

    At ``--speed max`` animation is sampled at ``MAX_SPEED_FPS`` unless ``--fps`` or the
    scenario's ``player.frame_rate_hz`` says otherwise: a virtual day has tens of thousands of
    animation frames (a ticker, fades) that take real time to compose but say nothing about
    timing; switches are still presented exactly at their deadlines.
    """
    if fps is not None:
        return fps
    player = scenario.settings.get("player", {}) if scenario is not None else {}
    if speed is None and not (isinstance(player, dict) and "frame_rate_hz" in player):
        return MAX_SPEED_FPS
    return None


def _progress(message: str) -> None:
    print(f"sim: {message}", file=sys.stderr, flush=True)


def _display_maker(window: bool, renderer: Any) -> Any:
    """The devices' displays: offscreen, on the chosen path; with ``window`` the first device
    in a window (pygame has one window: the others draw offscreen, on the GL path into
    framebuffers of the window's context)."""
    if not window and renderer == "software":
        return None  # the simulator's default: OffscreenDisplay

    def make(index: int) -> Any:
        from core import DisplayConfig
        from zones import offscreen_display, open_display

        if window and index == 0:
            config = DisplayConfig(
                width=1280, height=720, fullscreen=False, hide_cursor=False, renderer=renderer
            )
            return open_display(config)
        return offscreen_display(renderer=renderer)

    return make


async def _simulate(options: Any) -> Any:
    """The run, with Ctrl-C and SIGTERM ending it early (the summary covers what ran)."""
    import asyncio
    import signal

    from tools.sim import Simulation, prepare_out

    prepare_out(options.out)
    simulation = Simulation(options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, simulation.request_stop)
    try:
        return await simulation.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    import asyncio

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    from core import configure_logging
    from tools.sim import format_table

    configure_logging(args.log_level, "logfmt")
    options = build_options(args)
    if not args.window:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    result = asyncio.run(_simulate(options))
    print(format_table(result.summary))
    print(f"\n  outputs in {result.out}/ (timeline.jsonl, summary.json, frames/, devices/)")
    if options.scenario is not None:
        if result.failures:
            print(f"\nscenario FAILED ({args.scenario}):")
            for failure in result.failures:
                print(f"  - {failure}")
            return 1
        print(f"\nscenario passed ({args.scenario})")
    return 0
