"""``signage fleet``: load a server with many simulated devices (no rendering)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_DEVICES = 100
DEFAULT_DURATION_S = 60.0
START_TIMEOUT_S = 30.0


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
            "locally, in its own process. Only loopback servers are accepted unless "
            "--allow-remote is given."
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
        help="local server only: the interval it asks devices for (min 5, default 30)",
    )
    parser.add_argument(
        "--concurrency", type=_device_count, default=50, help="pairings in flight at once"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    parser.add_argument("--seed", type=int, help="seed of the jitter, for repeatable runs")
    parser.set_defaults(handler=run)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def local_server(args: argparse.Namespace, data_dir: Path) -> Iterator[tuple[str, str]]:
    """A reference server in its own process (a thread would share the fleet's GIL)."""
    import secrets
    import subprocess
    import time

    import httpx

    from core import ServerError

    token = secrets.token_urlsafe(32)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
    env |= {
        "SIGNAGE_ADMIN_TOKEN": token,
        "SIGNAGE_LOG_LEVEL": "warning",
        # One address pairs and connects the whole fleet: the per-IP limits would pace it.
        "SIGNAGE_SERVER__PAIRING_REQUESTS_PER_IP": str(max(10, args.devices * 2)),
        "SIGNAGE_SERVER__SSE_CONNECTS_PER_IP": str(max(300, args.devices * 4)),
    }
    if args.heartbeat_interval is not None:
        env["SIGNAGE_SERVER__HEARTBEAT_INTERVAL_S"] = str(max(5.0, args.heartbeat_interval))
    command = [sys.executable, "-m", "tools", "server", "--port", str(port)]
    process = subprocess.Popen([*command, "--data-dir", str(data_dir)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise ServerError(f"the local server exited with status {process.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"the local server did not answer on {url}")
            time.sleep(0.1)
        yield url, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(args: argparse.Namespace) -> int:
    import asyncio

    from core import ConfigError
    from tools.sim import FleetOptions, format_fleet_report, require_loopback, run_fleet

    with contextlib.ExitStack() as stack:
        if args.server is None:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="signage-fleet-"))
            url, token = stack.enter_context(local_server(args, Path(scratch)))
        else:
            if args.heartbeat_interval is not None:
                raise ConfigError(["--heartbeat-interval only applies to the local server"])
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
        report = asyncio.run(run_fleet(options))
    print(format_fleet_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if report["paired"] == args.devices and not report["errors"] else 1
