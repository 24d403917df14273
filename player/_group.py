"""Sync groups: every screen plays each zone's playlist as one cycle counted from an epoch.

A manifest with ``sync`` puts the device in a group whose screens play in step. Each zone's
playlist is a cycle of ``sum of durations``; item *k* of cycle *n* owns the slot

    [epoch + n * cycle + d0 + ... + d(k-1),  that + dk)

in group time (the server's clock, ``player._timebase``), the same on every screen whenever
it joined or restarted. A video without ``duration_ms`` lasts the length the server probed
its file to have (the manifest's asset entry): every screen knows it before playing it.

A presentation of a synced layout therefore runs its sequencers on group time
(``GroupTime``) instead of the media clock, starts each zone at the slot that holds the
instant it starts (mid-item: a screen joining late shows at once what the others show, with
no wait and no black frame; a video is sought to the group's position), and keeps every
later deadline on the grid. A broken item keeps its slot (the previous picture stays up) so
the cycle does not shift against the other screens.
"""

from __future__ import annotations

from dataclasses import dataclass

from player._clock import NS_PER_MS
from player._wall import WallClock, to_ns
from protocol import Asset, Playlist, SyncGroup, item_length_ms


class GroupTime:
    """The sequencers' time for a synced presentation: group time, through the wall clock
    (which follows the group's estimate, or its own best source until there is one)."""

    def __init__(self, wall: WallClock) -> None:
        self.wall = wall

    def to_media(self, t: int) -> int:
        return self.wall.media_ns_at(t)

    def from_media(self, media_ns: int) -> int:
        return self.wall.ns_at(media_ns)


@dataclass(frozen=True)
class Slot:
    index: int
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class Cycle:
    """A playlist's cycle in group time (ns since the Unix epoch)."""

    epoch_ns: int
    durations_ns: tuple[int, ...]

    @classmethod
    def of(cls, sync: SyncGroup, playlist: Playlist) -> Cycle:
        durations = []
        for item in playlist.items:
            if item.duration_ms is None:  # the manifest refuses this; a guard for direct use
                raise ValueError(f"item {item.id!r} has no duration: a sync cycle needs one")
            durations.append(item.duration_ms * NS_PER_MS)
        return cls(to_ns(sync.epoch), tuple(durations))

    @property
    def length_ns(self) -> int:
        return sum(self.durations_ns)

    def slot_at(self, group_ns: int) -> Slot:
        """The slot holding ``group_ns`` (before the epoch too: the cycle runs both ways)."""
        elapsed = group_ns - self.epoch_ns
        cycle_start = group_ns - elapsed % self.length_ns
        start = cycle_start
        for index, duration in enumerate(self.durations_ns):
            if group_ns < start + duration:
                return Slot(index, start, start + duration)
            start += duration
        raise AssertionError("unreachable: the instant lies within its cycle")

    def end_after(self, slot: Slot, index: int) -> int:
        """The end of item ``index``'s first slot that starts at or after ``slot``'s start."""
        count = len(self.durations_ns)
        end = slot.start_ns
        step = slot.index
        while True:
            end += self.durations_ns[step]
            if step == index % count:
                return end
            step = (step + 1) % count


class GroupPlay:
    """What a synced presentation needs: the group's epoch, group time, the assets' lengths."""

    def __init__(self, sync: SyncGroup, wall: WallClock, assets: list[Asset] | None = None) -> None:
        self.sync = sync
        self.time = GroupTime(wall)
        self._assets = {a.sha256: a for a in assets or []}

    def timed(self, playlist: Playlist) -> Playlist:
        """The playlist with each video played to its end given its file's probed length."""
        items = []
        for item in playlist.items:
            length = item_length_ms(item, self._assets)
            if item.duration_ms is None and length is not None:
                item = item.model_copy(update={"duration_ms": length})
            items.append(item)
        return playlist.model_copy(update={"items": items})

    def cycle(self, playlist: Playlist) -> Cycle:
        return Cycle.of(self.sync, playlist)
