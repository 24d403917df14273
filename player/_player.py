"""The player: state machine, schedule and frame loop wired together on one event loop.

Two tasks run while the player is started. The schedule task resolves the manifest against the
wall clock and sleeps until the next change (or until content, readiness or the wall clock
moves). The frame task (``player._frames.FrameLoop``, a component the player hands the clock,
what is on screen and how an armed presentation takes it) ticks the zones, composes, presents and
sleeps until the earliest deadline any zone or renderer has announced, never faster than
``frame_rate_hz``; when nothing changes nothing is drawn and the CPU idles.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pygame

from core import Settings, SignageError, ZoneError
from player._assets import AssetSource
from player._clock import NS_PER_MS, NS_PER_S, Clock
from player._events import EventSink, Listener
from player._frames import FrameLoop
from player._group import GroupPlay
from player._idle import IdleScreens, Pairing
from player._machine import PlayerState, build_machine
from player._power import PowerController
from player._preroll import LoadTimes, item_key
from player._presentation import Presentation, Switch
from player._quarantine import ItemQuarantine
from player._resume import Suspended, content_key, resume_positions
from player._schedule import resolve, resolve_at
from player._standby import ScreenPower
from player._timebase import Estimate, Timebase
from player._timeline import TimelineWriter
from player._wall import WallClock
from protocol import Interrupt, Item, Layout, Manifest, QuarantinedItem, TimeStatus
from zones import (
    Compositor,
    Display,
    NoPower,
    RenderContext,
    choose_power,
    compositor_for,
    configure_renderer,
    load_renderers,
    open_display,
    start_image_decoder,
)

log = logging.getLogger(__name__)


class Player(ScreenPower):
    """Plays manifests on a display. All methods run on the event-loop thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        assets: AssetSource,
        timeline: TimelineWriter | None = None,
        display: Display | None = None,
        wall: WallClock | None = None,
        device: str = "",
        frame_ns: int | None = None,
        state_dir: Path | None = None,
        power: PowerController | None = None,
    ) -> None:
        """``frame_ns``: the shortest interval between frames that only animate (default
        ``1 / frame_rate_hz``); the simulator samples animation below 1 Hz at ``--speed max``.
        Deadlines are presented on the first frame at or after them, whatever this is.
        ``state_dir``: where the crash guard (``player._quarantine``) keeps its records;
        without one nothing is recorded and nothing skipped (tests, benchmarks)."""
        if frame_ns is not None and frame_ns <= 0:
            raise ValueError(f"frame_ns must be positive, got {frame_ns}")
        self.settings = settings
        self.clock = clock
        self.assets = assets
        self.wall = wall or WallClock(clock)
        # Group time of a sync group, once the sync layer has estimated it; until then (and
        # outside a group) the wall clock keeps its own sources.
        self.timebase = Timebase(clock)
        self.wall.follow(self.timebase)
        self._group_ready = asyncio.Event()
        self._group_wait_until = 0
        self.device = device or settings.sync.device_name or "player"
        self._display = display
        self._opened: Display | None = None
        self._frame_ns = frame_ns or NS_PER_S // settings.player.frame_rate_hz
        self._preload_ns = settings.player.preload_ms * NS_PER_MS
        self.load_times = LoadTimes(settings.player)
        # A virtual clock (it has advance_to) stands still while work happens: lateness and
        # load times measured on it are zero by construction, so they are not reported.
        self.events = EventSink(
            self.device, clock, self.wall, measured=not hasattr(clock, "advance_to")
        )
        self._quarantine = None
        if state_dir is not None:
            self._quarantine = ItemQuarantine(
                state_dir, hold_s=settings.player.quarantine_s, now=self.wall.now
            )
        if timeline is not None:
            self.events.add(timeline.write)
        self.compositor: Compositor | None = None
        self.state = PlayerState.IDLE
        self._machine = build_machine(self)
        self._manifest: Manifest | None = None
        self._target: tuple[Manifest, Layout] | None = None
        self._target_interrupt: Interrupt | None = None
        self._target_overlay = False  # an interrupt or a share entry's slot chose it
        self._target_key: str | None = None
        # The last layout to leave the screen (not an interrupt's): where its zones stood,
        # so that it comes back where the media clock says it would be (player._resume).
        self._suspended: Suspended | None = None
        self._current: Presentation | None = None
        self._incoming: Presentation | None = None
        self._load_task: asyncio.Task[None] | None = None
        self._load_pending = False
        # What is on screen and what takes it is the player's; presenting frames is the loop's.
        self._frames = FrameLoop(
            clock,
            self.events,
            frame_ns=self._frame_ns,
            on_screen=lambda: self._current,
            swap_in=self._swap_in,
        )
        self._schedule_wake = asyncio.Event()
        self._idle = IdleScreens(
            device=self.device,
            server_url=settings.sync.server_url,
            context=RenderContext(
                zone_id="screen",
                asset_path=self._asset_path,
                wall_time=self.wall.at,
                wake=self._frames.wake,
                frame_ns=self._frame_ns,
            ),
            clock=clock,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        # A layout switch at a schedule boundary is prepared ahead (the pre-roll lead, from
        # measured load times: player._preroll), armed in the frame loop, and swapped in on
        # the first frame at the boundary; its first deadline is the boundary however long
        # loading took.
        self._start_at: int | None = None
        # The schedule change the player last looked ahead to: a layout that starts there was
        # announced, even when the player only gets round to loading it after the instant.
        self._boundary: dt.datetime | None = None
        # The screen's power (player._power): while it is off nothing is drawn, and the layout
        # due when it comes back on is prepared ahead, the screen woken ``wake_lead_s`` early.
        self.power = power or PowerController(NoPower())
        self._screen_off = False
        self._power_boundary: dt.datetime | None = None  # the next scheduled power change
        self._wake_lead_ns = int(settings.display.wake_lead_s * NS_PER_S)
        self.wall.add_listener(self._wall_jumped)
        self.timebase.add_listener(self._group_stepped)
        assets.add_listener(lambda _sha: self._schedule_wake.set())

    # -- public API -------------------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        """``callback(event)`` for every timeline event (start, end, error, state)."""
        self.events.add(callback)

    def add_tick_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` at least once a second from the frame loop (a watchdog ping)."""
        self._frames.add_tick_listener(callback)

    def add_frame_listener(self, callback: Callable[[int], None]) -> None:
        """``callback(presented_ns)`` after every presented frame, once its time was taken and
        its switches reported (the simulator's frame checks). It runs on the frame loop: hand
        heavy work to a thread."""
        self._frames.add_frame_listener(callback)

    @property
    def frames(self) -> int:
        """Frames presented since the player was made."""
        return self._frames.frames

    @property
    def dropped_frames(self) -> int:
        """Frame intervals missed: presented later than wanted by a frame or more."""
        return self._frames.dropped_frames

    async def start(self) -> None:
        if self._tasks:
            return
        configure_renderer("video", self.settings.video)
        configure_renderer("image", self.settings.image)
        # Its first picture would otherwise wait for the decoder process to start.
        self._spawn(asyncio.to_thread(start_image_decoder))
        if self._quarantine is not None:
            await asyncio.to_thread(self._quarantine.recover)
        # The path (GL or software) follows the display: display.renderer picks it.
        display = self._display or open_display(self.settings.display)
        self._opened = display if self._display is None else None  # ours to close
        if self.power.choose:
            self.power.choose = False
            if self._opened is not None:  # a screen of our own: its power is ours to switch
                await self._choose_power()
        self.compositor = compositor_for(display, frame_ns=self._frame_ns)
        self.events.restart()
        self._group_wait_until = self.clock.now_ns() + self.settings.player.sync_wait_ms * NS_PER_MS
        await self.state_changed()
        self._show_idle()
        self._tasks = [
            asyncio.create_task(self._frames.run(self.compositor), name="player-frames"),
            asyncio.create_task(self._schedule_loop(), name="player-schedule"),
        ]

    async def _choose_power(self) -> None:
        config = self.settings.display
        driver = pygame.display.get_driver() if pygame.display.get_init() else None
        backend, passed = await asyncio.to_thread(choose_power, config, video_driver=driver)
        self.power.backend = backend
        log.info(
            "screen power",
            extra={"fields": {"backend": backend.name, "setting": config.power, "passed": passed}},
        )

    async def stop(self) -> None:
        """Stop playing and release everything (the player can be started again)."""
        await self._fire("halt")
        tasks = [*self._tasks, *self._side_tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.compositor is not None:
            self.compositor.release_active()
        if self._quarantine is not None:
            await self._quarantine.close()  # a clean stop: nothing was in flight
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    async def set_manifest(self, manifest: Manifest) -> None:
        """New content: switches once the resolved layout is playable, without a black frame."""
        joins = manifest.sync is not None and (
            self._manifest is None or self._manifest.sync is None
        )
        self._manifest = manifest
        self._idle.pairing = None
        if self.compositor is None:
            return  # not started yet: start() resolves it
        if joins and not self.timebase.synced:
            # Clock exchanges begin now that a manifest puts the device in a group (a new
            # screen pairs and downloads first): the bounded wait for group time counts from here.
            wait_ns = self.settings.player.sync_wait_ms * NS_PER_MS
            self._group_wait_until = max(self._group_wait_until, self.clock.now_ns() + wait_ns)
        self._reconsider()
        await self._reschedule()
        self._schedule_wake.set()

    async def reload(self) -> None:
        """Release everything and load the current content again."""
        self._load_pending = self._target is not None
        self._target_key = None
        await self._fire("halt")
        self._suspended = None  # a reload starts the layout afresh
        await self._reschedule()

    def show_pairing(
        self, code: str, server_url: str, device_name: str, expires_at: dt.datetime
    ) -> None:
        """The IDLE pairing screen; the content (if any) is dropped: the device is not paired."""
        self._manifest = None
        self._idle.pairing = Pairing(code, server_url, device_name, expires_at)
        if self.state is PlayerState.IDLE:
            self._show_idle()
        else:
            self._spawn(self._fire("halt"))

    def identify(self, text: str, seconds: float) -> None:
        if self.compositor is not None:
            self.compositor.identify(text, self.clock.now_ns() + int(seconds * NS_PER_S))
            self._frames.wake()

    async def screenshot(self) -> bytes:
        """PNG of the composed frame."""
        if self.compositor is None:
            raise SignageError("the player is not started")
        return await self.compositor.screenshot()

    def frame(self) -> pygame.Surface | None:
        """A copy of the last presented frame (the simulator saves one after each switch)."""
        return None if self.compositor is None else self.compositor.frame()

    @property
    def quarantined(self) -> list[QuarantinedItem]:
        """Items skipped because the player died while they played (crash guard)."""
        return [] if self._quarantine is None else self._quarantine.items

    def snapshot(self) -> tuple[str | None, dict[str, str], int]:
        """(layout id, {zone: item}, dropped frames) of what is on screen."""
        if self._current is None:
            return None, {}, self.dropped_frames
        return self._current.layout.id, self._current.playing(), self.dropped_frames

    def interrupt(self) -> str | None:
        """The id of the interrupt on screen, if one is."""
        current = self._current
        return None if current is None or current.interrupt is None else current.interrupt.id

    def feed_server_time(self, server_time: dt.datetime) -> None:
        self.wall.feed_server_time(server_time)

    def set_clock_estimate(self, estimate: Estimate | None) -> None:
        """Group time as the sync layer estimates it (None: no longer in a sync group).

        A new estimate changes how fast group time runs on the media clock from now on, so
        the frame loop looks again at when its next deadline falls, and a synced layout armed
        for a boundary is swapped in when group time (not the old guess) reaches it.
        """
        self.timebase.update(estimate)
        armed = self._frames.armed
        if armed is not None and armed.synced:
            self._frames.arm(armed, armed.starts_at_ns())
        self._frames.wake()

    def time_status(self) -> TimeStatus | None:
        """Where group time comes from, for the heartbeat (None outside a sync group)."""
        if self._manifest is None or self._manifest.sync is None:
            return None
        estimate = self.timebase.estimate
        if estimate is None:
            return TimeStatus(source="unsynced")
        offset = self.wall.now_ns() - self.clock.wall_ns()
        return TimeStatus(
            source=estimate.source,
            offset_ms=round(offset / NS_PER_MS, 3),
            error_ms=round(estimate.error_ns / NS_PER_MS, 3),
            drift_ppm=round(estimate.drift_ppm, 3),
            samples=estimate.samples,
        )

    def media_seconds(self, now_ns: int | None = None) -> float:
        return self.events.seconds(self.clock.now_ns() if now_ns is None else now_ns)

    # -- state machine callbacks --------------------------------------------------------------

    def has_presentation(self, *_: object) -> bool:
        return self._current is not None

    async def state_changed(self, *_: object) -> None:
        layout = self._current.layout.id if self._current is not None else None
        log.info("player state", extra={"fields": {"state": self.state.value, "layout": layout}})
        self.events.state(self.state.value, layout, self.clock.now_ns())

    async def on_enter_STOPPING(self, *_: object) -> None:
        self._cancel_load()
        self._disarm()
        if self._current is not None:
            now = self.clock.now_ns()
            self._suspend(self._current)
            self._current.end()
            self._frames.report(
                self._current.take_switches() + self._interrupt_end(self._current), now
            )
            self._current.release()
            self._current = None
        if self.compositor is not None:
            self.compositor.release_active()  # the last frame stays on screen
        self._target_key = None
        await self._fire("stopped")

    async def on_enter_IDLE(self, *_: object) -> None:
        if not self._load_pending:
            self._show_idle()

    async def on_enter_LOADING(self, *_: object) -> None:
        self._load_pending = False
        self._cancel_load()
        self._frames.disarm()  # content changed again before the armed boundary
        if self._target is not None:
            manifest, layout = self._target
            self._load_task = asyncio.create_task(
                self._load(
                    manifest,
                    layout,
                    self._target_interrupt,
                    self._start_at,
                    overlay=self._target_overlay,
                )
            )

    async def on_enter_PLAYING(self, *_: object) -> None:
        incoming, self._incoming = self._incoming, None
        if incoming is None or self.compositor is None:
            return
        start_at, self._start_at = self._start_at, None
        now = self.clock.now_ns()
        # Announced by the schedule: due at the boundary, even when loading ended after it
        # (then it is late, by what a viewer saw). Unannounced (boot, new content, reload):
        # due now, the instant it is ready; its load time is reported apart (load_ms).
        incoming.start(now if start_at is None else start_at)
        if start_at is not None and start_at > now:
            self._frames.arm(incoming, start_at)  # pre-rolled: swapped in by the frame loop
            return
        self._swap_in(incoming)

    def _swap_in(self, incoming: Presentation) -> None:
        assert self.compositor is not None
        previous, self._current = self._current, incoming
        if previous is not None:
            self._suspend(previous)
            previous.end()
            self._frames.defer(previous.take_switches() + self._interrupt_end(previous))
            # The compositor releases the old scene once the new one's first frame is up.
            previous.release_upcoming()
        if incoming.interrupt is not None:
            self._frames.defer(
                [
                    Switch(
                        "interrupt",
                        "",
                        incoming.interrupt.id,
                        incoming.interrupt_due_ns,
                        layout=incoming.layout.id,
                        state="start",
                    )
                ]
            )
        self.compositor.present(incoming.scene)
        self._frames.wake()

    def _suspend(self, presentation: Presentation) -> None:
        """Remember where a layout stood as it leaves the screen (an overlay's is not resumed:
        it plays from its start each time)."""
        if not presentation.overlay:
            key = content_key(presentation.manifest, presentation.layout)
            positions = presentation.positions()
            self._suspended = Suspended(key, presentation.layout.id, positions, self.wall.now())

    def _interrupt_end(self, presentation: Presentation) -> list[Switch]:
        interrupt = presentation.interrupt
        if interrupt is None:
            return []
        ends = interrupt.ends_at
        # Due at its end when it expired; cleared early (or replaced), nothing was due.
        due = (
            self.wall.media_ns_of(ends)
            if ends is not None and ends <= self.wall.now() + dt.timedelta(seconds=1)
            else None
        )
        return [
            Switch("interrupt", "", interrupt.id, due, layout=presentation.layout.id, state="end")
        ]

    # -- internals ----------------------------------------------------------------------------

    async def _fire(self, trigger: str) -> None:
        if trigger not in self._machine.get_triggers(self.state):
            log.info(
                "trigger ignored",
                extra={"fields": {"trigger": trigger, "state": self.state.value}},
            )
        await self.trigger(trigger)  # type: ignore[attr-defined]

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _reconsider(self) -> None:
        """Content or wall time changed: an armed boundary switch may no longer be right.

        The frame loop looks again too: a clock zone's next redraw was planned on the old
        wall time (a ``%H:%M`` clock would otherwise show the old time for up to a minute).
        """
        self._frames.wake()
        if self._frames.armed is not None or self._start_at is not None:
            self._disarm()
            current = self._current
            self._target_key = content_key(current.manifest, current.layout) if current else None
        self._schedule_wake.set()

    def _wall_jumped(self, _jump_ns: int) -> None:
        self._boundary = None  # a step of the wall clock announces nothing
        self._reconsider()

    def _group_stepped(self, _step_ns: int) -> None:
        """Group time was set or stepped: a synced layout is positioned again (loaded at the
        slots group time now gives; what is on screen stays until that is ready)."""
        if self.timebase.synced:
            self._group_ready.set()
        if self._manifest is None or self._manifest.sync is None:
            return
        self._reconsider()
        self._target_key = None

    async def _await_group_time(self) -> None:
        """A synced layout waits (boundedly, from start-up or joining) for group time."""
        if not self.timebase.synced and self.clock.now_ns() < self._group_wait_until:
            await self.clock.sleep_until(self._group_wait_until, self._group_ready)

    def _disarm(self) -> None:
        self._start_at = None
        self._frames.disarm()

    def _cancel_load(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        self._load_task = None
        if self._incoming is not None:
            self._incoming.release()
            self._incoming = None

    def _context_for(self, manifest: Manifest) -> Callable[[str], RenderContext]:
        def context(zone_id: str) -> RenderContext:
            return RenderContext(
                zone_id=zone_id,
                asset_path=self._asset_path,
                timezone=manifest.timezone,
                wall_time=self.wall.at,
                wake=self._frames.wake,
                frame_ns=self._frame_ns,
                # A virtual clock (it has advance_to) only moves when told: video follows it.
                virtual_now=self.clock.now_ns if hasattr(self.clock, "advance_to") else None,
                guard=self._quarantine,
                gl=self.compositor.gl if self.compositor is not None else None,
            )

        return context

    def _asset_path(self, sha256: str) -> Path:
        try:
            return self.assets.path_of(sha256)
        except SignageError as exc:
            raise ZoneError(f"asset {sha256[:12]} is not available: {exc}") from exc

    def _item_loaded(self, item: Item, load_ns: int) -> None:
        self.load_times.record(item_key(item), load_ns)

    async def _load(
        self,
        manifest: Manifest,
        layout: Layout,
        interrupt: Interrupt | None,
        start_at: int | None,
        *,
        overlay: bool = False,
    ) -> None:
        group = (
            None if manifest.sync is None else GroupPlay(manifest.sync, self.wall, manifest.assets)
        )
        types = {i.type for z in layout.zones for i in manifest.playlist(z.playlist).items}
        async with self.clock.busy():  # (a virtual clock waits for the thread)
            await asyncio.to_thread(load_renderers, types)  # libmpv loads off the loop
        presentation = Presentation(
            manifest,
            layout,
            clock=self.clock,
            preload_ns=self._preload_ns,
            context_for=self._context_for(manifest),
            on_loaded=self._item_loaded,
            wall=self.wall,
            group=group,
        )
        started = self.clock.now_ns()
        at = started if start_at is None else start_at
        presentation.interrupt, presentation.interrupt_due_ns = interrupt, at
        presentation.overlay = overlay or interrupt is not None
        positions = None
        if not presentation.overlay:
            positions = resume_positions(
                manifest,
                layout,
                content_key(manifest, layout),
                self._suspended,
                self.wall.at(at),
                playable=self._playable,
            )
        try:
            if group is not None:
                await self._await_group_time()
                # Where the group's cycle stands when the wait ends (a boundary's instant, or
                # now); positions do not apply to a synced layout.
                at = self.clock.now_ns() if start_at is None else start_at
            await presentation.prime(at, positions)
        except asyncio.CancelledError:
            presentation.release()
            raise
        except Exception:
            log.exception("layout failed to load", extra={"fields": {"layout": layout.id}})
            presentation.release()
            await self._fire("load_failed")
            return
        self.load_times.record(_layout_key(manifest, layout), self.clock.now_ns() - started)
        self._frames.report(presentation.take_switches(), self.clock.now_ns())
        self._incoming = presentation
        self._load_task = None
        await self._fire("loaded")

    # -- idle screens --------------------------------------------------------------------------

    def _show_idle(self) -> None:
        if self.compositor is None or self.state is not PlayerState.IDLE or self._screen_off:
            return
        preparing = self._manifest is not None and self._scheduled_layout() is not None
        if self._idle.showing(self.compositor, preparing=preparing):
            return
        renderer = self._idle.screen(preparing=preparing)
        self._spawn(
            self._idle.present(
                self.compositor,
                renderer,
                lambda: self.state is PlayerState.IDLE,
                preparing=preparing,
            )
        )

    # -- schedule ------------------------------------------------------------------------------

    def _playable(self, layout: Layout) -> bool:
        manifest = self._manifest
        return manifest is not None and all(
            self.assets.is_ready(a.sha256) for a in manifest.assets_of(layout.id)
        )

    def _scheduled_layout(self) -> Layout | None:
        if self._manifest is None:
            return None
        return resolve(self._manifest, self.wall.now())[0]

    async def _reschedule(self) -> dt.datetime | None:
        """Decide what should play now (or at a boundary within preload); when to look again."""
        manifest = self._manifest
        if manifest is None:
            return None
        now = self.wall.now()
        resolution = resolve_at(manifest, now, playable=self._playable)
        layout, next_change, interrupt = (
            resolution.layout,
            resolution.next_change,
            resolution.interrupt,
        )
        overlay = resolution.overlay
        power = self.power.decide(manifest, now, interrupted=interrupt is not None)
        if not power.on:
            return await self._standby(manifest, power, next_change)
        if self._screen_off or self.power.applied is None:
            await self._wake(power)
        self._power_boundary = power.next_change
        self._frames.halt_at = None
        if power.next_change is not None:
            if not self._on_at(manifest, power.next_change):
                self._frames.halt_at = self.wall.media_ns_of(power.next_change)
            if next_change is None or power.next_change < next_change:
                next_change = power.next_change
        armed_at = self._frames.armed_at
        pending = armed_at if armed_at is not None else self._start_at
        if pending is not None and self.clock.now_ns() < pending:
            return next_change  # a switch is armed for a boundary: let it happen
        if layout is None:
            if self._scheduled_layout() is None and self.state in (
                PlayerState.PLAYING,
                PlayerState.LOADING,
            ):
                await self._fire("halt")  # nothing scheduled any more: the no-content screen
            elif self.state is PlayerState.IDLE and not self._load_pending:
                self._show_idle()  # waiting for assets; whatever plays keeps playing
            return next_change
        start_at = self._passed_boundary(manifest, layout, now)
        self._boundary = next_change
        if (
            next_change is not None
            and self._current is not None
            and self.wall.media_ns_of(next_change) - self.clock.now_ns()
            <= self._preroll_ns(manifest, next_change)
        ):
            upcoming = resolve_at(manifest, next_change, playable=self._playable)
            if upcoming.layout is not None:
                layout, start_at = upcoming.layout, self.wall.media_ns_of(next_change)
                interrupt, overlay = upcoming.interrupt, upcoming.overlay
        key = content_key(manifest, layout)
        if key != self._target_key:
            self._target, self._target_key, self._start_at = (manifest, layout), key, start_at
            self._target_interrupt, self._target_overlay = interrupt, overlay
            await self._fire("load")
        return next_change

    def _passed_boundary(self, manifest: Manifest, layout: Layout, now: dt.datetime) -> int | None:
        """The media instant of the schedule change at which ``layout`` began, if that change
        was announced and has passed (the lead was too short, or there was none)."""
        boundary = self._boundary
        if boundary is None or boundary > now or content_key(manifest, layout) == self._target_key:
            return None
        before = resolve(manifest, boundary - dt.timedelta(microseconds=1), playable=self._playable)
        after = resolve(manifest, boundary, playable=self._playable)
        if (
            after[0] is None
            or after[0].id != layout.id
            or (before[0] and before[0].id == layout.id)
        ):
            return None
        return self.wall.media_ns_of(boundary)

    def _preroll_ns(self, manifest: Manifest, at: dt.datetime) -> int:
        """How long before ``at`` (a schedule boundary) the layout due then starts loading."""
        if self._screen_off:  # the screen comes on at ``at``: wake it ahead of its content
            return max(self._wake_lead_ns, self.load_times.max_ns)
        upcoming = resolve(manifest, at, playable=self._playable)[0]
        if upcoming is None:
            return self.load_times.min_ns
        key = _layout_key(manifest, upcoming)
        return self.load_times.lead_ns(self.load_times.layout_estimate_ns(manifest, upcoming, key))

    async def _schedule_loop(self) -> None:
        check_ns = 5 * NS_PER_S  # how often a silent wall-clock jump is looked for
        # A virtual clock (anything with advance_to) only jumps when told: no polling there.
        polls = self._frames.ticking or not hasattr(self.clock, "advance_to")
        next_change = await self._reschedule()
        while True:
            due = None
            if next_change is not None and self._manifest is not None:
                due = self.wall.media_ns_of(next_change)
                lead = self._preroll_ns(self._manifest, next_change)
                if due - lead > self.clock.now_ns():
                    due -= lead  # pre-roll the next layout
            wake = due
            if polls:
                poll = self.clock.now_ns() + check_ns
                wake = poll if wake is None else min(wake, poll)
            woken = await self.clock.sleep_until(wake, self._schedule_wake)
            self._schedule_wake.clear()
            jumped = self.wall.check() != 0
            if woken or jumped or (due is not None and self.clock.now_ns() >= due):
                next_change = await self._reschedule()


def _layout_key(manifest: Manifest, layout: Layout) -> str:
    """The key a layout's load times are recorded under (what it plays, not its id alone)."""
    return f"layout:{content_key(manifest, layout)}"
