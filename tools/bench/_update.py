"""``signage bench update``: admin publish → first frame of the new content, over SSE and polling,
and admin interrupt → its first frame.

The reference server runs in a thread on 127.0.0.1; the real daemon (cache, player with a
headless display, sync) is paired to it. Each update replaces the playlist's item with a new
one through the admin API; the latency is measured from just before the admin call to the
timeline ``start`` event of the new item, which the player emits once the frame showing it was
presented. The polling run makes the server refuse the event stream (503), so the device falls
back to ``If-None-Match`` polling at ``--poll-interval``; updates are spaced at random phases
of that interval. The interrupt run sends an interrupt (a text layout over everything, until
cleared) through the admin API, measured from just before the call to the timeline's
``interrupt`` start, then clears it. Targets (DESIGN section 14): p99 < 1 s over SSE (an
update and an interrupt alike), p99 < poll interval + 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from tools.bench._verdict import Verdict, cannot_run

SSE_TARGET_S = 1.0
Message = MutableMapping[str, Any]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "update",
        help="update latency, admin publish (or interrupt) to first frame (SSE and polling)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--updates", type=int, default=20, help="updates per mode (default 20)")
    parser.add_argument(
        "--poll-interval", type=float, default=2.0, help="device poll interval, s (default 2)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--quick", action="store_true", help="3 updates per mode, 1 s poll interval (a smoke run)"
    )
    parser.set_defaults(handler=_handler)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 20 samples is the largest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _no_events(app: Any) -> Callable[..., Awaitable[None]]:
    """The server with its event stream refused: what a proxy that breaks SSE looks like."""

    async def wrapped(scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/device/events"):
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return wrapped


class _Server:
    def __init__(self, data_dir: Path, *, events: bool) -> None:
        import uvicorn
        from pydantic import SecretStr

        from core import ServerConfig, Settings
        from server import create_app

        self.token = secrets.token_urlsafe(24)
        settings = Settings(server=ServerConfig(admin_token=SecretStr(self.token)))
        app: Any = create_app(settings, data_dir)
        config = uvicorn.Config(
            app if events else _no_events(app),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                cannot_run("the reference server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def _playlist(n: int) -> dict[str, Any]:
    return {"id": "bench", "items": [{"id": f"u{n}", "type": "text", "text": f"update {n}"}]}


async def _wait(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            cannot_run(f"update: timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def _measure(
    root: Path, *, sse: bool, updates: int, poll_s: float, interrupts: bool = False
) -> list[float]:
    from core import DisplayConfig, Settings, SyncConfig
    from player import Player, TimelineEvent, run_daemon
    from server import AdminClient
    from sync import SyncAgent

    server = _Server(root / "server", events=sse)
    seen: dict[str, float] = {}
    started: list[SyncAgent] = []

    def on_event(event: TimelineEvent) -> None:
        if event.event == "start" and event.item:
            seen.setdefault(event.item, time.monotonic())
        if event.event == "interrupt" and event.interrupt:
            seen.setdefault(f"{event.state}:{event.interrupt}", time.monotonic())

    def on_started(agent: SyncAgent, player: Player) -> None:
        started.append(agent)
        player.add_listener(on_event)

    settings = Settings(
        data_dir=root / "device",
        display=DisplayConfig(width=320, height=180, fullscreen=False, driver="dummy"),
        sync=SyncConfig(device_name="bench", poll_interval_s=poll_s, backoff_max_s=0.5),
    )
    stop = asyncio.Event()
    daemon = asyncio.create_task(
        run_daemon(settings, server_url=server.url, stop=stop, on_started=on_started)
    )
    latencies: list[float] = []
    try:
        await _wait(lambda: bool(started) and started[0].pairing_code is not None, "pairing")
        agent = started[0]
        with AdminClient(server.url, server.token) as admin:
            device = await asyncio.to_thread(admin.claim, agent.pairing_code or "", "bench")
            await asyncio.to_thread(admin.put_playlist, _playlist(0))
            layout = {"id": "l1", "width": 320, "height": 180}
            layout["zones"] = [{"id": "main", "w": 320, "h": 180, "playlist": "bench"}]
            await asyncio.to_thread(admin.put_layout, layout)
            await asyncio.to_thread(admin.assign, device, default_layout="l1")
            await _wait(lambda: "u0" in seen, "the first content")
            if not sse:
                await _wait(lambda: bool(agent.watcher and agent.watcher.polling), "polling")
            if interrupts:
                alert = {"id": "alert", "items": [{"id": "a", "type": "text", "text": "alert"}]}
                await asyncio.to_thread(admin.put_playlist, alert)
                await asyncio.to_thread(admin.put_layout, layout | {"id": "alert", "zones": [
                    {"id": "main", "w": 320, "h": 180, "playlist": "alert"}]})  # fmt: skip
                for n in range(1, updates + 1):
                    await asyncio.sleep(random.uniform(0.05, 0.3))  # noqa: S311
                    sent_at = time.monotonic()
                    sent = await asyncio.to_thread(admin.interrupt, "alert", device=device)
                    key = f"start:{sent['id']}"
                    await _wait(lambda key=key: key in seen, f"interrupt {n}")  # type: ignore[misc]
                    latencies.append(seen[key] - sent_at)
                    await asyncio.to_thread(admin.clear_interrupt, sent["id"])
                    end = f"end:{sent['id']}"
                    await _wait(lambda end=end: end in seen, f"the end of interrupt {n}")  # type: ignore[misc]
                return latencies
            for n in range(1, updates + 1):
                await asyncio.sleep(random.uniform(0.05, poll_s if not sse else 0.3))  # noqa: S311
                published = time.monotonic()
                await asyncio.to_thread(admin.put_playlist, _playlist(n))
                await _wait(lambda n=n: f"u{n}" in seen, f"update {n}")  # type: ignore[misc]
                latencies.append(seen[f"u{n}"] - published)
    finally:
        stop.set()
        await daemon
        server.stop()
    return latencies


def _summary(name: str, values: list[float], target_s: float) -> dict[str, Any]:
    p99 = percentile(values, 99)
    return {
        "mode": name,
        "updates": len(values),
        "p50_s": round(percentile(values, 50), 3),
        "p99_s": round(p99, 3),
        "max_s": round(max(values), 3),
        "target_p99_s": target_s,
        "p99_to_target": round(p99 / target_s, 3),
        "met": p99 < target_s,
    }


def _handler(args: argparse.Namespace) -> int:
    if args.quick:
        args.updates, args.poll_interval = 3, 1.0
    if args.updates < 1 or args.poll_interval < 0.1:
        cannot_run("--updates must be >= 1 and --poll-interval >= 0.1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from core import configure_logging

    # The polling run breaks SSE on purpose: its warnings are expected, not news.
    configure_logging("error")
    with tempfile.TemporaryDirectory(prefix="signage-bench-update-") as tmp:
        root = Path(tmp)
        sse = asyncio.run(
            _measure(root / "sse", sse=True, updates=args.updates, poll_s=args.poll_interval)
        )
        polling = asyncio.run(
            _measure(root / "poll", sse=False, updates=args.updates, poll_s=args.poll_interval)
        )
        interrupt = asyncio.run(
            _measure(
                root / "interrupt",
                sse=True,
                updates=args.updates,
                poll_s=args.poll_interval,
                interrupts=True,
            )
        )
    results = [
        _summary("sse", sse, SSE_TARGET_S),
        _summary("polling", polling, args.poll_interval + 1.0),
        _summary("interrupt", interrupt, SSE_TARGET_S),
    ]
    verdict = Verdict()
    for r in results:
        what = "latency" if r["mode"] == "interrupt" else "update latency"
        verdict.check(f"{r['mode']} {what} p99", r["p99_s"], "<", r["target_p99_s"], " s")
    if args.json:
        print(json.dumps({"modes": results, "targets": verdict.as_json()}, indent=2))
    else:
        for r in results:
            print(
                f"{r['mode']:8} updates={r['updates']} p50={r['p50_s']:.3f}s "
                f"p99={r['p99_s']:.3f}s max={r['max_s']:.3f}s (target p99 < "
                f"{r['target_p99_s']:g} s, ratio {r['p99_to_target']:.2f})"
            )
        print(verdict.report())
    return verdict.exit_code()
