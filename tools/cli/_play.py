"""``signage play``: play a local manifest from a directory of files, without a server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core import ConfigError, atomic_write, configure_logging, state_dir
from tools.cli._common import add_config_options, load_from_args
from tools.cli._errors import printable

if TYPE_CHECKING:
    from core import Settings
    from protocol import Manifest


def _read_manifest(path: Path) -> Manifest:
    from pydantic import ValidationError

    from protocol import Manifest

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read the manifest: {exc}"], source=str(path)) from exc
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(problems, source=str(path)) from exc


async def _play(settings: Settings, manifest: Manifest, args: argparse.Namespace) -> int:
    from player import DirectoryAssets, MediaClock, Player, TimelineWriter
    from zones import open_display

    wanted = [a.sha256 for a in manifest.assets]
    assets = DirectoryAssets(args.assets, wanted=wanted)
    found = await asyncio.to_thread(assets.scan)  # hashes every file: never on the frame loop
    missing = len(set(wanted) - found.keys())
    if missing:
        print(f"signage play: {missing} asset(s) not found in {args.assets}", file=sys.stderr)
    timeline = TimelineWriter(args.timeline) if args.timeline else None
    display = open_display(settings.display)
    player = Player(
        settings,
        clock=MediaClock(),
        assets=assets,
        timeline=timeline,
        display=display,
        state_dir=state_dir(settings.data_dir),
    )
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    await player.start()
    try:
        await player.set_manifest(manifest)
        deadline = None if args.duration is None else loop.time() + args.duration
        while not done.is_set() and (deadline is None or loop.time() < deadline):
            if display.quit_requested():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.1)
        if args.screenshot is not None:
            png = await player.screenshot()
            await asyncio.to_thread(atomic_write, args.screenshot, png)
    finally:
        await player.stop()
        if timeline is not None:
            timeline.close()
    return 0


def _announce_pairing(
    code: str, server_url: str, device_name: str, expires_at: dt.datetime
) -> None:
    """The pairing code on stdout, for whoever started the player by hand (or over ssh)."""
    until = expires_at.astimezone().strftime("%H:%M:%S")
    print(
        printable(
            f"pairing code {code} for {server_url} (this screen: {device_name!r}, valid until "
            f"{until}); claim it with: signage admin pair {code} --server {server_url}"
        ),
        flush=True,
    )


def _run(args: argparse.Namespace) -> int:
    display: dict[str, object] = {}
    if args.renderer is not None:
        display["renderer"] = args.renderer
    if args.headless:
        # SDL's dummy driver has no OpenGL; its offscreen driver has (EGL), for --renderer gl.
        driver = "offscreen" if args.renderer == "gl" else "dummy"
        display |= {"driver": driver, "fullscreen": False}
    settings = load_from_args(args, **({"display": display} if display else {}))
    configure_logging(settings.logging.level, settings.logging.format)
    if args.screenshot is not None and not args.screenshot.parent.is_dir():
        # Said now, not after an hour of playing.
        raise ConfigError([f"not a directory: {args.screenshot.parent}"], source="--screenshot")
    server_url = args.server or (None if args.manifest else settings.sync.server_url)
    if server_url:  # the unattended daemon: pairing, sync, cache (docs/operations.md)
        from player import play_from_server

        return play_from_server(
            settings,
            server_url,
            timeline=args.timeline,
            duration_s=args.duration,
            screenshot=args.screenshot,
            on_pairing=_announce_pairing,
        )
    if args.manifest is None or args.assets is None:
        raise ConfigError(["give --server URL (or sync.server_url), or --manifest and --assets"])
    manifest = _read_manifest(args.manifest)
    if not args.assets.is_dir():
        raise ConfigError([f"not a directory: {args.assets}"], source="--assets")
    return asyncio.run(_play(settings, manifest, args))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "play",
        help="play what a server schedules (--server), or a local manifest",
        description="Play a manifest (JSON, the wire format) from a directory of asset files. "
        "Files may have any name: each is hashed at start and served by its sha256; a file "
        "whose hash is not in the manifest is never shown.",
    )
    parser.add_argument(
        "--server", metavar="URL", help="play what this server schedules (the unattended daemon)"
    )
    parser.add_argument("--manifest", type=Path, metavar="FILE")
    parser.add_argument("--assets", type=Path, metavar="DIR")
    parser.add_argument(
        "--timeline", type=Path, metavar="FILE", help="append timeline events (JSON lines)"
    )
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: never)"
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PNG",
        help="save the last frame when stopping (with --server too)",
    )
    parser.add_argument(
        "--headless",
        action="store_true",
        help="no window (SDL's dummy driver; its offscreen one with --renderer gl), e.g. for tests",
    )
    parser.add_argument(
        "--renderer",
        choices=["auto", "gl", "software"],
        help="presentation path (default: display.renderer, auto): GL or software compositing",
    )
    add_config_options(parser)
    parser.set_defaults(handler=_run)
