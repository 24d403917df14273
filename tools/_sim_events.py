"""Applying a scenario's events to a running simulation."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from core import ConfigError
from player import NS_PER_S
from tools._sim_device import SimDevice
from tools._sim_scenario import (
    CorruptAsset,
    Event,
    Publish,
    RestartDevice,
    Revoke,
    StepClock,
    StopServer,
)
from tools._sim_seed import apply_publication, asset_of_item, changed_items, prepare_publication
from tools._sim_summary import Publication

if TYPE_CHECKING:
    from tools._sim_run import Simulation

EFFECT_WAIT_S = 120.0  # media seconds a network-bound event may take to show on every device
REAL_TIME = 1.0


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


class EventRunner:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.publications: list[Publication] = []

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

    async def apply(self, event: Event) -> None:
        handlers = {
            Publish: self.publish,
            StopServer: self.stop_server,
            CorruptAsset: self.corrupt_asset,
            Revoke: self.revoke,
            StepClock: self.step_clock,
            RestartDevice: self.restart_device,
        }
        await handlers[type(event)](event)  # type: ignore[operator]

    async def _until(self, condition: asyncio.Event, what: str) -> None:
        """Run at real speed until ``condition`` (or the wait runs out or the run ends)."""
        sim = self.sim
        limit = sim.at_ns(min(sim.options.duration_s, sim.media_s() + EFFECT_WAIT_S))
        speed = REAL_TIME if sim.driver.virtual else "default"
        if not await sim.driver.run_while(condition, limit, speed=speed):
            self.note(f"{what}: not seen on every device in time")

    async def publish(self, event: Publish) -> None:
        sim = self.sim
        assert sim.seeded is not None
        scenario = sim.options.scenario
        base = scenario.base if scenario is not None else sim.out
        before = sim.seeded.manifest
        manifest, media = await asyncio.to_thread(prepare_publication, sim.seeded, event, base)
        items = frozenset(event.expect_items or changed_items(before, manifest))
        t = sim.media_s()
        await asyncio.to_thread(apply_publication, sim.admin_client(), sim.seeded, manifest, media)
        self.publications.append(Publication(t, items))
        self.note(f"published (new items: {', '.join(sorted(items)) or 'none named'})")
        names = [d.name for d in sim.devices]
        await self._until(sim.watch.updated(names, after_t=t, items=items), "the update")

    async def stop_server(self, event: StopServer) -> None:
        sim = self.sim
        server = sim.server
        if server is None:
            raise ConfigError(["stop_server needs the in-process server (no --server)"])
        port = int(server.url.rsplit(":", 1)[1])
        await asyncio.to_thread(server.stop)
        self.note(f"server stopped for {event.seconds:g} s")
        # Network time is real time: timeouts and backoff would not notice a compressed outage.
        speed = REAL_TIME if sim.driver.virtual else "default"
        await sim.driver.run_until(sim.clock.now_ns() + int(event.seconds * NS_PER_S), speed=speed)
        await asyncio.to_thread(sim.start_server, port)
        self.note("server back")

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
            await self._until(sim.watch.playing(names, after_t=t), "re-pairing")

    async def step_clock(self, event: StepClock) -> None:
        for device in self.selected(event.device):
            device.clock.step_wall(int(event.seconds * NS_PER_S))
            if device.player is not None:
                device.player.wall.check()  # what the player's own poll would find
            self.note(f"{device.name}: wall clock stepped by {event.seconds:+g} s")

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
        await self._until(sim.watch.playing([d.name for d in devices], after_t=t), "restart")
