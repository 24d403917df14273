"""Sync groups on the player: the cycle from the epoch, group time without steps, and screens
with different clocks presenting every boundary at the same group instant."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core import Settings
from player import NS_PER_S, DirectoryAssets, Player, TimelineEvent, VirtualClock, sha256_of
from player._group import Cycle, GroupPlay, Slot
from player._timebase import Timebase
from player._wall import WallClock
from protocol import Manifest, SyncGroup
from sync import ClockEstimate
from tests.player.conftest import BLUE, BROKEN, DATA, RED, START, S, asset, image, layout
from zones import OffscreenDisplay

MS = 1_000_000
EPOCH = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
EPOCH_NS = int(EPOCH.timestamp()) * S


def _cycle(*ms: int) -> Cycle:
    return Cycle(EPOCH_NS, tuple(m * MS for m in ms))


def test_the_slot_holding_an_instant_counts_from_the_epoch_both_ways() -> None:
    cycle = _cycle(1000, 1500, 500)  # 3 s
    assert cycle.slot_at(EPOCH_NS) == Slot(0, EPOCH_NS, EPOCH_NS + 1000 * MS)
    assert cycle.slot_at(EPOCH_NS + 2499 * MS) == Slot(
        1, EPOCH_NS + 1000 * MS, EPOCH_NS + 2500 * MS
    )
    late = EPOCH_NS + 86_400 * S + 2600 * MS  # a day on: 28,800 cycles exactly, then 2.6 s
    assert cycle.slot_at(late) == Slot(2, late - 100 * MS, late + 400 * MS)
    before = EPOCH_NS - 100 * MS  # the cycle before the epoch: its last item
    assert cycle.slot_at(before) == Slot(2, EPOCH_NS - 500 * MS, EPOCH_NS)


def test_the_end_of_a_later_items_slot_wraps_round_the_cycle() -> None:
    cycle = _cycle(1000, 1500, 500)
    slot = cycle.slot_at(EPOCH_NS + 1200 * MS)  # item 1
    assert cycle.end_after(slot, 1) == EPOCH_NS + 2500 * MS
    assert cycle.end_after(slot, 2) == EPOCH_NS + 3000 * MS
    assert cycle.end_after(slot, 0) == EPOCH_NS + 4000 * MS  # item 0 of the next cycle


def _estimate(offset_ns: int, ref_ns: int = 0, drift_ppm: float = 0.0) -> ClockEstimate:
    return ClockEstimate(offset_ns, ref_ns, drift_ppm, 1 * MS, 0, 8, "server")


async def test_group_time_is_set_once_then_slewed_without_steps() -> None:
    clock = VirtualClock(start_ns=10 * S)
    timebase = Timebase(clock, max_slew_ppm=5000)
    steps: list[int] = []
    timebase.add_listener(steps.append)
    assert not timebase.synced and timebase.source == "unsynced"
    assert timebase.update(_estimate(EPOCH_NS)) == 0 and steps == [0]  # the first: set
    assert timebase.group_ns(10 * S) == EPOCH_NS + 10 * S
    # 4 ms later than thought: absorbed at 5 ms/s, continuous and increasing all along.
    assert timebase.update(_estimate(EPOCH_NS + 4 * MS)) == 0 and steps == [0]
    samples = [timebase.group_ns(10 * S + k * 100 * MS) for k in range(12)]
    assert samples[0] == EPOCH_NS + 10 * S
    assert all(0 < b - a <= 100 * MS + 500_000 for a, b in itertools.pairwise(samples))
    assert timebase.group_ns(10 * S + 800 * MS) == EPOCH_NS + 4 * MS + 10 * S + 800 * MS
    for group in (EPOCH_NS + 10 * S + 123 * MS, EPOCH_NS + 20 * S):
        assert timebase.group_ns(timebase.media_ns(group)) == group

    # While group time runs faster than media time (slewing, a slow oscillator), some of its
    # instants fall between two media nanoseconds: the first media instant at or after them,
    # never one short of them (a frame loop woken for a deadline would spin on it).
    skewed = Timebase(clock)
    skewed.update(_estimate(EPOCH_NS, drift_ppm=-95.0))
    skewed.update(_estimate(EPOCH_NS + 3 * MS, drift_ppm=-95.0))
    start = skewed.group_ns(10 * S + 500 * MS)
    for group in range(start, start + 20_000):
        media = skewed.media_ns(group)
        assert skewed.group_ns(media) >= group > skewed.group_ns(media - 1)
    # Beyond step_ns: stepped (from where the slew had got to), and the listeners hear it.
    await_clock = 10 * S + 400 * MS
    clock._now = await_clock
    assert timebase.update(_estimate(EPOCH_NS + 1 * S)) == 1 * S - 2 * MS
    assert steps == [0, 1 * S - 2 * MS] and timebase.steps == 2
    timebase.update(None)
    assert not timebase.synced and steps[-1] == 0


def test_group_time_follows_the_estimated_drift() -> None:
    clock = VirtualClock(start_ns=0)
    timebase = Timebase(clock)
    timebase.update(_estimate(EPOCH_NS, drift_ppm=-100.0))  # a media clock 100 ppm fast
    assert timebase.group_ns(1000 * S) == EPOCH_NS + 1000 * S - 100 * MS


class SkewedClock:
    """A device's own media clock over the shared virtual one: a different origin and rate."""

    def __init__(self, base: VirtualClock, *, origin_ns: int, drift_ppm: float) -> None:
        self.base = base
        self._b0 = base.now_ns()
        self._m0 = origin_ns
        self.rate = 1 + drift_ppm * 1e-6

    def now_ns(self) -> int:
        return self._m0 + round((self.base.now_ns() - self._b0) * self.rate)

    def true_ns(self, media_ns: int) -> int:
        return self._b0 + math.ceil((media_ns - self._m0) / self.rate)  # never early

    def wall_ns(self) -> int:
        return self.base.wall_ns() + 1_010 * S  # an unsynchronised system clock, far off

    async def sleep_until(self, deadline_ns: int | None, wake: asyncio.Event | None = None) -> bool:
        base = None if deadline_ns is None else int(self.true_ns(deadline_ns))
        return await self.base.sleep_until(base, wake)

    def busy(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.base.busy()

    async def advance_to(self, target_ns: int) -> None:
        await self.base.advance_to(int(self.true_ns(target_ns)))

    def truth(self, error_ns: int = 0) -> ClockEstimate:
        """The exact estimate of group time (the base's wall clock) on this clock, plus error."""
        ref = self.now_ns()
        offset = self.base.wall_ns() - ref + error_ns
        return ClockEstimate(offset, ref, (1 / self.rate - 1) * 1e6, MS, 0, 8, "server")


def sync_manifest(items: list[dict[str, Any]], epoch: dt.datetime = EPOCH) -> Manifest:
    shas = sorted({i["asset"] for i in items})
    return Manifest.model_validate(
        {
            "version": 1,
            "assets": [asset(s) for s in shas],
            "playlists": [{"id": "p1", "items": items}],
            "layouts": [layout("l1", "p1")],
            "default_layout": "l1",
            "sync": SyncGroup(group="wall", epoch=epoch).model_dump(mode="json"),
        }
    )


class Screen:
    def __init__(self, name: str, clock: SkewedClock, settings: Settings | None = None) -> None:
        assets = DirectoryAssets(DATA)
        assets.scan()
        self.clock = clock
        self.player = Player(
            settings or Settings(),
            clock=clock,
            assets=assets,
            display=OffscreenDisplay((64, 36)),
            device=name,
        )
        self.events: list[tuple[int, TimelineEvent]] = []  # (true instant, event)
        self.player.add_listener(lambda e: self.events.append((clock.base.now_ns(), e)))

    def starts(self) -> list[tuple[int, TimelineEvent]]:
        return [(t, e) for t, e in self.events if e.event == "start"]


@contextlib.asynccontextmanager
async def screens(*made: Screen) -> AsyncIterator[tuple[Screen, ...]]:
    try:
        yield made
    finally:
        for screen in made:
            await screen.player.stop()


async def test_screens_with_different_clocks_switch_at_the_same_group_instant() -> None:
    base = VirtualClock(start_ns=5 * S, wall_start_ns=int(START.timestamp()) * S)
    items = [image("a", RED, 1000), image("b", BLUE, 1500), image("c", RED, 700)]
    manifest = sync_manifest(items)
    first = Screen("first", SkewedClock(base, origin_ns=123 * S, drift_ppm=80.0))
    late = Screen("late", SkewedClock(base, origin_ns=7 * S, drift_ppm=-95.0))
    async with screens(first, late):
        first.player.set_clock_estimate(first.clock.truth())
        await first.player.start()
        await first.player.set_manifest(manifest)
        await base.advance(3_700 * MS)  # the second screen joins late, mid-item
        late.player.set_clock_estimate(late.clock.truth(error_ns=2 * MS))
        await late.player.start()
        await late.player.set_manifest(manifest)
        await base.advance(60 * S)

        joined_at, joined = late.starts()[0]
        # It shows at once what the group shows then, no waiting for the next boundary.
        group_then = base.wall_ns() - (base.now_ns() - joined_at)
        expected = Cycle(EPOCH_NS, (1000 * MS, 1500 * MS, 700 * MS)).slot_at(group_then)
        assert joined.item == ["a", "b", "c"][expected.index]
        assert joined_at - (3_700 * MS + 5 * S) < 50 * MS  # as soon as it was loaded

        shared = {e.group_due: t for t, e in first.starts() if e.group_due is not None}
        matched = [
            (t - shared[e.group_due], e) for t, e in late.starts()[1:] if e.group_due in shared
        ]
        assert len(matched) >= 60 / 3.2 * 3 - 3
        # The late screen believes group time 2 ms later than it is: it presents 2 ms early.
        assert all(abs(delta + 2 * MS) <= 1_000 for delta, _ in matched), matched[:3]
        for _, event in matched:  # every boundary on the epoch's grid
            slot = Cycle(EPOCH_NS, (1000 * MS, 1500 * MS, 700 * MS)).slot_at(
                round(event.group_due * NS_PER_S) + 1  # type: ignore[operator]
            )
            assert abs(slot.start_ns - event.group_due * NS_PER_S) < 1_000  # type: ignore[operator]


async def test_a_broken_item_keeps_its_slot() -> None:
    base = VirtualClock(start_ns=0, wall_start_ns=EPOCH_NS)
    items = [image("a", RED, 1000), image("bad", BROKEN, 1000), image("b", BLUE, 1000)]
    screen = Screen("one", SkewedClock(base, origin_ns=0, drift_ppm=0.0))
    async with screens(screen):
        screen.player.set_clock_estimate(screen.clock.truth())
        await screen.player.start()
        await screen.player.set_manifest(sync_manifest(items))
        await base.advance(6_500 * MS)
        starts = [(e.item, e.group_due) for _, e in screen.starts()]
        # "a" stays up through the broken slot; "b" comes at its own slot, 2 s into each cycle.
        assert starts[1:] == [
            ("b", EPOCH_NS / S + 2),
            ("a", EPOCH_NS / S + 3),
            ("b", EPOCH_NS / S + 5),
            ("a", EPOCH_NS / S + 6),
        ]
        # Each failure is reported with the next frame presented: its slot's, at 1 and 4 s.
        errors = [(t, e.item, e.due) for t, e in screen.events if e.event == "error"]
        assert errors == [(1 * S, "bad", 1.0), (4 * S, "bad", 4.0)]


async def test_screens_agree_on_a_cycle_whose_items_come_and_go_with_their_windows() -> None:
    # "a" is valid 08:01 to 08:02 only: outside it the cycle is b and c; inside, a, b and c.
    # One screen plays from 08:00:50, the other joins at 08:01:20, inside the window; each
    # start must be the rule's (the slot holding its group instant in the cycle of the items
    # valid then), the same on both screens, and "a" never starts outside its window.
    base = VirtualClock(start_ns=5 * S, wall_start_ns=EPOCH_NS + 50 * S)
    window = {"from": "08:01", "to": "08:02"}
    items = [image("a", RED, 1000, valid=window), image("b", BLUE, 1500), image("c", RED, 700)]
    manifest = sync_manifest(items)
    first = Screen("first", SkewedClock(base, origin_ns=40 * S, drift_ppm=60.0))
    late = Screen("late", SkewedClock(base, origin_ns=9 * S, drift_ppm=-80.0))
    async with screens(first, late):
        first.player.set_clock_estimate(first.clock.truth())
        await first.player.start()
        await first.player.set_manifest(manifest)
        await base.advance(30 * S)
        late.player.set_clock_estimate(late.clock.truth())
        await late.player.start()
        await late.player.set_manifest(manifest)
        await base.advance(70 * S)  # to 08:02:30

    opens, closes = EPOCH_NS + 60 * S, EPOCH_NS + 120 * S
    durations = {"a": 1000 * MS, "b": 1500 * MS, "c": 700 * MS}

    def expected(group_ns: int) -> tuple[str, int]:
        """The rule, written out: the item on screen at ``group_ns`` and its slot's start."""
        valid = [i for i in ("a", "b", "c") if i != "a" or opens <= group_ns < closes]
        slot = Cycle(EPOCH_NS, tuple(durations[i] for i in valid)).slot_at(group_ns)
        return valid[slot.index], slot.start_ns

    for screen in (first, late):
        starts = [e for _, e in screen.starts() if e.group_due is not None]
        assert len(starts) > 30
        for position, event in enumerate(starts):
            due = round(event.group_due * NS_PER_S)  # type: ignore[operator]
            item, slot_start = expected(due)
            assert event.item == item, (screen.player.device, event)
            # On the grid, or where the window's edge cut into a slot (or joined mid-slot).
            assert abs(slot_start - due) < 1_000 or due in (opens, closes) or position == 0
        assert {e.item for e in starts} == {"a", "b", "c"}
    shared = {(e.item, e.group_due) for _, e in first.starts()}
    joined = [(e.item, e.group_due) for _, e in late.starts()[1:]]
    assert len(joined) > 40 and set(joined) <= shared
    played_a = [e.group_due for _, e in first.starts() if e.item == "a"]
    assert played_a and all(opens / S <= t < closes / S for t in played_a)  # type: ignore[operator]


async def test_an_interrupt_pre_empts_one_screen_and_it_comes_back_in_step() -> None:
    # The group's cycle is 3.2 s (a, b, c). An interrupt reaches one screen from 08:00:20 to
    # 08:00:30; at its end that screen shows what group time gives then (b, 1.2 s into its
    # 9th cycle, mid-slot), then every boundary with the screen the interrupt did not reach.
    base = VirtualClock(start_ns=5 * S, wall_start_ns=EPOCH_NS + 10 * S)
    items = [image("a", RED, 1000), image("b", BLUE, 1500), image("c", RED, 700)]
    body = sync_manifest(items).model_dump(mode="json", by_alias=True)
    alert = {"id": "alert", "type": "text", "text": "EVACUATE", "duration_ms": 5_000}
    body["playlists"].append({"id": "p2", "items": [alert]})
    body["layouts"].append(layout("emergency", "p2"))
    body["interrupts"] = [
        {
            "id": "i1",
            "layout": "emergency",
            "starts_at": (EPOCH + dt.timedelta(seconds=20)).isoformat(),
            "ends_at": (EPOCH + dt.timedelta(seconds=30)).isoformat(),
        }
    ]
    hit = Screen("hit", SkewedClock(base, origin_ns=3 * S, drift_ppm=50.0))
    spared = Screen("spared", SkewedClock(base, origin_ns=77 * S, drift_ppm=-70.0))
    async with screens(hit, spared):
        for screen, manifest in ((hit, Manifest.model_validate(body)), (spared, None)):
            screen.player.set_clock_estimate(screen.clock.truth())
            await screen.player.start()
            await screen.player.set_manifest(manifest or sync_manifest(items))
        await base.advance(40 * S)

    interrupts = [(e.state, e.interrupt) for _, e in hit.events if e.event == "interrupt"]
    assert interrupts == [("start", "i1"), ("end", "i1")]
    back = [e for _, e in hit.starts() if e.layout == "l1" and e.group_due >= EPOCH_NS / S + 30]  # type: ignore[operator]
    assert (back[0].item, back[0].group_due) == ("b", EPOCH_NS / S + 30)
    expected = Cycle(EPOCH_NS, (1000 * MS, 1500 * MS, 700 * MS))
    assert expected.slot_at(EPOCH_NS + 30 * S).index == 1
    spared_starts = {(e.item, e.group_due) for _, e in spared.starts()}
    after = [(e.item, e.group_due) for e in back[1:]]
    assert len(after) >= 8 and set(after) <= spared_starts


def test_a_sync_group_refuses_items_with_a_share() -> None:
    items = [image("a", RED, 1000, share={"per_hour": 4}), image("b", BLUE, 1000)]
    with pytest.raises(ValueError, match=r"no item may have a share.*p1/a"):
        sync_manifest(items)


async def test_a_synced_layout_waits_for_group_time_then_is_positioned_again() -> None:
    base = VirtualClock(start_ns=0, wall_start_ns=EPOCH_NS)
    clock = SkewedClock(base, origin_ns=0, drift_ppm=0.0)
    settings = Settings.model_validate({"player": {"sync_wait_ms": 2000}})
    screen = Screen("one", clock, settings)
    items = [image("a", RED, 10_000), image("b", BLUE, 10_000)]
    async with screens(screen):
        await screen.player.start()
        await screen.player.set_manifest(sync_manifest(items))
        await base.advance(1_900 * MS)
        assert screen.starts() == []  # waiting for group time
        await base.advance(200 * MS)
        # No estimate in time (the server is out of reach): it plays on its own clock,
        # 1010 s ahead: item "b" of that cycle (1012 s into 20 s cycles).
        assert [e.item for _, e in screen.starts()] == ["b"]
        await base.advance(3 * S)
        screen.player.set_clock_estimate(clock.truth())  # group time arrives: a step
        await base.advance(100 * MS)
        assert [e.item for _, e in screen.starts()] == ["b", "a"]
        assert screen.player.time_status() is not None
        status = screen.player.time_status()
        assert status is not None and status.source == "server"
        assert status.offset_ms == pytest.approx(-1_010_000.0, abs=0.01)


def test_a_playlist_without_durations_has_no_cycle() -> None:
    playlist = Manifest.model_validate(
        {
            "version": 1,
            "assets": [asset(RED)],
            "playlists": [{"id": "p1", "items": [image("a", RED, 1000)]}],
            "layouts": [layout("l1", "p1")],
        }
    ).playlists[0]
    open_ended = playlist.model_copy(
        update={"items": [playlist.items[0].model_copy(update={"duration_ms": None})]}
    )
    with pytest.raises(ValueError, match="has no duration"):
        Cycle.of(SyncGroup(group="g", epoch=EPOCH), open_ended)


async def test_each_screen_of_a_wall_shows_its_tile_of_one_picture(tmp_path: Path) -> None:
    """A zone's crop: the left screen shows the left half of the picture, the right the right."""
    from PIL import Image

    wide = Image.new("RGB", (256, 72), (220, 20, 20))
    wide.paste((20, 20, 220), (128, 0, 256, 72))
    wide.save(tmp_path / "wide.png")
    assets = DirectoryAssets(tmp_path)
    assets.scan()
    sha = sha256_of(tmp_path / "wide.png")
    seen: dict[str, list[tuple[int, ...]]] = {}
    for side, x in (("left", 0.0), ("right", 0.5)):
        manifest = Manifest.model_validate(
            {
                "version": 1,
                "assets": [{"sha256": sha, "size": 1, "mime": "image/png"}],
                "playlists": [{"id": "p1", "items": [image("w", sha, 1000, fit="stretch")]}],
                "layouts": [
                    layout("l1", "p1")
                    | {
                        "zones": [
                            {
                                "id": "main",
                                "w": 64,
                                "h": 36,
                                "playlist": "p1",
                                "crop": {"x": x, "y": 0, "w": 0.5, "h": 1},
                            }
                        ]
                    }
                ],
                "default_layout": "l1",
            }
        )
        clock = VirtualClock(start_ns=0, wall_start_ns=EPOCH_NS)
        player = Player(
            Settings(), clock=clock, assets=assets, display=OffscreenDisplay((64, 36)), device=side
        )
        await player.start()
        try:
            await player.set_manifest(manifest)
            await clock.advance(S)
            frame = player.frame()
            assert frame is not None
            seen[side] = [frame.get_at((px, 18))[:3] for px in (1, 32, 62)]
        finally:
            await player.stop()
    expected = {"left": (220, 20, 20), "right": (20, 20, 220)}
    for side, pixels in seen.items():  # (resampling may ring by a few levels at the edge)
        for pixel in pixels:
            assert all(abs(a - b) <= 8 for a, b in zip(pixel, expected[side], strict=True)), seen


def test_a_video_played_to_its_end_lasts_its_probed_length_in_a_group() -> None:
    clip = "ab" * 32
    manifest = Manifest.model_validate(
        {
            "version": 1,
            "assets": [
                asset(RED),
                {"sha256": clip, "size": 1, "mime": "video/mp4", "duration_ms": 4200},
            ],
            "playlists": [
                {
                    "id": "p1",
                    "items": [image("a", RED, 1000), {"id": "v", "type": "video", "asset": clip}],
                }
            ],
            "layouts": [layout("l1", "p1")],
            "default_layout": "l1",
            "sync": SyncGroup(group="wall", epoch=EPOCH).model_dump(mode="json"),
        }
    )
    group = GroupPlay(manifest.sync, WallClock(VirtualClock()), manifest.assets)  # type: ignore[arg-type]
    timed = group.timed(manifest.playlists[0])
    assert [i.duration_ms for i in timed.items] == [1000, 4200]
    assert group.cycle(timed).length_ns == 5200 * MS


async def test_the_wait_for_group_time_counts_from_the_first_synced_manifest() -> None:
    # A new screen pairs and fetches its content first: its clock exchanges begin only when a
    # manifest puts it in a group, so the wait starts then, not when the player started.
    base = VirtualClock(start_ns=0, wall_start_ns=EPOCH_NS)
    clock = SkewedClock(base, origin_ns=0, drift_ppm=0.0)
    settings = Settings.model_validate({"player": {"sync_wait_ms": 2000}})
    screen = Screen("one", clock, settings)
    items = [image("a", RED, 10_000), image("b", BLUE, 10_000)]
    async with screens(screen):
        await screen.player.start()
        await base.advance(5 * S)  # pairing, the manifest's download
        await screen.player.set_manifest(sync_manifest(items))
        await base.advance(1_900 * MS)
        assert screen.starts() == []  # still waiting for group time
        screen.player.set_clock_estimate(clock.truth())
        await base.advance(100 * MS)
        # Group time came in time: the group's slot (7 s into the cycle: "a"), never the one
        # its own clock, 1010 s off, would give ("b").
        assert [e.item for _, e in screen.starts()] == ["a"]
