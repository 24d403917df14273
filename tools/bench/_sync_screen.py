"""One screen of ``signage bench sync``, in a process of its own, as a real screen is.

Run by the benchmark (``python -m tools.bench._sync_screen SPEC``, SPEC a JSON object): a
simulated device on the real clock with its own clock offset and drift, paired to the
benchmark's server, its clock exchanges over HTTP with the network's delays added, playing
the group's content for ``duration`` seconds. It writes ``timeline.jsonl`` (times from its
own start on the host's monotonic clock, which every process shares) and ``screen.json``:
that start, and what the video watch saw.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


async def _play(spec: dict[str, Any]) -> dict[str, Any]:
    from tools.bench._sync import NS_PER_S, VideoWatch
    from tools.sim import (
        FramePolicy,
        SimOptions,
        Simulation,
        check_events_fit,
        parse_scenario,
        prepare_out,
    )

    out = Path(spec["out"])
    scenario = parse_scenario(spec["scenario"], base=out, source="signage bench sync")
    # Until the instant every screen stops (the host's monotonic clock is shared).
    duration_s = min(spec["duration"], (spec["until_ns"] - time.monotonic_ns()) / NS_PER_S)
    if duration_s <= 1:
        raise SystemExit(f"screen {spec['index']} started too late to play")
    check_events_fit(scenario, duration_s)
    options = SimOptions(
        duration_s=duration_s,
        out=out,
        speed=1.0,
        devices=1,
        content=Path(spec["content"]),
        server_url=spec["server"],
        admin_token=spec["token"],
        scenario=scenario,
        frames=FramePolicy.parse("none"),
        device_overrides=dict(scenario.settings),
        real_exchanges=True,
        first_device=spec["index"],
    )
    prepare_out(out)
    watch = VideoWatch(spec["epoch_s"] * NS_PER_S)

    class Watched(Simulation):
        def make_devices(self) -> None:
            super().make_devices()
            for device in self.devices:
                device.frame_listeners.append(functools.partial(watch.sample_at, device))

    simulation = Watched(options)
    errors_ms: list[float] = []

    async def watch_clock() -> None:
        """Every second: this screen's group time against the server's clock (this host's)."""
        while True:
            await asyncio.sleep(1.0)
            for device in simulation.devices:
                player = device.player
                if player is None or not player.timebase.synced:
                    continue
                media = device.clock.now_ns()
                truth = time.time_ns()
                errors_ms.append((player.timebase.group_ns(media) - truth) / 1e6)

    watcher = asyncio.create_task(watch_clock())
    try:
        result = await simulation.run()
    finally:
        watcher.cancel()
    return {
        "group_time_error_ms": errors_ms,
        "run_t0_ns": simulation.run_t0_ns,
        "deviations": watch.deviations,
        "seeks": sum(watch.seeks.values()),
        "errors": result.summary["errors"],
        "failures": result.failures,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from core import configure_logging

    configure_logging("error")  # a screen powered off on purpose is not news
    report = asyncio.run(_play(spec))
    (Path(spec["out"]) / "screen.json").write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
