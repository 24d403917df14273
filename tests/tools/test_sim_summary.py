"""Summary statistics from a timeline, the stdout table, and scenario expectations."""

from __future__ import annotations

from typing import Any

import pytest

from tools.sim._scenario import Expect
from tools.sim._summary import (
    Publication,
    check_expectations,
    format_table,
    percentile,
    summarize,
    sync_spread,
    update_latencies,
)


def rec(t: float, event: str, item: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "t": t,
        "wall": "2026-11-23T08:00:00+00:00",
        "device": extra.pop("device", "sim-1"),
        "layout": extra.pop("layout", "day"),
        "zone": "main",
        "item": item,
        "event": event,
        "due": extra.pop("due", t),
        "late_ms": extra.pop("late_ms", None),
        **extra,
    }


TIMELINE = [
    rec(0.0, "state", state="LOADING"),
    rec(0.1, "state", state="PLAYING"),
    rec(0.1, "start", "a", late_ms=1.0),
    rec(8.1, "end", "a"),
    rec(8.1, "start", "b", late_ms=3.0),
    rec(9.0, "error", "b", error="decoder crashed"),
    rec(16.1, "start", "a", late_ms=2.0),
    rec(20.0, "state", state="LOADING"),
    rec(20.2, "state", state="PLAYING"),
    rec(20.25, "start", "new", late_ms=0.5, layout="evening"),
    rec(0.2, "start", "a", late_ms=4.0, device="sim-2"),
    rec(20.5, "start", "new", late_ms=5.0, device="sim-2"),
]


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 99) == 99.0


def test_update_latency_per_device_from_named_items_or_reload() -> None:
    named = update_latencies(TIMELINE, [Publication(20.0, frozenset({"new"}))])
    assert named == pytest.approx([0.25, 0.5])
    # without named items: the first start after a state change that follows the publication
    by_reload = update_latencies(TIMELINE, [Publication(19.0)])
    assert by_reload == pytest.approx([1.25])
    assert update_latencies(TIMELINE, [Publication(30.0, frozenset({"new"}))]) == []


def test_summary_counts_switches_lateness_errors_and_states() -> None:
    summary = summarize(
        TIMELINE,
        duration_s=30,
        real_s=2.0,
        speed="max",
        devices=["sim-1", "sim-2"],
        black_frames={"sim-2": 1},
        publications=[Publication(20.0, frozenset({"new"}))],
    )
    assert summary["switches"] == 6
    assert summary["late_ms"]["max"] == 5.0
    assert summary["late_ms"]["p50"] == 2.5
    assert summary["errors"] == 1
    assert summary["state_changes"] == 4
    assert summary["states"] == ["LOADING", "PLAYING"]
    assert summary["black_frames"] == 1
    assert summary["update_latency_s"]["count"] == 2
    assert summary["update_latency_s"]["max"] == 0.5
    assert summary["speedup"] == 15.0
    assert summary["layouts"] == {"day": 5, "evening": 1}
    assert summary["per_device"]["sim-2"]["switches"] == 2
    assert summary["per_device"]["sim-2"]["black_frames"] == 1
    assert summary["first_errors"][0]["error"] == "decoder crashed"

    table = format_table(summary)
    assert "switches        6" in table
    assert "p99" in table and "update latency" in table
    assert "sim-2" in table
    assert "decoder crashed" in table


def test_no_publication_means_no_latency_line() -> None:
    summary = summarize(TIMELINE[:3], duration_s=1, real_s=1, speed="1", devices=["sim-1"])
    assert summary["update_latency_s"] is None
    assert "update latency" not in format_table(summary)


def test_expectations_report_each_failure() -> None:
    summary = summarize(
        TIMELINE,
        duration_s=30,
        real_s=1,
        speed="max",
        devices=["sim-1", "sim-2"],
        publications=[Publication(20.0, frozenset({"new"}))],
    )
    passing = Expect(
        max_errors=1,
        max_update_latency_s=1.0,
        items_played=["a", "new"],
        layouts_played=["evening"],
        states_seen=["PLAYING"],
        min_switches=6,
    )
    assert check_expectations(passing, summary, TIMELINE) == []
    failing = Expect(
        max_errors=0,
        max_black_frames=0,
        max_late_ms_p99=1.0,
        max_update_latency_s=0.3,
        items_played=["zzz"],
        items_not_played=["b"],
        states_seen=["STOPPING"],
        min_switches=100,
        min_repairs=1,
    )
    failures = check_expectations(failing, summary, TIMELINE)
    assert len(failures) == 8
    assert any("1 error event(s)" in f for f in failures)
    assert any("item 'zzz' never started" in f for f in failures)
    assert any("item 'b' started but must not" in f for f in failures)
    assert any("state 'STOPPING'" in f for f in failures)
    assert any("update latency max 0.5 s" in f for f in failures)


