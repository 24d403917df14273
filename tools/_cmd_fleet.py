"""``signage fleet``: load a server with many simulated devices (no rendering)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_DEVICES = 100
DEFAULT_DURATION_S = 60.0


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _device_count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"between 1 and 100000, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fleet",
        help="load a server with many simulated devices",
        description=(
            "Pair N lightweight devices (real protocol, no rendering) to a server, run their "
            "heartbeats (with jitter) and SSE streams for S seconds, change their content "
            "halfway through, and report heartbeats/s, heartbeat latency, errors and the time "
            "the change took to reach every device. Without --server a reference server runs "
            "in-process. Only loopback servers are accepted unless --allow-remote is given."
        ),
    )
    parser.add_argument("--devices", type=_device_count, default=DEFAULT_DEVICES, metavar="N")
    parser.add_argument("--duration", type=_positive_float, default=DEFAULT_DURATION_S, metavar="S")
    parser.add_argument(
        "--server",
        metavar="URL",
        help="an existing server (its admin token in SIGNAGE_ADMIN_TOKEN)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="accept a server that is not on this machine (you are about to load it)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=_positive_float,
        default=None,
        metavar="S",
        help="in-process server only: the interval it asks devices for (min 5, default 30)",
    )
    parser.add_argument(
        "--concurrency", type=_device_count, default=50, help="pairings in flight at once"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    parser.add_argument("--seed", type=int, help="seed of the jitter, for repeatable runs")
    parser.set_defaults(handler=run)


def _in_process_settings(args: argparse.Namespace, data_dir: Path) -> Any:
    from core import load_settings

    server: dict[str, Any] = {
        # One address pairs the whole fleet: the per-IP limit would otherwise pace it.
        "pairing_requests_per_ip": max(10, args.devices * 2),
    }
    if args.heartbeat_interval is not None:
        server["heartbeat_interval_s"] = max(5.0, args.heartbeat_interval)
    return load_settings(None, env={}, overrides={"data_dir": str(data_dir), "server": server})


def run(args: argparse.Namespace) -> int:
    import asyncio

    from core import ConfigError
    from tools._fleet import FleetOptions, format_fleet_report, require_loopback, run_fleet

    with tempfile.TemporaryDirectory(prefix="signage-fleet-") as scratch:
        running = None
        if args.server is None:
            from server import run_in_thread

            data_dir = Path(scratch)
            running = run_in_thread(_in_process_settings(args, data_dir), data_dir)
            url, token = running.url, running.admin_token
        else:
            if args.heartbeat_interval is not None:
                raise ConfigError(["--heartbeat-interval only applies to the in-process server"])
            url, token = args.server, os.environ.get("SIGNAGE_ADMIN_TOKEN", "")
            require_loopback(url, allow_remote=args.allow_remote)
            if not token:
                raise ConfigError(["--server needs the admin token in SIGNAGE_ADMIN_TOKEN"])
        options = FleetOptions(
            devices=args.devices,
            duration_s=args.duration,
            server_url=url,
            admin_token=token,
            concurrency=args.concurrency,
            seed=args.seed,
        )
        try:
            report = asyncio.run(run_fleet(options))
        finally:
            if running is not None:
                running.stop()
    print(format_fleet_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if report["paired"] == args.devices and not report["errors"] else 1
