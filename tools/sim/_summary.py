"""What a simulation did, in numbers: computed from the timeline alone, so any run can be redone.

``summarize`` turns timeline records (DESIGN section 12) into the ``summary.json`` body;
``format_table`` renders it for a terminal; ``check_expectations`` applies a scenario's
``[expect]`` table and says which checks failed and why.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tools.sim._airtime import airtime_lines, check_airtime
from tools.sim._scenario import Expect

Record = Mapping[str, Any]
FRAME_MS = 1000 / 60  # one display frame at the player's default frame_rate_hz


@dataclass(frozen=True)
class Publication:
    """Content published at media time ``t`` (s); ``items`` prove it arrived (empty: any)."""

    t: float
    items: frozenset[str] = frozenset()


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def distribution(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    def rounded(v: float | None) -> float | None:
        return None if v is None else round(v, digits)

    return {
        "count": len(values),
        "p50": rounded(percentile(values, 50)),
        "p99": rounded(percentile(values, 99)),
        "max": rounded(max(values) if values else None),
    }


def update_latencies(records: Sequence[Record], publications: Iterable[Publication]) -> list[float]:
    """Seconds from each publication to the first start of new content, per device.

    New content is the first start of one of the publication's ``items``; with no items named,
    the first start that follows a state change after the publication (the player reloading).
    A device that never showed the update contributes nothing here (the expectation on
    ``items_played`` catches it).
    """
    devices = sorted({r["device"] for r in records})
    latencies = []
    for pub in publications:
        for device in devices:
            reloaded = False
            for r in records:
                if r["device"] != device or r["t"] < pub.t:
                    continue
                if r["event"] == "state":
                    reloaded = True
                elif r["event"] == "start" and (r["item"] in pub.items if pub.items else reloaded):
                    latencies.append(r["t"] - pub.t)
                    break
    return latencies


def on_deadline_frame(start: Record, frame_ms: float = FRAME_MS) -> bool:
    """Was this start presented on its deadline's own frame?

    With ``late_ms`` measured (a real clock): within one display frame of the deadline. On a
    virtual clock (``late_ms`` null) the frame loop wakes on the deadline itself, so its frame
    is at ``due`` exactly (to the timeline's microsecond).
    """
    late = start.get("late_ms")
    if late is not None:
        return 0 <= float(late) < frame_ms
    return abs(float(start["t"]) - float(start["due"])) < 1e-6


def deadline_checks(records: Sequence[Record], frame_ms: float = FRAME_MS) -> dict[str, Any]:
    """Starts with a deadline: how many were presented on the deadline's frame, and which not."""
    starts = [r for r in records if r["event"] == "start" and r.get("due") is not None]
    missed = [r for r in starts if not on_deadline_frame(r, frame_ms)]
    return {
        "checked": len(starts),
        "on_frame": len(starts) - len(missed),
        "missed": len(missed),
        "first_missed": [
            {k: r.get(k) for k in ("t", "due", "late_ms", "device", "layout", "zone", "item")}
            for r in missed[:10]
        ],
    }


def sync_spread(records: Sequence[Record], frame_ms: float = FRAME_MS) -> dict[str, Any] | None:
    """How far apart the screens of a sync group presented each boundary (None: no group).

    A boundary is one deadline on the group's grid: starts with the same layout, zone, item
    and ``group_due`` on several devices. Its spread is the latest presentation minus the
    earliest, in the run's own time (``t``: the simulator's true clock, which is also group
    time's); ``deadline_spread_ms`` is the same for the deadlines (``due``) the screens aimed
    at. Starts with a ``group_due`` no other device has are ``unmatched``: the first item
    of a layout a device loaded on its own (at boot, on joining, on new content: shown at once
    mid-slot, not at a boundary), and boundaries only one device was on for (the others were
    off).
    """
    boundaries: dict[tuple[Any, ...], dict[str, tuple[float, float]]] = {}
    for r in records:
        if r["event"] != "start" or r.get("group_due") is None:
            continue
        key = (r["layout"], r["zone"], r["item"], r["group_due"])
        due = float(r["due"]) if r.get("due") is not None else float(r["t"])
        boundaries.setdefault(key, {}).setdefault(r["device"], (float(r["t"]), due))
    if not boundaries:
        return None
    devices = sorted({d for seen in boundaries.values() for d in seen})
    spreads: list[tuple[float, tuple[Any, ...], int]] = []
    deadlines: list[float] = []
    for key, seen in boundaries.items():
        if len(seen) >= 2:
            presented = [t for t, _ in seen.values()]
            aimed = [d for _, d in seen.values()]
            spreads.append(((max(presented) - min(presented)) * 1000, key, len(seen)))
            deadlines.append((max(aimed) - min(aimed)) * 1000)
    values = [spread for spread, _, _ in spreads]
    worst = sorted(spreads, key=lambda s: s[0], reverse=True)[:5]
    return {
        "devices": len(devices),
        "boundaries": len(spreads),
        "on_every_device": sum(1 for _, _, n in spreads if n == len(devices)),
        "unmatched": sum(1 for seen in boundaries.values() if len(seen) < 2),
        "spread_ms": distribution(values),
        # The same for the deadlines each screen aimed at: how well their clocks agreed, apart
        # from how late each presented (on a virtual clock the two are equal).
        "deadline_spread_ms": distribution(deadlines),
        "within_frame": sum(1 for v in values if v < frame_ms),
        "worst": [
            {
                "layout": key[0],
                "zone": key[1],
                "item": key[2],
                "group_due": key[3],
                "spread_ms": round(spread, 3),
                "devices": n,
            }
            for spread, key, n in worst
        ],
    }


def _device_stats(records: Sequence[Record], frame_ms: float) -> dict[str, Any]:
    starts = [r for r in records if r["event"] == "start"]
    late = [float(r["late_ms"]) for r in starts if r.get("late_ms") is not None]
    load = [float(r["load_ms"]) for r in starts if r.get("load_ms") is not None]
    checks = deadline_checks(records, frame_ms)
    return {
        "switches": len(starts),
        "late_ms": distribution(late),
        "load_ms": distribution(load),
        "deadlines": {k: checks[k] for k in ("checked", "on_frame", "missed")},
        "errors": sum(1 for r in records if r["event"] == "error"),
        "state_changes": sum(1 for r in records if r["event"] == "state"),
    }


def summarize(
    records: Sequence[Record],
    *,
    duration_s: float,
    real_s: float,
    speed: str,
    devices: Sequence[str],
    black_frames: Mapping[str, int] | None = None,
    publications: Sequence[Publication] = (),
    measured_latencies: Sequence[float] | None = None,
    repairs: int = 0,
    frame_ms: float = FRAME_MS,
) -> dict[str, Any]:
    """The ``summary.json`` body.

    Update latency is ``measured_latencies`` (real seconds, from the simulator) when given,
    else derived from the timeline's media times.
    """
    black = dict(black_frames or {})
    per_device = {}
    for device in devices:
        mine = [r for r in records if r["device"] == device]
        per_device[device] = _device_stats(mine, frame_ms) | {"black_frames": black.get(device, 0)}
    starts = [r for r in records if r["event"] == "start"]
    latencies = (
        list(measured_latencies)
        if measured_latencies is not None
        else update_latencies(records, publications)
    )
    errors = [r for r in records if r["event"] == "error"]
    return _device_stats(records, frame_ms) | {
        "deadlines": deadline_checks(records, frame_ms),
        "duration_s": duration_s,
        "real_s": round(real_s, 3),
        "speedup": round(duration_s / real_s, 1) if real_s > 0 else None,
        "speed": speed,
        "devices": len(devices),
        "black_frames": sum(black.values()),
        "update_latency_s": distribution(latencies) if publications else None,
        "publications": len(publications),
        "repairs": repairs,
        "states": sorted({str(r.get("state")) for r in records if r["event"] == "state"}),
        "layouts": dict(sorted(Counter(str(r["layout"]) for r in starts).items())),
        "items": dict(sorted(Counter(str(r["item"]) for r in starts).items())),
        "first_errors": [
            {k: r.get(k) for k in ("t", "device", "zone", "item", "error")} for r in errors[:10]
        ],
        "sync": sync_spread(records, frame_ms),
        "per_device": per_device,
    }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def _stall_line(stalls: Mapping[str, Any] | None) -> list[str]:
    if not stalls:
        return []
    return [
        f"  loop stalls     busy max {_fmt(stalls['busy_max_ms'])}  late p99 "
        f"{_fmt(stalls['late_p99_ms'])}  max {_fmt(stalls['late_max_ms'])}  (ms; busy: the "
        "loop's own CPU time without a break, late: a wake-up's delay)"
    ]


def format_table(summary: Mapping[str, Any]) -> str:
    """A readable summary for stdout: totals, then one row per device."""
    late = summary["late_ms"]
    deadlines = summary["deadlines"]
    latency = summary.get("update_latency_s")
    lines = [
        f"simulated {summary['duration_s']:g} s on {summary['devices']} device(s) "
        f"in {summary['real_s']:.1f} s (speed {summary['speed']}, x{summary['speedup'] or '-'})",
        "",
        f"  switches        {summary['switches']}",
        f"  deadlines       {deadlines['on_frame']} of {deadlines['checked']} presented on "
        f"their deadline's frame, {deadlines['missed']} missed",
        f"  late_ms         p50 {_fmt(late['p50'])}  p99 {_fmt(late['p99'])}  "
        f"max {_fmt(late['max'])}  (one 60 Hz frame = 16.67)"
        + ("" if late["count"] else "  (not measured on a virtual clock)"),
        f"  black frames    {summary['black_frames']}"
        + (
            f"  (frozen {summary['frozen_frames']}; {summary['checked_frames']} frames checked, "
            f"{summary['unchecked_frames']} not)"
            if "checked_frames" in summary
            else ""
        ),
        f"  errors          {summary['errors']}",
        *_stall_line(summary.get("loop_stalls")),
        f"  state changes   {summary['state_changes']}  {' '.join(summary['states'])}",
    ]
    if latency is not None:
        lines.append(
            f"  update latency  p50 {_fmt(latency['p50'], ' s')}  p99 {_fmt(latency['p99'], ' s')}"
            f"  max {_fmt(latency['max'], ' s')}  ({latency['count']} of "
            f"{summary['publications'] * summary['devices']} updates seen)"
        )
    if summary["layouts"]:
        shown = ", ".join(f"{k} {v}" for k, v in summary["layouts"].items())
        lines.append(f"  item starts     {shown} (by layout)")
    if (group := summary.get("sync")) is not None:
        spread = group["spread_ms"]
        lines.append(
            f"  sync spread     p50 {_fmt(spread['p50'])}  p99 {_fmt(spread['p99'])}  "
            f"max {_fmt(spread['max'])} ms over {group['boundaries']} boundaries "
            f"({group['on_every_device']} on all {group['devices']} devices, "
            f"{group['within_frame']} within a frame; {group['unmatched']} unmatched starts)"
        )
    lines += airtime_lines(summary)
    lines += ["", f"  {'device':<12} {'switches':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}"]
    for device, stats in summary["per_device"].items():
        lines.append(
            f"  {device:<12} {stats['switches']:>8} {_fmt(stats['late_ms']['p99']):>8} "
            f"{_fmt(stats['late_ms']['max']):>8} {stats['errors']:>6}"
        )
    for error in summary["first_errors"]:
        lines.append(
            f"  error at {error['t']:.3f} s on {error['device']} "
            f"({error['zone']}/{error['item']}): {error['error']}"
        )
    return "\n".join(lines)


def _require(failures: list[str], ok: bool, message: str) -> None:
    if not ok:
        failures.append(message)


def check_expectations(
    expect: Expect, summary: Mapping[str, Any], records: Sequence[Record]
) -> list[str]:
    """Each failed check of a scenario's ``[expect]``, as a sentence; empty when all hold."""
    failures: list[str] = []
    played = {r["item"] for r in records if r["event"] == "start"}
    layouts = {r["layout"] for r in records if r["event"] == "start"}
    p99 = summary["late_ms"]["p99"]
    latency = summary.get("update_latency_s") or {}
    if expect.max_errors is not None:
        _require(
            failures,
            summary["errors"] <= expect.max_errors,
            f"{summary['errors']} error event(s), at most {expect.max_errors} expected",
        )
    if expect.max_black_frames is not None:
        _require(
            failures,
            summary["black_frames"] <= expect.max_black_frames,
            f"{summary['black_frames']} black frame(s), at most {expect.max_black_frames}",
        )
    if expect.max_late_ms_p99 is not None:
        _require(
            failures,
            p99 is not None and p99 <= expect.max_late_ms_p99,
            f"late_ms p99 is {p99}, at most {expect.max_late_ms_p99} expected"
            if p99 is not None
            else "late_ms is not measured on a virtual clock (max_missed_deadlines checks it)",
        )
    if expect.max_missed_deadlines is not None:
        missed = summary["deadlines"]["missed"]
        _require(
            failures,
            missed <= expect.max_missed_deadlines,
            f"{missed} start(s) missed their deadline's frame, at most "
            f"{expect.max_missed_deadlines} expected "
            f"(first: {summary['deadlines']['first_missed'][:3]})",
        )
    if expect.max_update_latency_s is not None:
        wanted = summary["publications"] * summary["devices"]
        worst = latency.get("max")
        _require(
            failures,
            latency.get("count") == wanted
            and worst is not None
            and worst <= expect.max_update_latency_s,
            f"update latency max {worst} s over {latency.get('count', 0)}/{wanted} updates, "
            f"at most {expect.max_update_latency_s} s expected for all",
        )
    if expect.min_switches is not None:
        _require(
            failures,
            summary["switches"] >= expect.min_switches,
            f"{summary['switches']} switches, at least {expect.min_switches} expected",
        )
    if expect.min_repairs is not None:
        _require(
            failures,
            summary["repairs"] >= expect.min_repairs,
            f"{summary['repairs']} re-pairing(s), at least {expect.min_repairs} expected",
        )
    for item in expect.items_played:
        _require(failures, item in played, f"item {item!r} never started")
    for item in expect.items_not_played:
        _require(failures, item not in played, f"item {item!r} started but must not")
    for layout in expect.layouts_played:
        _require(failures, layout in layouts, f"layout {layout!r} never played")
    for state in expect.states_seen:
        _require(failures, state in summary["states"], f"state {state!r} never entered")
    _check_sync(expect, summary.get("sync"), failures)
    _check_devices(expect, summary, records, failures)
    check_airtime(expect, summary, failures)
    return failures


def _check_sync(expect: Expect, group: Mapping[str, Any] | None, failures: list[str]) -> None:
    wanted = (
        expect.max_sync_spread_ms_p99,
        expect.max_sync_spread_ms,
        expect.min_sync_boundaries,
    )
    if all(w is None for w in wanted):
        return
    if group is None:
        failures.append("no sync group played (no start carried a group_due)")
        return
    spread = group["spread_ms"]
    checks = (
        ("p99", expect.max_sync_spread_ms_p99),
        ("max", expect.max_sync_spread_ms),
    )
    for name, limit in checks:
        if limit is not None:
            value = spread[name]
            _require(
                failures,
                value is not None and value <= limit,
                f"sync spread {name} is {value} ms, at most {limit} expected "
                f"(worst: {group['worst'][:2]})",
            )
    if expect.min_sync_boundaries is not None:
        _require(
            failures,
            group["boundaries"] >= expect.min_sync_boundaries,
            f"{group['boundaries']} boundaries seen on several screens, at least "
            f"{expect.min_sync_boundaries} expected",
        )


def _check_devices(
    expect: Expect, summary: Mapping[str, Any], records: Sequence[Record], failures: list[str]
) -> None:
    """The checks made on every device."""
    devices = list(summary["per_device"])
    counted = (
        ("manifest_polls", expect.min_manifest_polls, "manifest poll(s)"),
        ("sse_connects", expect.min_sse_connects, "event stream connection(s)"),
    )
    for key, least, what in counted:
        for device in devices if least is not None else []:
            seen = summary["per_device"][device].get(key, 0)
            _require(failures, seen >= least, f"{device}: {seen} {what}, at least {least} expected")
    for rule in expect.played_after:
        for device in devices:
            late = {
                r["item"]
                for r in records
                if r["event"] == "start" and r["device"] == device and r["t"] >= rule.at
            }
            for item in rule.items:
                _require(
                    failures,
                    item in late,
                    f"item {item!r} did not start after {rule.at:g} s on {device}",
                )