def test_deadline_checks_on_a_virtual_and_a_real_clock() -> None:
    virtual = [
        rec(10.0, "start", "a"),  # on its deadline's frame: t == due
        rec(20.016, "start", "b", due=20.0),  # a frame later: missed
        rec(30.0, "end", "b"),
    ]
    checks = summarize(virtual, duration_s=30, real_s=1, speed="max", devices=["sim-1"])
    assert checks["late_ms"]["count"] == 0
    assert {k: checks["deadlines"][k] for k in ("checked", "on_frame", "missed")} == {
        "checked": 2,
        "on_frame": 1,
        "missed": 1,
    }
    assert checks["deadlines"]["first_missed"][0]["item"] == "b"
    assert checks["per_device"]["sim-1"]["deadlines"]["missed"] == 1
    assert "1 of 2 presented on their deadline's frame, 1 missed" in format_table(checks)
    assert "not measured on a virtual clock" in format_table(checks)
    failures = check_expectations(
        Expect(max_missed_deadlines=0, max_late_ms_p99=5.0), checks, virtual
    )
    assert any("1 start(s) missed their deadline's frame" in f for f in failures)
    assert any("late_ms is not measured on a virtual clock" in f for f in failures)
    # A real clock: within one display frame (16.67 ms at 60 Hz) is on the deadline's frame.
    real = [rec(1.0, "start", "a", late_ms=16.0), rec(2.0, "start", "b", late_ms=17.0)]
    measured = summarize(real, duration_s=3, real_s=3, speed="1", devices=["sim-1"])
    assert (measured["deadlines"]["on_frame"], measured["deadlines"]["missed"]) == (1, 1)
    slow_display = summarize(
        real, duration_s=3, real_s=3, speed="1", devices=["sim-1"], frame_ms=1000 / 30
    )
    assert slow_display["deadlines"]["missed"] == 0


def test_sync_spread_per_boundary_across_devices() -> None:
    def start(device: str, t: float, item: str, due: float | None) -> dict[str, Any]:
        return rec(t, "start", item, device=device, group_due=due)

    records = [
        start("sim-1", 10.000, "a", 1000.0),
        start("sim-2", 10.004, "a", 1000.0),
        start("sim-3", 10.001, "a", 1000.0),
        start("sim-1", 18.000, "b", 1008.0),
        start("sim-2", 18.030, "b", 1008.0),  # 30 ms: two frames
        start("sim-3", 12.345, "a", 1002.345),  # joined on its own: no other device has it
        start("sim-1", 19.0, "x", None),  # not a sync group's start
        rec(18.0, "end", "a", device="sim-2", group_due=1008.0),
    ]
    group = sync_spread(records)
    assert group is not None
    assert (group["devices"], group["boundaries"], group["on_every_device"]) == (3, 2, 1)
    assert group["unmatched"] == 1 and group["within_frame"] == 1
    assert group["spread_ms"]["max"] == 30.0
    assert group["worst"][0] | {"spread_ms": 0} == {
        "layout": "day", "zone": "main", "item": "b", "group_due": 1008.0,
        "spread_ms": 0, "devices": 2,
    }  # fmt: skip
    assert sync_spread(TIMELINE) is None
    summary = summarize(records, duration_s=30, real_s=1, speed="max", devices=["sim-1", "sim-2"])
    assert "sync spread     p50 17.00  p99 29.74  max 30.00 ms over 2 boundaries" in format_table(
        summary
    )
    failures = check_expectations(
        Expect(max_sync_spread_ms_p99=16.7, max_sync_spread_ms=33.3, min_sync_boundaries=3),
        summary,
        records,
    )
    assert failures[0].startswith("sync spread p99 is 29.74 ms, at most 16.7 expected")
    assert failures[1:] == ["2 boundaries seen on several screens, at least 3 expected"]
    plain = summarize(TIMELINE, duration_s=30, real_s=1, speed="max", devices=["sim-1"])
    assert check_expectations(Expect(max_sync_spread_ms=33.3), plain, TIMELINE) == [
        "no sync group played (no start carried a group_due)"
    ]
