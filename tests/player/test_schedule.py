"""The scheduler: days, windows across midnight, priorities, date ranges, DST, readiness."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from player import resolve, resolve_at
from protocol import Layout, Manifest

UTC = dt.UTC
PARIS = ZoneInfo("Europe/Paris")


def build(
    schedule: list[dict[str, Any]], *, default: str | None = "base", tz: str = "UTC"
) -> Manifest:
    ids = sorted({"base", *(e["layout"] for e in schedule)})
    return Manifest.model_validate(
        {
            "version": 1,
            "timezone": tz,
            "playlists": [{"id": "p", "items": [{"id": "t", "type": "text", "text": "x"}]}],
            "layouts": [
                {"id": i, "zones": [{"id": "z", "w": 10, "h": 10, "playlist": "p"}]} for i in ids
            ],
            "schedule": [{"id": f"s{n}", **e} for n, e in enumerate(schedule)],
            "default_layout": default,
        }
    )


def at(text: str, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz)


def chosen(manifest: Manifest, when: dt.datetime) -> str | None:
    layout, _ = resolve(manifest, when)
    return layout.id if layout else None


def test_default_layout_when_nothing_is_scheduled() -> None:
    assert resolve(build([]), at("2026-11-23T10:00")) == (build([]).layout("base"), None)
    assert resolve(build([], default=None), at("2026-11-23T10:00")) == (None, None)


def test_time_window_and_next_change() -> None:
    m = build([{"layout": "day", "from": "08:00", "to": "18:00"}])
    layout, change = resolve(m, at("2026-11-23T07:59"))
    assert layout is not None and layout.id == "base"
    assert change == at("2026-11-23T08:00")
    layout, change = resolve(m, at("2026-11-23T08:00"))
    assert layout is not None and layout.id == "day"
    assert change == at("2026-11-23T18:00")


def test_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    m = build([{"layout": "night", "days": ["fri"], "from": "22:00", "to": "02:00"}])
    assert chosen(m, at("2026-11-27T23:00")) == "night"  # Friday night
    assert chosen(m, at("2026-11-28T01:59")) == "night"  # Saturday small hours
    assert chosen(m, at("2026-11-28T02:00")) == "base"
    assert chosen(m, at("2026-11-28T23:00")) == "base"  # Saturday is not a listed day
    assert chosen(m, at("2026-11-27T01:00")) == "base"  # Thursday's window does not exist


def test_days_and_date_range() -> None:
    m = build([{"layout": "sale", "start": "2026-12-01", "end": "2026-12-03", "days": ["wed"]}])
    assert chosen(m, at("2026-12-02T12:00")) == "sale"  # a Wednesday inside the range
    assert chosen(m, at("2026-12-09T12:00")) == "base"  # a Wednesday after the end
    _, change = resolve(m, at("2026-11-20T12:00"))
    assert change == at("2026-12-02T00:00")


def test_priority_then_list_order() -> None:
    m = build(
        [
            {"layout": "low", "priority": 1},
            {"layout": "high", "priority": 9, "from": "12:00", "to": "13:00"},
            {"layout": "tie", "priority": 1},
        ]
    )
    assert chosen(m, at("2026-11-23T11:00")) == "low"
    assert chosen(m, at("2026-11-23T12:30")) == "high"


def test_unplayable_layouts_fall_back_to_next_priority_then_default() -> None:
    m = build([{"layout": "a", "priority": 5}, {"layout": "b", "priority": 3}])

    def ready(ids: set[str]) -> Any:
        return lambda layout: layout.id in ids

    when = at("2026-11-23T11:00")
    assert resolve(m, when, playable=ready({"a", "b", "base"}))[0] == m.layout("a")
    assert resolve(m, when, playable=ready({"b", "base"}))[0] == m.layout("b")
    assert resolve(m, when, playable=ready({"base"}))[0] == m.layout("base")
    assert resolve(m, when, playable=ready(set()))[0] is None


def test_naive_wall_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve(build([]), dt.datetime(2026, 1, 1))


def test_dst_spring_forward_starts_a_window_inside_the_gap_at_the_transition() -> None:
    # 2026-03-29 02:00 Paris does not exist: the clocks go from 02:00 CET to 03:00 CEST.
    m = build([{"layout": "gap", "from": "02:30", "to": "04:00"}], tz="Europe/Paris")
    layout, change = resolve(m, at("2026-03-29T00:30"))  # 01:30 CET
    assert layout is not None and layout.id == "base"
    assert change == at("2026-03-29T01:00")  # the transition, 03:00 CEST
    assert chosen(m, at("2026-03-29T01:00")) == "gap"


def test_dst_spring_forward_window_wholly_in_the_gap_is_not_skipped() -> None:
    m = build([{"layout": "gap", "from": "02:15", "to": "02:45"}], tz="Europe/Paris")
    _, change = resolve(m, at("2026-03-29T00:30"))
    assert change == at("2026-03-29T01:00")
    assert chosen(m, at("2026-03-29T01:10")) == "gap"
    assert chosen(m, at("2026-03-29T01:30")) == "base"


def test_dst_fall_back_plays_a_repeated_hour_once() -> None:
    # 2026-10-25 03:00 CEST becomes 02:00 CET: 02:00-03:00 local happens twice.
    m = build([{"layout": "w", "from": "02:00", "to": "02:30"}], tz="Europe/Paris")
    assert chosen(m, at("2026-10-25T00:10")) == "w"  # 02:10 CEST, first pass
    assert chosen(m, at("2026-10-25T01:10")) == "base"  # 02:10 CET, second pass
    _, change = resolve(m, at("2026-10-25T00:30"))
    assert change == at("2026-10-26T01:00")  # next day 02:00 CET


ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
times_of_day = st.integers(0, 95).map(lambda q: f"{q // 4:02d}:{q % 4 * 15:02d}")


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "layout": draw(st.sampled_from(["a", "b", "c"])),
        "priority": draw(st.integers(0, 3)),
    }
    if draw(st.booleans()):
        start, end = draw(times_of_day), draw(times_of_day)
        if start != end:
            entry["from"], entry["to"] = start, end
    if draw(st.booleans()):
        entry["days"] = draw(
            st.lists(
                st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
                min_size=1,
                max_size=7,
                unique=True,
            )
        )
    if draw(st.booleans()):
        first = dt.date(2026, 1, 1) + dt.timedelta(days=draw(st.integers(0, 400)))
        entry["start"] = first.isoformat()
        if draw(st.booleans()):
            entry["end"] = (first + dt.timedelta(days=draw(st.integers(0, 30)))).isoformat()
    if draw(st.integers(0, 3)) == 0:
        entry["share"] = draw(layout_shares())
    return entry


@st.composite
def layout_shares(draw: st.DrawFn) -> dict[str, Any]:
    slot_ms = draw(st.integers(1, 600)) * 1000
    most = 3_600_000 // slot_ms
    if draw(st.booleans()):
        return {"per_hour": draw(st.integers(1, min(most, 60))), "slot_ms": slot_ms}
    share = draw(st.floats(0.1, 100.0))
    plays = max(1, round(share / 100 * 3_600_000 / slot_ms))
    assume(plays * slot_ms <= 3_600_000)
    return {"percent": share, "slot_ms": slot_ms}


instants = st.integers(0, 500 * 24 * 60).map(
    lambda minutes: dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=minutes, seconds=7)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schedule=st.lists(entries(), max_size=4),
    tz=st.sampled_from(ZONES),
    when=instants,
    probes=st.lists(st.floats(0, 1), min_size=1, max_size=6),
)
def test_next_change_is_the_first_instant_the_answer_changes(
    schedule: list[dict[str, Any]], tz: str, when: dt.datetime, probes: list[float]
) -> None:
    """The answer is the layout and the share entry whose slot chose it (a slot ending over
    the same layout is a change: what plays beneath resumes)."""
    m = build(schedule, tz=tz)

    def answer(t: dt.datetime) -> tuple[str | None, str | None]:
        found = resolve_at(m, t)
        return (
            found.layout.id if found.layout else None,
            found.share.id if found.share else None,
        )

    now = answer(when)
    change = resolve_at(m, when).next_change
    if change is None:
        later = [when + dt.timedelta(days=d, hours=h) for d in (1, 3, 8) for h in (0, 7, 13)]
        assert all(answer(t) == now for t in later)
        return
    assert change > when
    span = change - when
    for fraction in probes:  # nothing changes before next_change_at...
        probe = when + span * fraction
        if probe < change:
            assert answer(probe) == now
    assert answer(change - dt.timedelta(microseconds=1)) == now
    assert answer(change) != now  # ...and it does at it


# The 2026 transitions of the zones above (and the day before each).
DST_DAYS = [
    dt.date.fromisoformat(d) + dt.timedelta(days=back)
    for d in (
        "2026-03-08",
        "2026-03-29",
        "2026-04-05",
        "2026-09-06",
        "2026-10-04",
        "2026-10-25",
        "2026-11-01",
    )
    for back in (-1, 0)
]


@settings(max_examples=150, deadline=None)
@given(
    start=times_of_day,
    length=st.integers(1, 16).map(lambda q: q * 15),
    tz=st.sampled_from(ZONES[1:]),
    date=st.one_of(st.sampled_from(DST_DAYS), st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31))),
)
def test_no_window_is_skipped_on_any_day(start: str, length: int, tz: str, date: dt.date) -> None:
    minutes = int(start[:2]) * 60 + int(start[3:]) + length
    end = f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"
    m = build([{"layout": "w", "from": start, "to": end}], tz=tz)
    local_start = dt.datetime.combine(date, dt.time()).replace(tzinfo=ZoneInfo(tz))
    # Walk the local day (and the night after) minute by minute in absolute time.
    t = local_start.astimezone(UTC) - dt.timedelta(hours=2)
    active = 0
    while t < local_start.astimezone(UTC) + dt.timedelta(hours=50):
        layout, change = resolve(m, t)
        step = (change - t) if change else dt.timedelta(hours=50)
        if layout is not None and layout.id == "w":
            active += 1
        t += step
    assert active >= 2, "every day's window played"


def test_a_share_entry_takes_its_slots_of_each_hour() -> None:
    share = {"per_hour": 4, "slot_ms": 60_000}
    m = build([{"layout": "ad", "priority": 5, "from": "09:00", "to": "17:00", "share": share}])
    assert resolve(m, at("2026-11-23T09:00")) == (m.layout("base"), at("2026-11-23T09:07"))
    # Slot j is centred at 09:00 + (j + 1/2) x 15 min: 09:07 to 09:08, 09:22 to 09:23, ...
    assert resolve(m, at("2026-11-23T09:07")) == (m.layout("ad"), at("2026-11-23T09:08"))
    assert resolve(m, at("2026-11-23T09:08")) == (m.layout("base"), at("2026-11-23T09:22"))
    assert resolve(m, at("2026-11-23T16:52")) == (m.layout("ad"), at("2026-11-23T16:53"))
    # The window closes at 17:00: no slot until the next day's.
    assert resolve(m, at("2026-11-23T16:53")) == (m.layout("base"), at("2026-11-24T09:07"))
    assert resolve(m, at("2026-11-23T09:07"), shares=False)[0] == m.layout("base")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(share=layout_shares(), tz=st.sampled_from(ZONES), when=instants)
# A share that fills the hour: its slots touch, and each is still a play of its own.
@example(
    share={"percent": 92.0, "slot_ms": 600_000}, tz="UTC", when=dt.datetime(2026, 1, 1, tzinfo=UTC)
)
def test_a_share_entry_gets_its_airtime_in_every_full_hour(
    share: dict[str, Any], tz: str, when: dt.datetime
) -> None:
    m = build([{"layout": "ad", "priority": 1, "share": share}], tz=tz)
    entry = m.schedule[0]
    assert entry.share is not None
    slots, slot = entry.share.slots_per_hour(), dt.timedelta(milliseconds=entry.share.slot_ms)
    # Walk three hours change by change; sum the airtime per local hour.
    zone = ZoneInfo(tz)
    local = when.astimezone(zone)
    hour = (local.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)).astimezone(
        UTC
    )
    t, airtime, takeovers = hour, dt.timedelta(), 0
    while t < hour + dt.timedelta(hours=1):
        layout, change = resolve(m, t)
        assert change is not None and change > t
        end = min(change, hour + dt.timedelta(hours=1))
        if layout is not None and layout.id == "ad":
            airtime += end - t
            takeovers += 1
        t = change
    assert takeovers == slots
    assert airtime == slots * slot


def test_layout_type_is_the_manifests() -> None:
    layout, _ = resolve(build([]), at("2026-11-23T10:00"))
    assert isinstance(layout, Layout)
