"""A presentation: one layout playing, a ``ZoneSequencer`` per zone (``player._sequencer``).

The player reports each switch once the frame that shows it has been presented, with
``late_ms`` measured from it. A presentation can start where a previous one of the same layout
would be by now (``positions``), as if it had played on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pygame

from player._clock import Clock
from player._sequencer import Switch, WallMap, ZonePosition, ZoneSequencer
from player._wall import WallClock
from protocol import Interrupt, Item, Layout, Manifest
from zones import RenderContext, Scene, ZoneView

__all__ = ["Presentation", "Switch", "ZonePosition", "ZoneSequencer"]


class Presentation:
    """A layout's scene plus one sequencer per zone."""

    def __init__(
        self,
        manifest: Manifest,
        layout: Layout,
        *,
        clock: Clock,
        preload_ns: int,
        context_for: Callable[[str], RenderContext],
        on_loaded: Callable[[Item, int], None] | None = None,
        wall: WallMap | None = None,
    ) -> None:
        self.manifest = manifest
        self.layout = layout
        self._clock = clock
        # Set by the player when an interrupt chose this layout: which, and when it was due.
        self.interrupt: Interrupt | None = None
        self.interrupt_due_ns: int | None = None
        # An overlay (an interrupt, a share entry's slot) plays from its start each time; the
        # layout beneath resumes after it.
        self.overlay = False
        wall = wall or WallClock(clock)
        self.scene = Scene(layout.id, (layout.width, layout.height), layout.background)
        self.sequencers: list[ZoneSequencer] = []
        for zone in layout.zones:
            view = self.scene.add_zone(
                ZoneView(zone.id, pygame.Rect(zone.x, zone.y, zone.w, zone.h), zone.z)
            )
            self.sequencers.append(
                ZoneSequencer(
                    view,
                    manifest.playlist(zone.playlist),
                    context_for(zone.id),
                    clock=clock,
                    preload_ns=preload_ns,
                    wall=wall,
                    on_loaded=on_loaded,
                )
            )

    async def prime(
        self, at_ns: int | None = None, positions: dict[str, ZonePosition] | None = None
    ) -> None:
        """Prepare each zone's item for media instant ``at_ns`` (default now): anew, or
        resuming from ``positions`` (zone id → where it was; see ``positions``)."""
        at = self._clock.now_ns() if at_ns is None else at_ns
        given = positions or {}
        await asyncio.gather(*(s.prime(at, given.get(s.view.zone_id)) for s in self.sequencers))

    def positions(self) -> dict[str, ZonePosition]:
        """Where each zone stands, to resume the layout later as if it had played on."""
        return {
            s.view.zone_id: position
            for s in self.sequencers
            if (position := s.position()) is not None
        }

    def start(self, t0_ns: int) -> None:
        for sequencer in self.sequencers:
            sequencer.start(t0_ns)

    def tick(self, now_ns: int) -> None:
        for sequencer in self.sequencers:
            sequencer.tick(now_ns)

    def next_wake_ns(self, now_ns: int) -> int | None:
        times = [t for s in self.sequencers if (t := s.next_wake_ns(now_ns)) is not None]
        return min(times) if times else None

    def switching_zones(self, at_ns: int) -> list[str]:
        """The zones whose next item is due at or before ``at_ns``."""
        return [s.view.zone_id for s in self.sequencers if s.switches_by(at_ns)]

    def take_switches(self) -> list[Switch]:
        switches: list[Switch] = []
        for sequencer in self.sequencers:
            switches.extend(replace(s, layout=self.layout.id) for s in sequencer.switches)
            sequencer.switches.clear()
        return switches

    def playing(self) -> dict[str, str]:
        return {s.view.zone_id: s.current.id for s in self.sequencers if s.current is not None}

    def end(self) -> None:
        for sequencer in self.sequencers:
            sequencer.end()

    def release_upcoming(self) -> None:
        for sequencer in self.sequencers:
            sequencer.release_upcoming()

    def release(self) -> None:
        for sequencer in self.sequencers:
            sequencer.release()
