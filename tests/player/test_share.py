"""The zone planner: shares of airtime spread over each hour, validity windows, fast-forward.

The properties hold for any playlist the generator makes: deterministic, each full hour
delivers every share within one play of its target (exactly, when the playlist leaves the
slots room), and fast-forwarding lands where playing every item would have.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from player._share import Cursor, ZonePlan
from player._windows import HOUR_NS
from protocol import Playlist

S = 1_000_000_000
MONDAY = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def ns(when: dt.datetime) -> int:
    return int(when.timestamp()) * S


def text(item_id: str, ms: int, **extra: Any) -> dict[str, Any]:
    return {"id": item_id, "type": "text", "text": item_id, "duration_ms": ms, **extra}


def plan_of(items: list[dict[str, Any]], tz: str = "UTC") -> ZonePlan:
    return ZonePlan(Playlist.model_validate({"id": "p", "items": items}), tz)


def play(plan: ZonePlan, start_ns: int, until_ns: int) -> list[tuple[int, str | None]]:
    """What the zone shows from ``start_ns``: (instant, item id) at each deadline."""
    cursor, t = plan.start(start_ns), start_ns
    shown: list[tuple[int, str | None]] = []
    while t < until_ns:
        pick = plan.pick(cursor, t)
        cursor = pick.cursor
        if pick.index is None:
            shown.append((t, None))
            assert pick.wake_ns is not None and pick.wake_ns > t
            t = pick.wake_ns
            continue
        item = plan.items[pick.index]
        shown.append((t, item.id))
        duration = plan.duration_ns(pick.index)
        assert duration is not None
        t += duration
    return shown


def test_a_percent_share_is_spread_evenly_over_the_hour() -> None:
    plan = plan_of(
        [text("a", 10_000), text("b", 10_000), text("ad", 15_000, share={"percent": 10})]
    )
    start = ns(MONDAY)
    shown = play(plan, start, start + HOUR_NS)
    ads = [t for t, item in shown if item == "ad"]
    assert len(ads) == 24  # 10 % of 3600 s in 15 s plays
    gaps = [(b - a) / S for a, b in itertools.pairwise(ads)]
    assert all(140 <= g <= 160 for g in gaps), gaps  # one every 150 s, give or take an item
    fillers = [item for _, item in shown if item != "ad"]
    assert fillers[:4] == ["a", "b", "a", "b"], "the rest plays in turn"


def test_plays_per_hour_and_the_same_manifest_gives_the_same_sequence() -> None:
    items = [text("a", 7_000), text("ad", 20_000, share={"per_hour": 4})]
    start = ns(MONDAY) + 13 * S
    first = play(plan_of(items), start, start + 3 * HOUR_NS)
    again = play(plan_of(items), start, start + 3 * HOUR_NS)
    assert first == again
    per_hour = Counter((t - ns(MONDAY)) // HOUR_NS for t, item in first if item == "ad")
    assert per_hour[1] == per_hour[2] == 4


def test_hours_are_local_hours() -> None:
    """Kolkata is UTC+05:30: its hours start at half past the UTC hour."""
    plan = plan_of([text("a", 10_000), text("ad", 10_000, share={"per_hour": 2})], "Asia/Kolkata")
    start = ns(MONDAY)
    ads = [t for t, item in play(plan, start, start + 2 * HOUR_NS) if item == "ad"]
    local = [
        dt.datetime.fromtimestamp(t / S, dt.timezone(dt.timedelta(hours=5, minutes=30)))
        for t in ads
    ]
    # 00:00 UTC is 05:30 local: the slots are centred in each half of the local hour, at :15
    # and :45 local, not at :15 and :45 UTC.
    assert [(m.minute, m.second) for m in local[:3]] == [(45, 0), (15, 0), (45, 0)]


def test_an_item_outside_its_window_is_skipped_and_the_zone_wakes_when_one_opens() -> None:
    lunch = text("lunch", 60_000, valid={"from": "11:00", "to": "14:00"})
    plan = plan_of([lunch], "Europe/Paris")  # 11:00 Paris is 10:00 UTC in November
    start = ns(MONDAY.replace(hour=9))
    first = plan.pick(plan.start(start), start)
    assert first.index is None
    assert first.wake_ns == ns(MONDAY.replace(hour=10))
    shown = play(plan, start, ns(MONDAY.replace(hour=14)))
    assert shown[0] == (start, None)
    assert shown[1] == (ns(MONDAY.replace(hour=10)), "lunch")
    assert shown[-1] == (ns(MONDAY.replace(hour=13)), None), "empty again from 14:00 Paris"
    assert sum(1 for _, item in shown if item == "lunch") == 180


def test_items_outside_their_window_are_skipped_in_turn() -> None:
    plan = plan_of(
        [text("a", 10_000), text("night", 10_000, valid={"from": "22:00", "to": "06:00"})]
    )
    day = play(plan, ns(MONDAY.replace(hour=12)), ns(MONDAY.replace(hour=12, minute=1)))
    assert {item for _, item in day} == {"a"}
    night = play(plan, ns(MONDAY.replace(hour=23)), ns(MONDAY.replace(hour=23, minute=1)))
    assert [item for _, item in night][:4] == ["a", "night", "a", "night"]


def test_share_items_alone_fill_the_time_in_turn() -> None:
    plan = plan_of(
        [text("x", 10_000, share={"per_hour": 2}), text("y", 10_000, share={"per_hour": 2})]
    )
    shown = play(plan, ns(MONDAY), ns(MONDAY) + 60 * S)
    assert [item for _, item in shown] == ["x", "y", "x", "y", "x", "y"]


def test_a_share_item_outside_its_window_does_not_binge_when_it_opens() -> None:
    ad = text("ad", 10_000, share={"per_hour": 60}, valid={"from": "10:20", "to": "12:00"})
    plan = plan_of([text("a", 10_000), ad])
    opens = ns(MONDAY.replace(hour=10, minute=20))
    shown = play(plan, ns(MONDAY.replace(hour=10)), opens + 600 * S)
    after = [item for t, item in shown if t >= opens]
    assert after[:5] == ["a", "a", "a", "ad", "a"], "no slot of 10:00-10:20 is owed"
    assert after.count("ad") == 10, "one a minute from 10:20"


# -- properties ---------------------------------------------------------------------------------


@st.composite
def shared_playlists(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Playlists with items that share the hour: the shares and the longest item (a minute at
    most) fit in the hour."""
    fillers = [
        text(f"f{k}", draw(st.integers(1_000, 60_000))) for k in range(draw(st.integers(1, 4)))
    ]
    shared = []
    budget_ms = 3_600_000
    for k in range(draw(st.integers(1, 3))):
        duration = draw(st.integers(1_000, 30_000))
        if draw(st.booleans()):
            share: dict[str, Any] = {"per_hour": draw(st.integers(1, 40))}
        else:
            share = {"percent": draw(st.floats(0.5, 20.0))}
        item = text(f"s{k}", duration, share=share)
        plays = Playlist.model_validate({"id": "p", "items": [item]}).items[0].plays_per_hour()
        if plays * duration > budget_ms - 60_000:
            continue
        budget_ms -= plays * duration
        shared.append(item)
    assume(shared)
    items = fillers + shared
    draw(st.randoms()).shuffle(items)
    return items


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shared_playlists(),
    st.integers(0, 7 * 86_400),
    st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata"]),
)
def test_shares_are_delivered_within_one_item_of_the_target_every_full_hour(
    items: list[dict[str, Any]], offset_s: int, tz: str
) -> None:
    plan = plan_of(items, tz)
    start = ns(MONDAY) + offset_s * S
    first_hour = plan.hour_start(start) + HOUR_NS  # the first full hour after the start
    hours = 4
    shown = play(plan, start, first_hour + hours * HOUR_NS)
    assert shown == play(plan_of(items, tz), start, first_hour + hours * HOUR_NS), "deterministic"
    for index in plan.shared:
        item = plan.items[index]
        assert item.share is not None and item.duration_ms is not None
        target_plays = plan.plays[index]
        for hour in range(hours):
            begin = first_hour + hour * HOUR_NS
            plays = sum(1 for t, i in shown if i == item.id and begin <= t < begin + HOUR_NS)
            assert plays == target_plays, (item.id, hour, plays, target_plays)
            if item.share.percent is not None:
                target_ms = item.share.percent / 100 * 3_600_000
                # Within half a play by rounding to whole plays: within one item, as promised.
                assert abs(plays * item.duration_ms - target_ms) <= item.duration_ms / 2


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_playlists(), st.integers(1, 6 * 3600), st.integers(0, 86_400))
def test_fast_forward_lands_where_playing_every_item_would_have(
    items: list[dict[str, Any]], ahead_s: int, offset_s: int
) -> None:
    plan = plan_of(items, "Europe/Paris")
    start = ns(MONDAY) + offset_s * S
    until = start + ahead_s * S
    shown = play(plan, start, until + 120 * S)
    on_screen = [(t, item) for t, item in shown if t <= until][-1]
    _, pick, due = plan.advance(plan.start(start), start, until)
    assert pick.index is not None
    assert (due, plan.items[pick.index].id) == on_screen


def test_fast_forward_over_a_night_of_short_items_skips_whole_turns() -> None:
    plan = plan_of([text("a", 1), text("b", 2)])
    start = ns(MONDAY)
    cursor, pick, due = plan.advance(plan.start(start), start, start + 10 * HOUR_NS + 7_000_000)
    assert isinstance(cursor, Cursor)
    # 3 ms per turn: after 10 h (12 000 000 turns), 'a' plays [6, 7) ms and 'b' [7, 9) ms.
    assert (due - start - 10 * HOUR_NS, plan.items[pick.index or 0].id) == (7_000_000, "b")


@pytest.mark.parametrize("tz", ["Europe/Paris", "America/New_York"])
def test_share_slots_across_a_dst_change_keep_their_count(tz: str) -> None:
    plan = plan_of([text("a", 5_000), text("ad", 5_000, share={"per_hour": 6})], tz)
    start = ns(dt.datetime(2026, 3, 28, 22, tzinfo=dt.UTC))  # both zones change within a day
    shown = play(plan, start, start + 30 * HOUR_NS)
    ads = [t for t, item in shown if item == "ad"]
    per_hour = Counter(plan.hour_start(t) for t in ads)
    assert set(list(per_hour.values())[1:-1]) == {6}
