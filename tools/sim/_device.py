"""One simulated device: the real cache, player and sync agent, wired as the daemon wires them.

The differences from ``player.run_daemon`` are the simulator's and nothing else: the display
is offscreen (or a window for the demo) and its frames are checked for black and frozen
pictures on a worker thread (``tools.sim._frame_watch``), the wall clock comes from
the simulation's clock (with the device's own offset and drift), time exchanges cross a
simulated network (``tools.sim._timelink``), the timeline goes to the run's file in the run's
true time, the pairing code is handed to the simulated operator, and the device can be stopped
and started again over the same state directory (a power cut).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pygame
from PIL import Image

from cache import AssetCache, Limits, cache_root
from core import Settings
from player import (
    NS_PER_S,
    DeviceAdapter,
    ImpressionFeed,
    Player,
    PowerController,
    TimelineEvent,
    TimelineWriter,
    WallClock,
)
from protocol import Item, Manifest, Transition
from sync import ManifestWatcher, SyncAgent, TimeLink, TokenAuth
from tools.sim._clock import DeviceClock, RealDeviceClock
from tools.sim._frame_watch import SAMPLE, Fade, FrameJob, FrameWatch, ZoneShot
from zones import Display, NoPower, surface_image

log = logging.getLogger(__name__)

CodeHandler = Callable[["SimDevice", str], None]
BlackHandler = Callable[["SimDevice", float, str, Image.Image], None]
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
        self._device.learn(manifest)
        await super().apply_manifest(manifest)
        self._device.note_watcher()


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
        time_link: Callable[[SyncAgent], TimeLink] | None = None,
        join_at_s: float = 0.0,
    ) -> None:
        """``time_link(agent)``: how the device's clock exchanges travel (default: HTTP to the
        server). ``join_at_s``: when the run first powers it on."""
        self.name = name
        self.time_link = time_link
        self.join_at_s = join_at_s
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
        # After every presented frame, with its media time since the run began (seconds).
        self.frame_listeners: list[Callable[[float], None]] = []
        self.on_black: BlackHandler | None = None
        self.frames_in_standby = 0  # frames presented while the screen was off, after the black
        self._in_standby = False
        self.black_times: list[float] = []
        self._items: dict[str, Item] = {}
        # Per zone, its last start: (item, due on the media clock, presented instant, previous
        # item): what the frame checks need to know about transitions and playing videos.
        self._starts: dict[str, tuple[Item, int, int, Item | None]] = {}
        self._presented: tuple[pygame.Surface, list[pygame.Rect]] | None = None
        self.frame_watch: FrameWatch | None = None
        self.manifest: Manifest | None = None
        self.player: Player | None = None
        self.agent: SyncAgent | None = None
        self.cache: AssetCache | None = None
        # Counts of the frame watches of earlier sessions (a restart starts a new watch).
        self._folded = {"black_frames": 0, "frozen_frames": 0, "checked_frames": 0}
        self._folded["unchecked_frames"] = 0
        self.dropped_frames = 0
        self.frames = 0
        self.starts = 0
        self.codes: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.display: Display | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._watchers: list[ManifestWatcher] = []  # of every sync session, for their counts

    # -- events ------------------------------------------------------------------------------

    def pairing_code(self, code: str) -> None:
        self.codes.append(code)
        self._on_code(self, code)

    def _emit(self, player: Player, event: TimelineEvent) -> None:
        """Timeline times are seconds since the run began on the run's clock, across restarts
        of the player: each instant on the device's own (drifting) media clock, counted from the
        player's start, is converted back to the run's clock."""
        t0_ns = player.events.t0_ns

        def run_s(seconds: float) -> float:
            media_ns = t0_ns + round(seconds * NS_PER_S)
            return (self.clock.to_base_ns(media_ns) - self._run_t0_ns) / NS_PER_S

        due = None if event.due is None else run_s(event.due)
        shifted = dataclasses.replace(event, t=run_s(event.t), due=due)
        self._timeline.write(shifted)
        for listener in list(self.listeners):
            listener(shifted)

    def _note_start(self, event: TimelineEvent) -> None:
        """Remember each zone's last start (its transition, a video's start) for the checks."""
        if event.event != "start" or event.zone is None or event.due is None:
            return
        item = self._items.get(event.item or "")
        if item is None:
            return
        now = self.clock.now_ns()  # listeners run right after the frame was presented
        due = now - round((event.t - event.due) * NS_PER_S)
        previous = self._starts.get(event.zone)
        self._starts[event.zone] = (item, due, now, previous[0] if previous else None)

    def transition_of(self, item_id: str | None) -> Transition | None:
        """The transition an item of the current manifest comes in with."""
        item = self._items.get(item_id or "")
        return item.transition if item is not None else None

    def _on_present(self, canvas: pygame.Surface, rects: Sequence[pygame.Rect]) -> None:
        self._presented = (canvas, list(rects))  # judged once the frame's time was taken

    def _frame_done(self, presented_ns: int) -> None:
        """After a presented frame: hand the image and video zones it changed to the watch."""
        presented, self._presented = self._presented, None
        true_ns = self.clock.to_base_ns(presented_ns)
        if self.player is not None and self.player.standby:
            if self._in_standby:  # the first frame of a standby blanks the screen
                self.frames_in_standby += 1
            self._in_standby = True
        else:
            self._in_standby = False
        for listener in self.frame_listeners:
            listener((true_ns - self._run_t0_ns) / NS_PER_S)
        player, manifest, watch = self.player, self.manifest, self.frame_watch
        if presented is None or player is None or manifest is None or watch is None:
            return
        canvas, rects = presented
        layout_id, items, _ = player.snapshot()
        if layout_id is None or layout_id not in {x.id for x in manifest.layouts}:
            return  # an idle screen, or a layout of an older manifest
        layout = manifest.layout(layout_id)
        if canvas.get_size() != (layout.width, layout.height):
            return
        scene = player.compositor.active if player.compositor is not None else None
        background = pygame.Color(layout.background)
        shots = []
        for index, zone in enumerate(layout.zones):
            item = self._items.get(items.get(zone.id, ""))
            box = pygame.Rect(zone.x, zone.y, zone.w, zone.h).clip(canvas.get_rect())
            if item is None or item.type not in ("image", "video") or box.w < 1 or box.h < 1:
                continue
            if not any(box.colliderect(rect) for rect in rects):
                continue  # unchanged since it was last checked
            above = [
                pygame.Rect(z.x, z.y, z.w, z.h).clip(box).move(-box.x, -box.y)
                for z in layout.zones[index + 1 :] + layout.zones[:index]
                if (z.z, layout.zones.index(z)) > (zone.z, index)
            ]
            shot = self._shot(zone.id, item, canvas, box, background, scene, above)
            if zone.crop is not None:
                crop = zone.crop
                shot = dataclasses.replace(shot, crop=(crop.x, crop.y, crop.w, crop.h))
            shots.append(shot)
        if shots:
            watch.submit(
                FrameJob(
                    presented_ns,
                    (true_ns - self._run_t0_ns) / NS_PER_S,
                    shots,
                    display_frame_ns=NS_PER_S // self.settings.player.frame_rate_hz,
                    check_frozen=not isinstance(self.clock, DeviceClock),
                )
            )

    def _shot(
        self,
        zone_id: str,
        item: Item,
        canvas: pygame.Surface,
        box: pygame.Rect,
        background: pygame.Color,
        scene: object,
        above: list[pygame.Rect],
    ) -> ZoneShot:
        fade = started = interval = None
        start = self._starts.get(zone_id)
        now = self.clock.now_ns()
        if start is not None and start[0].id == item.id:
            transition = item.transition
            if transition is not None and transition.type != "cut" and transition.duration_ms:
                progress = (now - start[1]) / (transition.duration_ms * 1_000_000)
                if progress < 1.0 and start[3] is not None:
                    fade = Fade(transition.type, max(0.0, progress), start[3])
            if item.type == "video":
                started = start[2]
                view = getattr(scene, "zone", None)
                renderer = view(zone_id).renderer if view is not None else None
                interval = getattr(renderer, "frame_interval_ns", None)
        picture = surface_image(canvas, (box.x, box.y, box.w, box.h), SAMPLE)
        full = None
        if started is not None and not isinstance(self.clock, DeviceClock):
            full = canvas.subsurface(box).copy()  # the frozen check tells pictures apart
        return ZoneShot(
            zone_id,
            picture,
            box.size,
            item,
            (background.r, background.g, background.b),
            fade=fade,
            video_started_ns=started,
            full=full,
            frame_interval_ns=interval if isinstance(interval, int) else None,
            covered=tuple((r.x, r.y, r.w, r.h) for r in above if r.w > 0 and r.h > 0),
        )

    def _black_found(self, t: float, zone: str, picture: Image.Image) -> None:
        """On the watch's thread: a black zone at media time ``t``."""
        self.black_times.append(round(t, 3))
        if self.on_black is not None and len(self.black_times) <= MAX_BLACK_SAVED:
            self.on_black(self, t, zone, picture)

    def _watch_count(self, name: str) -> int:
        live = getattr(self.frame_watch, name, 0) if self.frame_watch is not None else 0
        return self._folded[name] + int(live)

    def _fold_watch(self, watch: FrameWatch) -> None:
        for name in self._folded:
            self._folded[name] += getattr(watch, name)

    @property
    def black_frames(self) -> int:
        return self._watch_count("black_frames")

    @property
    def streaming(self) -> bool:
        """The sync agent's event stream is open."""
        watcher = self.agent.watcher if self.agent is not None else None
        return watcher is not None and watcher.connected

    def note_watcher(self) -> None:
        """Keep the sync session's manifest watcher for the totals (a session may be new)."""
        watcher = self.agent.watcher if self.agent is not None else None
        if watcher is not None and all(w is not watcher for w in self._watchers):
            self._watchers.append(watcher)

    def learn(self, manifest: Manifest) -> None:
        """The manifest the device was given: its items, for the frame checks."""
        self.manifest = manifest
        self._items = {item.id: item for p in manifest.playlists for item in p.items}

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
        self.frame_watch = FrameWatch(
            self.object_path,
            self._black_found,
            wait_when_full=isinstance(self.clock, DeviceClock),
        )
        # The standing display_on/off command is kept in the device's state directory, as on a
        # kiosk; the simulated screen has no power to switch (NoPower: it goes black).
        self.player = player = Player(
            self.settings, clock=self.clock, assets=self.cache, display=display, wall=wall,
            device=self.name, frame_ns=self.frame_ns, state_dir=self.root,
            power=PowerController(NoPower(), self.root),
        )  # fmt: skip
        player.add_listener(self._note_start)
        player.add_listener(functools.partial(self._emit, player))
        player.add_frame_listener(self._frame_done)
        self.agent = agent = SyncAgent(
            self.settings,
            self.root,
            _SimAdapter(self, player, self.cache),
            http=http,
            server_url=self.server_url,
            wall=player.wall.now,
        )
        if self.time_link is not None:
            agent.timesync.link = self.time_link(agent)
        agents.append(agent)
        if isinstance(self.clock, DeviceClock):
            # A virtual clock switches hundreds of times per real second: one transaction
            # (and fsync) per flush interval rather than per switch. Stored rows stay stored.
            agent.recorder.flush_delay_s = IMPRESSION_FLUSH_S
        player.add_listener(ImpressionFeed(agent.recorder))
        await player.start()
        assert player.compositor is not None
        # What each frame showed, on either path (GL reads it back from the GPU).
        player.compositor.add_frame_listener(self._on_present)
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
        self.note_watcher()
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
        if self.frame_watch is not None:
            await asyncio.to_thread(self.frame_watch.close)
            self._fold_watch(self.frame_watch)
            self.frame_watch = None
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
        self.note_watcher()
        return {
            "frames": self.frames + (live.frames if live else 0),
            "frames_in_standby": self.frames_in_standby,
            "dropped_frames": self.dropped_frames + (live.dropped_frames if live else 0),
            "black_frames": self.black_frames,
            "frozen_frames": self._watch_count("frozen_frames"),
            "checked_frames": self._watch_count("checked_frames"),
            "unchecked_frames": self._watch_count("unchecked_frames"),
            # How the device heard of manifests: event streams opened, and polls while they
            # failed (each sync session's watcher; a restart or re-pairing starts a new one).
            "sse_connects": sum(w.connects for w in self._watchers),
            "manifest_polls": sum(w.polls for w in self._watchers),
        }
