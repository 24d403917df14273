"""One simulated device: the real cache, player and sync agent, wired as the daemon wires them.

The differences from ``player.run_daemon`` are the simulator's and nothing else: the display
is offscreen (or a window for the demo) and watched for black frames, the wall clock comes from
the simulation's clock, the timeline goes to the run's file, the pairing code is handed to the
simulated operator, and the device can be stopped and started again over the same state
directory (a power cut).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pygame

from cache import AssetCache, Limits, cache_root
from core import Settings
from player import (
    NS_PER_S,
    DeviceAdapter,
    ImpressionFeed,
    Player,
    TimelineEvent,
    TimelineWriter,
    WallClock,
)
from protocol import Manifest, Transition
from sync import ManifestWatcher, SyncAgent, TokenAuth
from tools.sim._clock import DeviceClock, RealDeviceClock
from tools.sim._frames import blank_regions
from zones import Display

log = logging.getLogger(__name__)

CodeHandler = Callable[["SimDevice", str], None]
BlackHandler = Callable[["SimDevice", float, pygame.Surface], None]
MAX_BLACK_SAVED = 10  # black frames kept as PNG per device, for diagnosis
IMPRESSION_FLUSH_S = 1.0  # on a virtual clock: proof of play written once per real second
Listener = Callable[[TimelineEvent], None]


class _SimAdapter(DeviceAdapter):
    """The daemon's adapter, telling the simulation about pairing codes and manifests."""

    def __init__(self, device: SimDevice, player: Player, cache: AssetCache) -> None:
        super().__init__(player, cache)
        self._device = device

    def show_pairing(
        self, code: str, server_url: str, device_name: str, expires_at: dt.datetime
    ) -> None:
        super().show_pairing(code, server_url, device_name, expires_at)
        self._device.pairing_code(code)

    async def apply_manifest(self, manifest: Manifest) -> None:
        self._device._learn(manifest)
        await super().apply_manifest(manifest)
        self._device._note_watcher()


