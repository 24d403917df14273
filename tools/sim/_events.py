"""Applying a scenario's events to a running simulation.

The events act on a ``Stage``: what they need of the run, and nothing more. The run
(``tools.sim._run.Simulation``) is one; this module does not import it, so the run can import
this one without a cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from core import ConfigError
from player import NS_PER_S, Clock
from server import AdminClient
from tools.sim._clock import TimeDriver
from tools.sim._device import SimDevice
from tools.sim._faults import EventStreamBreaker
from tools.sim._options import SimOptions
from tools.sim._scenario import (
    BreakSse,
    ClearInterrupts,
    CorruptAsset,
    DisplayPower,
    Event,
    Publish,
    RestartDevice,
    Revoke,
    SendInterrupt,
    SetPower,
    StepClock,
    StopServer,
)
from tools.sim._seed import (
    GROUP,
    SeededContent,
    apply_publication,
    asset_of_item,
    changed_items,
    prepare_publication,
)
from tools.sim._summary import Publication
from tools.sim._watch import Watch

EFFECT_WAIT_S = 120.0  # media seconds a network-bound event may take to show on every device


@dataclass
class Restore:
    """Internal event: the end of an outage, ``server_back`` (``stop_server``) or
    ``sse_back`` (``break_sse``)."""

    at: float
    action: Literal["server_back", "sse_back"]


@dataclass
class Join:
    """Internal event: a device is powered on for the first time (``[[devices]] join_at``)."""

    at: float
    device: str


@dataclass
class Window:
    """Real-speed time until ``condition`` holds on every device (or ``limit_ns`` passes)."""

    what: str
    condition: asyncio.Event
    limit_ns: int
    check: Callable[[], bool] | None = None  # sets ``condition`` once true (polled)


def corrupt_file(path: str | object) -> int:
    """Flip a run of bytes in the middle of a file, size unchanged (bit rot); bytes flipped."""
    from pathlib import Path

    target = Path(str(path))
    data = bytearray(target.read_bytes())
    if not data:
        raise ConfigError([f"{target} is empty: nothing to corrupt"])
    start = len(data) // 2
    end = min(len(data), start + max(1, min(4096, len(data) // 8)))
    for i in range(start, end):
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    return end - start


class Stage(Protocol):
    """The running simulation, as the events see it."""

    options: SimOptions
    out: Path
    clock: Clock
    driver: TimeDriver
    watch: Watch
    streams: EventStreamBreaker  # the in-process server's event streams (break_sse)
    devices: list[SimDevice]
    device_ids: dict[str, str]  # device name -> its id on the server, once paired
    no_repair: set[str]  # devices left unpaired on purpose
    seeded: SeededContent | None

    def media_s(self) -> float: ...

    def admin_client(self) -> AdminClient: ...

    def start_server(self, port: int = 0) -> None: ...

    async def stop_server(self) -> int:
        """Stop the in-process server; returns its port (``ConfigError`` without one)."""
        ...


class EventRunner:
    """Applies events; network-bound ones open real-speed windows instead of blocking."""

    def __init__(self, sim: Stage) -> None:
        self.sim = sim
        self.publications: list[Publication] = []
        self.windows: list[Window] = []
        self.latencies: list[tuple[float, dict[str, float]]] = []
        self.interrupt_latencies: list[tuple[float, dict[str, float]]] = []
        self.outage = False  # the server is down
        self.sse_broken = False  # its event streams fail
        self._port = 0

    def needs_real_time(self) -> bool:
        """True while the server or its event streams are down, or an effect is still awaited
        on some device."""
        now = self.sim.clock.now_ns()
        for window in list(self.windows):
            if window.check is not None and window.check():
                window.condition.set()
            if window.condition.is_set():
                self.windows.remove(window)
            elif now >= window.limit_ns:
                self.windows.remove(window)
                self.note(f"{window.what}: not seen on every device in time")
        return self.outage or self.sse_broken or bool(self.windows)

    def selected(self, selector: str) -> list[SimDevice]:
        if selector == "*":
            return list(self.sim.devices)
        chosen = [d for d in self.sim.devices if d.name == selector]
        if not chosen:
            names = ", ".join(d.name for d in self.sim.devices)
            raise ConfigError([f"no device {selector!r} in this run (devices: {names})"])
        return chosen

    def note(self, message: str) -> None:
        self.sim.options.progress(f"t={self.sim.media_s():.1f} s: {message}")

    async def apply(self, event: Event | Restore | Join) -> list[Restore]:
        """Apply ``event``; returns internal events to schedule later (the end of an outage)."""
        if isinstance(event, Restore):
            await self.restore(event)
            return []
        if isinstance(event, Join):
            await self.join(event)
            return []
        if isinstance(event, StopServer):
            return await self.stop_server(event)
        if isinstance(event, BreakSse):
            return self.break_sse(event)
        handlers = {
            Publish: self.publish,
            CorruptAsset: self.corrupt_asset,
            Revoke: self.revoke,
            StepClock: self.step_clock,
            RestartDevice: self.restart_device,
            SendInterrupt: self.interrupt,
            ClearInterrupts: self.clear_interrupts,
            DisplayPower: self.display_power,
            SetPower: self.set_power,
        }
        await handlers[type(event)](event)  # type: ignore[operator]
        return []

    def _until(self, condition: asyncio.Event, what: str) -> None:
        """Keep real speed until ``condition`` holds (or the wait runs out)."""
        limit = self.sim.clock.now_ns() + int(EFFECT_WAIT_S * NS_PER_S)
        self.windows.append(Window(what, condition, limit))

    async def publish(self, event: Publish) -> None:
        sim = self.sim
        assert sim.seeded is not None
        scenario = sim.options.scenario
        base = scenario.base if scenario is not None else sim.out
        before = sim.seeded.manifest
        manifest, media = await asyncio.to_thread(prepare_publication, sim.seeded, event, base)
        items = frozenset(event.expect_items or changed_items(before, manifest))
        names = [d.name for d in sim.devices]
        t, matched = sim.media_s(), dict[str, float]()
        condition = sim.watch.updated(names, after_t=t, items=items, matched_at=matched)
        began = time.monotonic()
        await asyncio.to_thread(apply_publication, sim.admin_client(), sim.seeded, manifest, media)
        self.publications.append(Publication(t, items))
        self.latencies.append((began, matched))
        self.note(f"published (new items: {', '.join(sorted(items)) or 'none named'})")
        self._until(condition, "the update")

    def measured_latencies(self) -> list[float]:
        """Real seconds from each publication to each device's first frame of it."""
        return [at - began for began, matched in self.latencies for at in matched.values()]

    def measured_interrupt_latencies(self) -> list[float]:
        """Real seconds from each interrupt's admin call to each device's first frame of it."""
        return [
            at - began for began, matched in self.interrupt_latencies for at in matched.values()
        ]

    def _device_id(self, device: SimDevice) -> str:
        device_id = self.sim.device_ids.get(device.name)
        if device_id is None:
            raise ConfigError([f"{device.name} is not paired: it cannot be sent that"])
        return device_id

    async def interrupt(self, event: SendInterrupt) -> None:
        sim = self.sim
        assert sim.seeded is not None
        if event.layout not in {layout.id for layout in sim.seeded.manifest.layouts}:
            known = ", ".join(sorted(layout.id for layout in sim.seeded.manifest.layouts))
            raise ConfigError([f"interrupt: no layout {event.layout!r} (layouts: {known})"])
        devices = self.selected(event.device)
        targets = (
            [{"group": GROUP}]
            if event.device == "*"
            else [{"device": self._device_id(d)} for d in devices]
        )
        t, matched = sim.media_s(), dict[str, float]()
        condition = sim.watch.each_device(
            [d.name for d in devices],
            lambda e: e.event == "interrupt" and e.state == "start" and e.t >= t,
            matched,
        )
        began = time.monotonic()
        admin = sim.admin_client()
        for target in targets:
            await asyncio.to_thread(
                admin.interrupt,
                event.layout,
                seconds=event.seconds,
                priority=event.priority,
                **target,
            )
        self.interrupt_latencies.append((began, matched))
        until = f"for {event.seconds} s" if event.seconds else "until cleared"
        self.note(f"interrupt: {event.layout} {until}")
        self._until(condition, "the interrupt")

    async def clear_interrupts(self, event: ClearInterrupts) -> None:
        admin = self.sim.admin_client()
        live = await asyncio.to_thread(admin.interrupts, live=True)
        for sent in live:
            await asyncio.to_thread(admin.clear_interrupt, sent["id"])
        self.note(f"cleared {len(live)} interrupt(s)")

    async def display_power(self, event: DisplayPower) -> None:
        admin = self.sim.admin_client()
        args = {} if event.seconds is None else {"seconds": event.seconds}
        sent: list[tuple[SimDevice, str]] = []
        for device in self.selected(event.device):
            command = await asyncio.to_thread(
                admin.command, self._device_id(device), event.action, args
            )
            sent.append((device, str(command["id"])))
            self.note(f"{device.name}: {event.action}")

        def executed() -> bool:
            return all(
                d.agent is not None
                and d.agent.commands is not None
                and command_id in d.agent.commands.executed
                for d, command_id in sent
            )

        # A command travels in real time: real speed until every device has run it.
        self.windows.append(
            Window(
                event.action,
                asyncio.Event(),
                self.sim.clock.now_ns() + int(EFFECT_WAIT_S * NS_PER_S),
                check=executed,
            )
        )

    async def set_power(self, event: SetPower) -> None:
        schedule = {"on": event.on} if event.on else None
        await asyncio.to_thread(self.sim.admin_client().set_power, GROUP, schedule, group=True)
        self.note("power schedule " + ("set" if schedule else "removed"))

    async def restore(self, event: Restore) -> None:
        if event.action == "server_back":
            await asyncio.to_thread(self.sim.start_server, self._port)
            self.outage = False
            self.note("server back")
        else:
            self.sim.streams.accept()
            self.sse_broken = False
            self.note("event streams back")
        # Reconnecting takes the devices' (real-time) backoff: real speed until they have
        # (those left unpaired on purpose never will), or a command sent just after would
        # wait for a reconnection that compressed time hid.
        devices = [d for d in self.sim.devices if d.name not in self.sim.no_repair]
        self.windows.append(
            Window(
                "reconnecting the event streams",
                asyncio.Event(),
                self.sim.clock.now_ns() + int(EFFECT_WAIT_S * NS_PER_S),
                check=lambda: all(d.streaming for d in devices),
            )
        )

    async def stop_server(self, event: StopServer) -> list[Restore]:
        self._port = await self.sim.stop_server()
        # Network time is real time: timeouts and backoff would not notice a compressed outage.
        self.outage = True
        self.note(f"server stopped for {event.seconds:g} s")
        return [Restore(event.at + event.seconds, "server_back")]

    def break_sse(self, event: BreakSse) -> list[Restore]:
        if self.sim.options.server_url is not None:
            raise ConfigError(["break_sse needs the in-process server (no --server)"])
        self.sim.streams.refuse()
        # Real speed meanwhile: the devices' reconnect backoff and poll interval are real time.
        self.sse_broken = True
        self.note(f"event streams broken for {event.seconds:g} s (the rest of the API works)")
        return [Restore(event.at + event.seconds, "sse_back")]

    async def corrupt_asset(self, event: CorruptAsset) -> None:
        sim = self.sim
        assert sim.seeded is not None
        sha = asset_of_item(sim.seeded.manifest, event.item)
        for device in self.selected(event.device):
            path = device.object_path(sha)
            if not path.exists():
                self.note(f"{device.name} has no cached copy of {event.item!r} to corrupt")
                continue
            flipped = await asyncio.to_thread(corrupt_file, path)
            self.note(f"{device.name}: flipped {flipped} bytes of {event.item!r} ({sha[:12]})")

    async def revoke(self, event: Revoke) -> None:
        sim = self.sim
        devices = self.selected(event.device)
        t = sim.media_s()
        for device in devices:
            device_id = sim.device_ids.get(device.name)
            if device_id is None:
                raise ConfigError([f"{device.name} is not paired: nothing to revoke"])
            if not event.repair:
                sim.no_repair.add(device.name)
            await asyncio.to_thread(sim.admin_client().revoke, device_id)
            self.note(
                f"{device.name} revoked" + (" (will be paired again)" if event.repair else "")
            )
        if event.repair:
            names = [d.name for d in devices]
            self._until(sim.watch.playing(names, after_t=t), "re-pairing")

    async def step_clock(self, event: StepClock) -> None:
        for device in self.selected(event.device):
            device.clock.step_wall(int(event.seconds * NS_PER_S))
            if device.player is not None:
                device.player.wall.check()  # what the player's own poll would find
            self.note(f"{device.name}: wall clock stepped by {event.seconds:+g} s")

    async def join(self, event: Join) -> None:
        """A device powered on late: it pairs, joins the group, and plays (network time)."""
        t = self.sim.media_s()
        (device,) = self.selected(event.device)
        await device.start()
        self.note(f"{device.name} powered on for the first time")
        self._until(self.sim.watch.playing([device.name], after_t=t), "joining")

    async def restart_device(self, event: RestartDevice) -> None:
        sim = self.sim
        devices = self.selected(event.device)
        t = sim.media_s()
        for device in devices:
            await device.stop()
            self.note(f"{device.name} powered off")
        if event.off_seconds:
            await sim.driver.run_until(sim.clock.now_ns() + int(event.off_seconds * NS_PER_S))
        for device in devices:
            await device.start()
            self.note(f"{device.name} powered on")
        self._until(sim.watch.playing([d.name for d in devices], after_t=t), "restart")
