"""A presentation: one layout playing, a sequencer per zone.

A zone plays through a ``ZoneSequencer`` (``player._sequencer``), or, for a sync group's
layout, through a ``GroupSequencer`` (``player._group_sequencer``) whose deadlines are group
time, so that every screen of the group shows each item at the same instant. The player reports
each switch once the frame that shows it has been presented, with ``late_ms`` measured from it.
A presentation can start where a previous one of the same layout would be by now
(``positions``), as if it had played on; a synced one needs no positions: group time says
where its cycle stands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pygame

from player._clock import Clock
from player._group import GroupPlay
from player._group_sequencer import GroupSequencer
from player._sequencer import Switch, WallMap, ZonePosition, ZoneSequencer
from player._wall import WallClock
from protocol import Interrupt, Item, Layout, Manifest
from zones import RenderContext, Scene, ZoneView

__all__ = ["Presentation", "Switch", "ZonePosition", "ZoneSequencer"]


class Presentation:
    """A layout's scene plus one sequencer per zone; with ``group``, played in step with the
    other screens of a sync group (``player._group``)."""

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
        group: GroupPlay | None = None,
    ) -> None:
        self.manifest = manifest
        self.layout = layout
        self.group = group
        self._clock = clock
        # Set by the player when an interrupt chose this layout: which, and when it was due.
        self.interrupt: Interrupt | None = None
        self.interrupt_due_ns: int | None = None
        # An overlay (an interrupt, a share entry's slot) plays from its start each time; the
        # layout beneath resumes after it.
        self.overlay = False
        self._t0 = 0  # where it starts: media clock, or group time in a sync group
        wall = wall or WallClock(clock)
        self.scene = Scene(layout.id, (layout.width, layout.height), layout.background)
        self.sequencers: list[ZoneSequencer | GroupSequencer] = []
        for zone in layout.zones:
            view = self.scene.add_zone(
                ZoneView(zone.id, pygame.Rect(zone.x, zone.y, zone.w, zone.h), zone.z)
            )
            playlist = manifest.playlist(zone.playlist)
            context = context_for(zone.id)
            if zone.crop is not None:
                crop = zone.crop
                context = replace(context, crop=(crop.x, crop.y, crop.w, crop.h))
            if group is None:
                self.sequencers.append(
                    ZoneSequencer(
                        view,
                        playlist,
                        context,
                        clock=clock,
                        preload_ns=preload_ns,
                        wall=wall,
                        on_loaded=on_loaded,
                    )
                )
                continue
            playlist = group.timed(playlist)
            self.sequencers.append(
                GroupSequencer(
                    view,
                    playlist,
                    replace(context, elapsed=self._elapsed),
                    clock=clock,
                    preload_ns=preload_ns,
                    time=group.time,
                    cycle=group.cycle(playlist),
                    on_loaded=on_loaded,
                )
            )

    @property
    def synced(self) -> bool:
        return self.group is not None

    def _elapsed(self, since_ns: int, at_ns: int) -> int:
        """Group time passed between two media instants (a synced video follows it)."""
        assert self.group is not None
        time = self.group.time
        return time.from_media(at_ns) - time.from_media(since_ns)

    async def prime(
        self, at_ns: int | None = None, positions: dict[str, ZonePosition] | None = None
    ) -> None:
        """Prepare each zone's item for media instant ``at_ns`` (default now): anew, or
        resuming from ``positions`` (zone id → where it was; see ``positions``). In a sync
        group, the item whose slot holds that instant in group time (positions do not apply)."""
        at = self._clock.now_ns() if at_ns is None else at_ns
        if self.group is not None:
            at_group = self.group.time.from_media(at)
            await asyncio.gather(
                *(s.prime(at_group) for s in self.sequencers if isinstance(s, GroupSequencer))
            )
            return
        given = positions or {}
        await asyncio.gather(
            *(
                s.prime(at, given.get(s.view.zone_id))
                for s in self.sequencers
                if isinstance(s, ZoneSequencer)
            )
        )

    def positions(self) -> dict[str, ZonePosition]:
        """Where each zone stands, to resume the layout later as if it had played on (none for
        a synced layout: group time is where it resumes)."""
        return {
            s.view.zone_id: position
            for s in self.sequencers
            if isinstance(s, ZoneSequencer) and (position := s.position()) is not None
        }

    def starts_at_ns(self) -> int:
        """The media instant the presentation starts at (a synced one: with group time as it
        is now, which the group's estimate may have corrected since ``start``)."""
        return self._t0 if self.group is None else self.group.time.to_media(self._t0)

    def start(self, t0_ns: int) -> None:
        """Show the first items at ``t0_ns`` (media clock). In a sync group each runs to the
        end of its slot, and every later item keeps to the group's grid."""
        self._t0 = t0_ns if self.group is None else self.group.time.from_media(t0_ns)
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
        """What the zones did, with deadlines on the media clock (and, in a sync group, also
        in group time)."""
        switches: list[Switch] = []
        group = self.group
        for sequencer in self.sequencers:
            for s in sequencer.switches:
                if group is None or s.due_ns is None:
                    switches.append(replace(s, layout=self.layout.id))
                    continue
                due = s.due_ns
                switches.append(
                    replace(
                        s,
                        layout=self.layout.id,
                        due_ns=group.time.to_media(due),
                        group_due_ns=due,
                    )
                )
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
