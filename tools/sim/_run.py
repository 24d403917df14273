"""``signage sim``: the reference server, N real players headless, a clock, a scenario.

A run: start the server (unless one is given), seed the content, start the devices (each pairs
through the real flow; the simulated operator claims the code), wait until every device plays
(at real speed: pairing and downloads are network time), then move the clock to the end,
applying the scenario's events on the way. Network-bound events (publish, revoke, restart of a
device) run at real speed until their effect shows on every device (or ``EFFECT_WAIT_S`` of media
time passes), so update latency is measured, not skipped over; a server outage always runs at
real speed because the devices' timeouts and backoff do.

Outputs under ``out``: ``timeline.jsonl`` (DESIGN section 12), ``frames/<device>/*.png``,
``summary.json``, and ``devices/<device>/`` (each device's state directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import heapq
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pygame
from PIL import Image

from core import ConfigError, SignageError
from player import NS_PER_S, LoopStallProbe, TimelineWriter, read_timeline
from server import AdminClient, RunningServer, run_in_thread
from sync import SyncAgent, TimeLink
from tools.sim._airtime import interrupt_summary, power_summary, share_of_voice
from tools.sim._clock import RealDeviceClock, Speed, TimeDriver, device_clock, make_clock
from tools.sim._content import load_content
from tools.sim._device import SimDevice
from tools.sim._events import EventRunner, Join, Restore
from tools.sim._faults import EventStreamBreaker
from tools.sim._frames import FrameWriter, SwitchFrames
from tools.sim._options import (
    SimOptions,
    SimResult,
    device_settings,
    prepare_out,
    server_settings,
)
from tools.sim._scenario import Event
from tools.sim._seed import GROUP, SeededContent, seed
from tools.sim._summary import check_expectations, summarize
from tools.sim._timelink import JitteredLink, NetworkModel, SimulatedLink
from tools.sim._watch import Watch
from zones import Display, OffscreenDisplay

__all__ = ["SimOptions", "SimResult", "Simulation", "prepare_out", "run_simulation"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
WARMUP_LIMIT_S = 120.0  # pairing and first downloads must fit in this much media time


def _grab(device: SimDevice) -> pygame.Surface | None:
    return device.player.frame() if device.player is not None else None


class Simulation:
    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.out = options.out
        self.clock = make_clock(options.speed)
        self.driver = TimeDriver(self.clock, options.speed)
        self.run_t0_ns = self.clock.now_ns()
        # The devices' wall clock reads ``--start`` at media time zero; the in-process server
        # shares that wall time, so both agree on the instants an interrupt starts and ends.
        self.wall_offset_ns = 0
        if options.start is not None:
            self.wall_offset_ns = int(options.start.timestamp() * NS_PER_S) - self.clock.wall_ns()
        self.watch = Watch()
        self.devices: list[SimDevice] = []
        self.device_ids: dict[str, str] = {}
        self.no_repair: set[str] = set()
        self.repairs = 0
        self.server: RunningServer | None = None
        self.server_url = options.server_url or ""
        self.streams = EventStreamBreaker()  # break_sse: the in-process server's event streams
        self.admin: AdminClient | None = None
        self.seeded: SeededContent | None = None
        self.frame_writer = FrameWriter()
        self.timeline = TimelineWriter(self.out / "timeline.jsonl")
        self._claims: set[asyncio.Task[None]] = set()
        self.events: EventRunner | None = None
        self.stopping = asyncio.Event()
        self.ran_s = 0.0
        # How long the loop stays busy, on the real clock (a virtual one runs flat out).
        self.stalls = None if self.driver.virtual else LoopStallProbe()

    # -- media time ------------------------------------------------------------------------

    def media_s(self) -> float:
        return (self.clock.now_ns() - self.run_t0_ns) / NS_PER_S

    def at_ns(self, media_s: float) -> int:
        return self.run_t0_ns + int(media_s * NS_PER_S)

    def wall_s(self) -> float:
        """The simulated wall time (UNIX seconds), read from any thread (the server's)."""
        return (self.clock.wall_ns() + self.wall_offset_ns) / NS_PER_S

    # -- server and operator ---------------------------------------------------------------

    def start_server(self, port: int = 0) -> None:
        settings = server_settings(self.out, self.options.devices, self.options.server_overrides)
        self.server = run_in_thread(
            settings,
            self.out / "server",
            port=port or self.options.port,
            wrap=self.streams.wrap,
            clock=self.wall_s,
        )
        self.server_url = self.server.url

    async def stop_server(self) -> int:
        """Stop the in-process server (an outage); returns its port, to start it again on."""
        server = self.server
        if server is None:
            raise ConfigError(["stop_server needs the in-process server (no --server)"])
        port = int(server.url.rsplit(":", 1)[1])
        await asyncio.to_thread(server.stop)
        self.server = None
        return port

    def admin_client(self) -> AdminClient:
        if self.admin is None:
            token = self.server.admin_token if self.server else self.options.admin_token
            if not token:
                raise ConfigError(["--server needs the admin token in SIGNAGE_ADMIN_TOKEN"])
            self.admin = AdminClient(self.server_url, token)
        return self.admin

    def _on_code(self, device: SimDevice, code: str) -> None:
        if device.name in self.no_repair:
            self.options.progress(f"{device.name} shows pairing code {code} (left unclaimed)")
            return
        task = asyncio.get_running_loop().create_task(self._claim(device, code))
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    async def _claim(self, device: SimDevice, code: str) -> None:
        admin = self.admin_client()
        try:
            device_id = await asyncio.to_thread(admin.claim, code, device.name)
            await asyncio.to_thread(admin.set_group, device_id, GROUP)
        except SignageError as exc:
            # A code can lapse or be replaced while a claim is on its way: the next one is used.
            self.options.progress(f"{device.name}: claim of {code} failed: {exc}")
            return
        if device.name in self.device_ids:
            self.repairs += 1
        self.device_ids[device.name] = device_id
        self.options.progress(f"{device.name} paired with code {code} (device {device_id})")

    # -- devices ---------------------------------------------------------------------------

    def _display(self, index: int) -> Display:
        if self.options.make_display is not None:
            return self.options.make_display(index)
        return OffscreenDisplay()

    def _time_link(self, index: int, world_offset: int) -> Callable[[SyncAgent], TimeLink]:
        """Each device's clock exchanges: over a simulated network (virtual or real clock), or
        with ``real_exchanges`` over HTTP to the real server with that network's delays added
        (on the real clock only: the server reads the host's clock)."""
        scenario = self.options.scenario
        sync = scenario.sync if scenario is not None else None
        network = NetworkModel() if sync is None else NetworkModel(sync.latency_ms, sync.jitter_ms)
        rng = random.Random((sync.seed if sync else 1) * 1000 + index)  # noqa: S311 (a model)
        if self.options.real_exchanges:

            def jittered(agent: SyncAgent) -> TimeLink:
                return JitteredLink(agent.timesync.link, network, rng)

            return jittered
        link = SimulatedLink(self.clock, network, rng, world_offset_ns=world_offset)
        return lambda _agent: link

    def make_devices(self) -> None:
        wall_offset = self.wall_offset_ns
        scenario = self.options.scenario
        hardware = scenario.devices if scenario is not None else []
        for index in range(self.options.devices):
            name = f"sim-{self.options.first_device + index}"
            root = self.out / "devices" / name
            own = hardware[index] if index < len(hardware) else None
            clock: RealDeviceClock = device_clock(
                self.clock,
                wall_offset_ns=wall_offset + (round(own.clock_offset_s * NS_PER_S) if own else 0),
                drift_ppm=own.drift_ppm if own else 0.0,
            )
            device = SimDevice(
                name,
                root,
                device_settings(self.options, name, root, self.server_url),
                clock=clock,
                server_url=self.server_url,
                make_display=functools.partial(self._display, index),
                timeline=self.timeline,
                run_t0_ns=self.run_t0_ns,
                on_code=self._on_code,
                frame_ns=None if self.options.fps is None else round(NS_PER_S / self.options.fps),
                time_link=self._time_link(index, wall_offset),
                join_at_s=own.join_at if own else 0.0,
            )
            device.listeners.append(self.watch)
            device.on_black = self._black_frame
            if self.options.frames.kind in ("switch", "first"):
                frames = SwitchFrames(
                    self.options.frames,
                    self.out / "frames" / name,
                    functools.partial(_grab, device),
                    self.frame_writer,
                    transition_of=device.transition_of,
                )
                device.listeners.append(frames)
                device.frame_listeners.append(frames.frame)
            self.devices.append(device)

    def _black_frame(self, device: SimDevice, t: float, zone: str, picture: Image.Image) -> None:
        """On the frame watch's thread: keep the black zone's (sampled) picture."""
        folder = self.out / "frames" / device.name
        folder.mkdir(parents=True, exist_ok=True)
        picture.convert("RGB").save(folder / f"black-{t:012.3f}_{zone}.png")

    async def _timelapse(self) -> None:
        every = self.options.frames.every_s
        mark = every
        while mark < self.options.duration_s:
            await self.clock.sleep_until(self.at_ns(mark))
            for device in self.devices:
                frame = device.player.frame() if device.player else None
                if frame is not None:
                    name = f"{mark:012.3f}.png"
                    self.frame_writer.save(frame, self.out / "frames" / device.name / name)
            mark += every

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> SimResult:
        options = self.options
        real0 = time.monotonic()
        content = load_content(options.content, base=options.content_base)
        if options.server_url is None:
            await asyncio.to_thread(self.start_server)
        self.seeded = await asyncio.to_thread(seed, self.admin_client(), content)
        options.progress(f"server {self.server_url}: content seeded ({content.source})")
        if options.scenario is not None and options.scenario.sync is not None:
            epoch = options.scenario.sync.epoch or self._run_start()
            await asyncio.to_thread(self.admin_client().set_group_sync, GROUP, epoch=epoch)
            options.progress(f"the devices play in step from {epoch.isoformat()}")
        if self.server is not None:
            # A throwaway local server: its token lets the operator pair a real screen to it.
            options.progress(f"web console: {self.server_url}/ (sign in with the admin token)")
            options.progress(f"admin token of this server: {self.server.admin_token}")
        self.make_devices()
        helpers: list[asyncio.Task[None]] = []
        try:
            for device in self.devices:
                if device.join_at_s <= 0:
                    await device.start()
            if options.frames.kind == "every":
                helpers.append(asyncio.create_task(self._timelapse()))
            if options.make_display is not None:
                helpers.append(asyncio.create_task(self._watch_windows()))
            if options.adopt:
                helpers.append(asyncio.create_task(self._adopt()))
            await self._warm_up()
            if self.stalls is not None:
                helpers.append(asyncio.create_task(self._probe_stalls(self.stalls)))
            self.events = events = EventRunner(self)
            # (time, rank, order): the end of an outage comes before events at the same time.
            queue: list[tuple[float, int, int, Event | Restore | Join]] = []
            for order, event in enumerate(
                options.scenario.sorted_events() if options.scenario else []
            ):
                heapq.heappush(queue, (event.at, 1, order, event))
            for device in self.devices:
                if device.join_at_s > 0:
                    joining = Join(device.join_at_s, device.name)
                    heapq.heappush(queue, (joining.at, 1, len(queue), joining))
            while queue and not self.stopping.is_set():
                at, _, order, due = heapq.heappop(queue)
                await self._run_to(self.at_ns(at))
                for later in await events.apply(due):
                    heapq.heappush(queue, (later.at, 0, order, later))
            await self._run_to(self.at_ns(options.duration_s))
            self.ran_s = self.media_s()
        finally:
            await self._shut_down(helpers)
        return self._result(time.monotonic() - real0)

    async def _probe_stalls(self, probe: LoopStallProbe) -> None:
        async with probe.running():
            await asyncio.Event().wait()  # until cancelled with the other helpers

    def request_stop(self) -> None:
        """End the run early (Ctrl-C, the window closed); the summary covers what ran."""
        self.stopping.set()

    async def _run_to(self, target_ns: int) -> None:
        """Move media time to ``target_ns``: real speed while the network matters, else ours.

        Time moves in chunks (a second of real time at most) so a stop request is heard.
        """
        real = 1.0 if self.driver.virtual else "default"
        step = NS_PER_S // 20
        chunk = NS_PER_S * (60 if self.options.speed is None else max(1, int(self.options.speed)))
        while self.clock.now_ns() < target_ns and not self.stopping.is_set():
            now = self.clock.now_ns()
            if self.events is not None and self.events.needs_real_time():
                await self.driver.run_until(min(target_ns, now + step), speed=real)
            else:
                await self.driver.run_until(min(target_ns, now + chunk))

    async def _adopt(self) -> None:
        """Screens paired by hand to the demo server get the demo content too."""
        admin = self.admin_client()
        while not self.stopping.is_set():
            await asyncio.sleep(2.0)
            if self.server is None:
                continue  # an outage
            try:
                listed = await asyncio.to_thread(admin.devices)
                for device in listed:
                    if device.get("group") is None and device["id"] not in self.device_ids.values():
                        await asyncio.to_thread(admin.set_group, device["id"], GROUP)
                        self.options.progress(f"{device['name']} joined the demo content")
            except SignageError as exc:
                self.options.progress(f"could not list devices: {exc}")

    async def _watch_windows(self) -> None:
        """Drain window events (a desktop flags silent windows as hung); stop when closed."""
        while not self.stopping.is_set():
            if any(device.quit_requested() for device in self.devices):
                self.options.progress("window closed: stopping")
                self.request_stop()
            await asyncio.sleep(0.1)

    async def _in_real_time(self, work: Awaitable[_T]) -> _T:
        """Await ``work`` (admin calls: network time) while media time follows real time."""
        if not self.driver.virtual:
            return await work
        step = NS_PER_S // 50

        async def pace() -> None:
            while True:
                await self.driver.run_until(self.clock.now_ns() + step, speed=1.0)

        pacer = asyncio.create_task(pace())
        try:
            return await work
        finally:
            pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacer

    def _run_start(self) -> dt.datetime:
        """The run's wall time at media time zero, to the second (a sync group's epoch)."""
        world = self.clock.wall_ns() + self.wall_offset_ns
        at_t0 = world - (self.clock.now_ns() - self.run_t0_ns)
        return dt.datetime.fromtimestamp(math.floor(at_t0 / NS_PER_S), dt.UTC)

    def _settled(self) -> bool:
        """Every device powered on plays, and holds every asset of its manifest."""
        for device in self.devices:
            if device.join_at_s > self.media_s() and not device.running:
                continue  # not powered on yet
            if device.name not in self.watch.started or device.manifest is None:
                return False
            cache = device.cache
            if cache is None or not all(cache.is_ready(a.sha256) for a in device.manifest.assets):
                return False
        return True

    async def _warm_up(self) -> None:
        """Pairing and first downloads are network time: run at real speed until settled."""
        limit = self.at_ns(min(self.options.duration_s, WARMUP_LIMIT_S))
        speed: Speed | str = 1.0 if self.driver.virtual else "default"
        step = NS_PER_S // 20
        while not self._settled() and self.clock.now_ns() < limit:
            await self.driver.run_until(min(limit, self.clock.now_ns() + step), speed=speed)
        if self._settled():
            self.options.progress(
                f"all {len(self.devices)} device(s) playing at t={self.media_s():.1f} s"
            )
        else:
            waiting = [d.name for d in self.devices if d.name not in self.watch.started]
            self.options.progress(f"not settled after warm-up; not playing: {waiting}")

    async def _shut_down(self, helpers: list[asyncio.Task[None]]) -> None:
        for helper in helpers:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
        for task in list(self._claims):
            task.cancel()
        for device in self.devices:
            try:
                await device.stop()
            except Exception:
                log.exception("stopping %s failed", device.name)
        await self.frame_writer.drain()
        self.frame_writer.close()
        self.timeline.close()
        if self.admin is not None:
            self.admin.close()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)

    def options_frame_rate_hz(self) -> int:
        """The devices' display frame rate (they share one configuration but their names)."""
        return self.devices[0].settings.player.frame_rate_hz if self.devices else 60

    def _result(self, real_s: float) -> SimResult:
        import json

        records = read_timeline(self.out / "timeline.jsonl")
        names = [d.name for d in self.devices]
        summary = summarize(
            records,
            duration_s=round(min(self.options.duration_s, self.ran_s), 3),
            real_s=real_s,
            speed="max" if self.options.speed is None else f"{self.options.speed:g}",
            devices=names,
            black_frames={d.name: d.black_frames for d in self.devices},
            publications=self.events.publications if self.events else [],
            measured_latencies=self.events.measured_latencies() if self.events else None,
            repairs=self.repairs,
            # A real-clock start is on its deadline's frame when less than a frame late.
            frame_ms=1000 / self.options_frame_rate_hz(),
        )
        for device in self.devices:
            summary["per_device"][device.name].update(device.totals())
            summary["per_device"][device.name]["black_frame_times"] = device.black_times
        for key in ("frozen_frames", "checked_frames", "unchecked_frames"):
            summary[key] = sum(stats[key] for stats in summary["per_device"].values())
        summary["power"] = power_summary(
            records,
            names,
            {d.name: d.frames_in_standby for d in self.devices},
            end_t=summary["duration_s"],
        )
        summary["interrupts"] = interrupt_summary(
            records, self.events.measured_interrupt_latencies() if self.events else None
        )
        summary["share_of_voice"] = share_of_voice(
            records, self.seeded.manifest if self.seeded is not None else None
        )
        summary["loop_stalls"] = None
        if self.stalls is not None:  # one event loop runs every device (and the watch)
            summary["loop_stalls"] = {
                "busy_max_ms": round(self.stalls.max_busy_ms, 3),
                "late_p99_ms": round(self.stalls.percentile_ms(0.99), 3),
                "late_max_ms": round(self.stalls.max_ms, 3),
            }
        summary["frames_saved"] = self.frame_writer.written
        summary["frames_policy"] = str(self.options.frames)
        failures: list[str] = []
        if self.options.scenario is not None:
            failures = check_expectations(self.options.scenario.expect, summary, records)
            summary["scenario"] = {
                "description": self.options.scenario.description,
                "failures": failures,
                "passed": not failures,
            }
        text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
        (self.out / "summary.json").write_text(text, encoding="utf-8")
        return SimResult(summary, failures, self.out)


async def run_simulation(options: SimOptions) -> SimResult:
    prepare_out(options.out)
    return await Simulation(options).run()