class SimDevice:
    """Start, stop (a power cut) and start again; everything lives under ``root``."""

    def __init__(
        self,
        name: str,
        root: Path,
        settings: Settings,
        *,
        clock: RealDeviceClock,
        server_url: str,
        make_display: Callable[[], Display],
        timeline: TimelineWriter,
        run_t0_ns: int,
        on_code: CodeHandler,
        frame_ns: int | None = None,
    ) -> None:
        self.name = name
        self.frame_ns = frame_ns  # the player's animation frame period (None: its settings')
        self.root = root
        self.settings = settings
        self.clock = clock
        self.server_url = server_url
        self._make_display = make_display
        self._timeline = timeline
        self._run_t0_ns = run_t0_ns
        self._on_code = on_code
        self.listeners: list[Listener] = []
        self.on_black: BlackHandler | None = None
        self.black_times: list[float] = []
        self._items: dict[str, Transition | None] = {}
        self._media: set[str] = set()
        self._dipping: dict[str, int] = {}
        self.manifest: Manifest | None = None
        self.player: Player | None = None
        self.agent: SyncAgent | None = None
        self.cache: AssetCache | None = None
        self.black_frames = 0
        self.dropped_frames = 0
        self.frames = 0
        self.starts = 0
        self.codes: list[str] = []
        self._offset_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self.display: Display | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._watchers: list[ManifestWatcher] = []  # of every sync session, for their counts

    # -- events ------------------------------------------------------------------------------

    def pairing_code(self, code: str) -> None:
        self.codes.append(code)
        self._on_code(self, code)

    def _emit(self, event: TimelineEvent) -> None:
        """Timeline times are seconds since the run began, across restarts of the player."""
        due = None if event.due is None else event.due + self._offset_s
        shifted = dataclasses.replace(event, t=event.t + self._offset_s, due=due)
        self._timeline.write(shifted)
        for listener in list(self.listeners):
            listener(shifted)

    def _note_dips(self, event: TimelineEvent) -> None:
        """A "fade" dips to the background on purpose: that zone is not checked meanwhile."""
        if event.event != "start" or self.manifest is None or event.zone is None:
            return
        transition = self._items.get(event.item or "")
        if transition is not None and transition.type == "fade":
            now = self.clock.now_ns()
            self._dipping[event.zone] = now + transition.duration_ms * 1_000_000

    def _watch(self, canvas: pygame.Surface) -> None:
        player = self.player
        manifest = self.manifest
        if player is None or manifest is None or player.state.value != "playing":
            return
        layout_id, items, _ = player.snapshot()
        if layout_id is None or layout_id not in {x.id for x in manifest.layouts}:
            return
        layout = manifest.layout(layout_id)
        now = self.clock.now_ns()
        media = {
            zone.id
            for zone in layout.zones
            if items.get(zone.id) in self._media and self._dipping.get(zone.id, 0) < now
        }
        regions = [pygame.Rect(z.x, z.y, z.w, z.h) for z in layout.zones if z.id in media]
        if canvas.get_size() == (layout.width, layout.height) and blank_regions(canvas, regions):
            self.black_frames += 1
            if self.on_black is not None and self.black_frames <= MAX_BLACK_SAVED:
                t = (now - self._run_t0_ns) / NS_PER_S
                self.on_black(self, t, canvas.copy())

    @property
    def streaming(self) -> bool:
        """The sync agent's event stream is open."""
        watcher = self.agent.watcher if self.agent is not None else None
        return watcher is not None and watcher.connected

    def _note_watcher(self) -> None:
        watcher = self.agent.watcher if self.agent is not None else None
        if watcher is not None and all(w is not watcher for w in self._watchers):
            self._watchers.append(watcher)

    def _learn(self, manifest: Manifest) -> None:
        self.manifest = manifest
        every = [item for p in manifest.playlists for item in p.items]
        self._items = {item.id: item.transition for item in every}
        self._media = {item.id for item in every if item.type in ("image", "video")}

    # -- life cycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        timeout = httpx.Timeout(30.0, connect=self.settings.sync.connect_timeout_s)
        http = httpx.AsyncClient(timeout=timeout)
        agents: list[SyncAgent] = []
        cache_http = httpx.AsyncClient(
            base_url=self.server_url,
            timeout=timeout,
            auth=TokenAuth(lambda: agents[0].client.token if agents else None),
        )
        self._clients = [http, cache_http]
        self.cache = await AssetCache.open(
            cache_root(self.root), client=cache_http, limits=Limits.from_config(self.settings.cache)
        )
        wall = WallClock(self.clock, synchronised=lambda: True)
        self.display = display = self._make_display()
        self.player = player = Player(
            self.settings, clock=self.clock, assets=self.cache, display=display, wall=wall,
            device=self.name, frame_ns=self.frame_ns,
        )  # fmt: skip
        player.add_listener(self._note_dips)
        player.add_listener(self._emit)
        self.agent = agent = SyncAgent(
            self.settings,
            self.root,
            _SimAdapter(self, player, self.cache),
            http=http,
            server_url=self.server_url,
        )
        agents.append(agent)
        if isinstance(self.clock, DeviceClock):
            # A virtual clock switches hundreds of times per real second: one transaction
            # (and fsync) per flush interval rather than per switch. Stored rows stay stored.
            agent.recorder.flush_delay_s = IMPRESSION_FLUSH_S
        player.add_listener(ImpressionFeed(agent.recorder))
        self._offset_s = (self.clock.now_ns() - self._run_t0_ns) / NS_PER_S
        await player.start()
        assert player.compositor is not None
        # Every presented frame, on either path (GL reads it back), is watched for black.
        player.compositor.add_frame_listener(self._watch)
        await agent.restore()
        self._task = asyncio.create_task(self._run_agent(agent), name=f"sync-{self.name}")

    async def _run_agent(self, agent: SyncAgent) -> None:
        try:
            await agent.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sync agent of %s stopped", self.name)

    async def stop(self) -> None:
        """Stop in the daemon's order (sync, player, queue, cache); keeps the state directory."""
        self._note_watcher()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.player is not None:
            self.frames += self.player.frames
            self.dropped_frames += self.player.dropped_frames
            await self.player.stop()
        if self.display is not None:
            self.display.close()  # a GL display's framebuffer lives in the shared context
            self.display = None
        if self.agent is not None:
            await self.agent.recorder.drain()
            self.agent.close()
        if self.cache is not None:
            await self.cache.close()
        for client in self._clients:
            await client.aclose()
        self._clients = []
        self.player = self.agent = self.cache = None

    def quit_requested(self) -> bool:
        """A window's close button or Escape (also keeps the window's event queue drained)."""
        check = getattr(self.display, "quit_requested", None)
        return bool(check()) if callable(check) else False

    def object_path(self, sha256: str) -> Path:
        """Where the cache keeps an asset's verified bytes (DESIGN section 7's layout)."""
        return cache_root(self.root) / "objects" / sha256[:2] / sha256

    def totals(self) -> dict[str, int]:
        live = self.player
        self._note_watcher()
        return {
            "frames": self.frames + (live.frames if live else 0),
            "dropped_frames": self.dropped_frames + (live.dropped_frames if live else 0),
            "black_frames": self.black_frames,
            # How the device heard of manifests: event streams opened, and polls while they
            # failed (each sync session's watcher; a restart or re-pairing starts a new one).
            "sse_connects": sum(w.connects for w in self._watchers),
            "manifest_polls": sum(w.polls for w in self._watchers),
        }
