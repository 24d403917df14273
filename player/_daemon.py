"""The unattended daemon behind ``signage play --server URL``: cache → player → sync.

Start order is cache, then the player (zones and compositor), then sync; stop is the reverse,
in ``finally``. SIGTERM and SIGINT stop cleanly; SIGUSR1 writes every thread's and task's stack
to stderr. The last good manifest plays from the cache before any network call, so a device
that boots without network shows its content. A ``restart`` command ends the daemon with
``player.restart_exit_code`` (systemd's ``Restart=always`` brings it back).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx
from pydantic import ValidationError

from cache import AssetCache, Limits
from core import ConfigError, SdNotifier, Settings, SyncConfig, atomic_write, state_dir
from player._clock import Clock, MediaClock
from player._player import Player
from player._power import PowerController
from player._timebase import Estimate
from player._timeline import TimelineEvent, TimelineWriter
from protocol import Manifest, PowerMetrics
from sync import HostStatus, ImpressionRecorder, RestartRequested, SyncAgent, TokenAuth
from zones import Display

log = logging.getLogger(__name__)

CACHE_DIR = "cache"


ShowPairing = Callable[[str, str, str, dt.datetime], None]


class DeviceAdapter:
    """``sync.DeviceHost`` over the real player and cache."""

    def __init__(
        self, player: Player, cache: AssetCache, *, on_pairing: ShowPairing | None = None
    ) -> None:
        self.player = player
        self.cache = cache
        self.on_pairing = on_pairing

    def show_pairing(
        self, code: str, server_url: str, device_name: str, expires_at: dt.datetime
    ) -> None:
        self.player.show_pairing(code, server_url, device_name, expires_at)
        if self.on_pairing is not None:
            self.on_pairing(code, server_url, device_name, expires_at)

    async def apply_manifest(self, manifest: Manifest) -> None:
        # Protected first: eviction must never take what the new manifest needs.
        self.cache.protect(a.sha256 for a in manifest.assets)
        await self.cache.ensure(manifest.assets)
        # The player switches once the resolved layout is playable; until then it keeps going.
        await self.player.set_manifest(manifest)

    def status(self) -> HostStatus:
        layout, items, dropped = self.player.snapshot()
        power = self.player.power.status()
        return HostStatus(
            state=self.player.state.value,
            layout=layout,
            items=items,
            dropped_frames=dropped,
            cache=self.cache.stats().as_metrics(),
            power=PowerMetrics(
                wanted=power.wanted,
                reason=power.reason,
                backend=power.backend,
                display=power.display,
                error=power.error,
            ),
            interrupt=self.player.interrupt(),
            quarantined=self.player.quarantined,
            time=self.player.time_status(),
        )

    def feed_server_time(self, server_time: dt.datetime) -> None:
        self.player.feed_server_time(server_time)

    @property
    def clock(self) -> Clock:
        return self.player.clock

    def system_time_ns(self) -> int | None:
        return self.player.wall.system_ns()

    def set_clock_estimate(self, estimate: Estimate | None) -> None:
        self.player.set_clock_estimate(estimate)

    async def reload(self) -> None:
        await self.player.reload()

    async def screenshot(self) -> bytes:
        return await self.player.screenshot()

    async def clear_cache(self) -> None:
        await self.cache.clear(keep_protected=True)

    def identify(self, text: str, seconds: float) -> None:
        self.player.identify(text, seconds)

    async def display_power(self, on: bool, seconds: float | None) -> None:
        await self.player.display_power(on, seconds)


@dataclass
class ImpressionFeed:
    """Turns timeline start/end events into proof-of-play records (with the played duration)."""

    recorder: ImpressionRecorder
    started: dict[tuple[str, str, str], dt.datetime] = field(default_factory=dict)

    def __call__(self, event: TimelineEvent) -> None:
        if event.event not in ("start", "end") or not (event.layout and event.zone and event.item):
            return
        key = (event.layout, event.zone, event.item)
        duration_ms = None
        if event.event == "start":
            self.started[key] = event.wall
        elif (began := self.started.pop(key, None)) is not None:
            duration_ms = max(0, round((event.wall - began).total_seconds() * 1000))
        self.recorder.record(
            layout=event.layout,
            zone=event.zone,
            item=event.item,
            event=event.event,
            at=event.wall,
            duration_ms=duration_ms,
        )


def dump_stacks(stream: TextIO | None = None) -> None:
    """Every thread's stack, then every asyncio task's, to stderr (SIGUSR1)."""
    out = stream or sys.stderr
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    print("=== threads ===", file=out)
    for ident, frame in sys._current_frames().items():
        print(f"--- thread {names.get(ident, ident)} ---", file=out)
        print("".join(traceback.format_stack(frame)), end="", file=out)
    print("=== asyncio tasks ===", file=out)
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()} ---", file=out)
        task.print_stack(file=out)
    out.flush()


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Generator[None, None, None]:
    loop = asyncio.get_running_loop()
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_stacks)
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _supervise(agent: SyncAgent, stop: asyncio.Event) -> int:
    """Run sync until ``stop``; the exit code (0, or the restart code a command asked for)."""
    sync_task = asyncio.create_task(agent.run(), name="sync")
    stop_task = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({sync_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if sync_task.done():
            try:
                sync_task.result()
            except RestartRequested as request:
                log.info("restarting on request", extra={"fields": {"code": request.exit_code}})
                return request.exit_code
        return 0
    finally:
        for task in (sync_task, stop_task):
            task.cancel()
        # Outcomes were read above; this only waits for the cancellations to finish.
        await asyncio.gather(sync_task, stop_task, return_exceptions=True)


def _status_text(player: Player) -> str:
    """What ``systemctl status`` shows: the state and, when playing, the layout."""
    layout = player.snapshot()[0]
    return f"{player.state.value} {layout}" if layout else player.state.value


async def run_daemon(
    settings: Settings,
    *,
    server_url: str,
    display: Display | None = None,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    on_started: Callable[[SyncAgent, Player], None] | None = None,
    on_pairing: ShowPairing | None = None,
    screenshot: Path | None = None,
) -> int:
    """Play what ``server_url`` schedules until SIGTERM (or ``stop``); returns the exit code.

    ``on_pairing`` hears each pairing code shown; ``screenshot`` receives the last frame as
    PNG when the daemon stops.
    """
    root = state_dir(settings.data_dir)
    root.mkdir(parents=True, exist_ok=True)
    stop = stop or asyncio.Event()
    notifier = SdNotifier.from_env()
    timeout = httpx.Timeout(30.0, connect=settings.sync.connect_timeout_s)
    agents: list[SyncAgent] = []

    def token() -> str | None:
        return agents[0].client.token if agents else None

    players: list[Player] = []

    def on_tick() -> None:
        notifier.watchdog.feed(time.monotonic())
        # READY once the screen shows something: systemd's "started" means a frame is up.
        if players and players[0].frames > 0:
            notifier.ready(_status_text(players[0]))

    def on_event(event: TimelineEvent) -> None:
        if event.event == "state" and players and players[0].frames > 0:
            notifier.status(_status_text(players[0]))

    with notifier, _signals(stop):
        async with (
            httpx.AsyncClient(timeout=timeout) as http,
            httpx.AsyncClient(
                base_url=server_url.rstrip("/"), timeout=timeout, auth=TokenAuth(token)
            ) as cache_http,
        ):
            cache = await AssetCache.open(
                root / CACHE_DIR, client=cache_http, limits=Limits.from_config(settings.cache)
            )
            try:
                player = Player(
                    settings,
                    clock=clock or MediaClock(),
                    assets=cache,
                    display=display,
                    state_dir=root,
                    power=PowerController(None, root),
                )
                adapter = DeviceAdapter(player, cache, on_pairing=on_pairing)
                agent = SyncAgent(
                    settings,
                    root,
                    adapter,
                    http=http,
                    server_url=server_url,
                    wall=player.wall.now,
                )
                agents.append(agent)
                try:
                    player.add_listener(ImpressionFeed(agent.recorder))
                    player.add_listener(on_event)
                    player.add_tick_listener(on_tick)
                    players.append(player)
                    await player.start()
                    try:
                        await agent.restore()
                        if on_started is not None:
                            on_started(agent, player)
                        return await _supervise(agent, stop)
                    finally:
                        notifier.notify("STOPPING=1")
                        if screenshot is not None:
                            png = await player.screenshot()
                            await asyncio.to_thread(atomic_write, screenshot, png)
                        await player.stop()
                finally:
                    # After the player: its last "end" events still reach the queue.
                    await agent.recorder.drain()
                    agent.close()
            finally:
                await cache.close()


def play_from_server(
    settings: Settings,
    server_url: str,
    *,
    timeline: Path | None = None,
    duration_s: float | None = None,
    screenshot: Path | None = None,
    on_pairing: ShowPairing | None = None,
) -> int:
    """``signage play --server URL``: run the daemon; the process exit code."""
    try:
        SyncConfig(server_url=server_url)
    except ValidationError as exc:
        raise ConfigError([f"not an http(s) URL: {server_url!r}"], source="--server") from exc
    writer = TimelineWriter(timeline) if timeline is not None else None

    async def main() -> int:
        stop = asyncio.Event()
        if duration_s is not None:
            asyncio.get_running_loop().call_later(duration_s, stop.set)

        def attach(agent: SyncAgent, player: Player) -> None:
            if writer is not None:
                player.add_listener(writer.write)

        return await run_daemon(
            settings,
            server_url=server_url,
            stop=stop,
            on_started=attach,
            on_pairing=on_pairing,
            screenshot=screenshot,
        )

    try:
        return asyncio.run(main())
    finally:
        if writer is not None:
            writer.close()
