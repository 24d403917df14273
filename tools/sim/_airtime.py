"""What operators scheduled beyond layouts, as a run delivered it: the screen's power,
interrupts and shares of airtime. Computed from the timeline (and, for the shares' targets,
the manifest), so any run can be judged again.

- ``power``: per device, the standby periods (``power`` events), their total, and the frames
  presented while the screen was off (the one black frame that blanks it excepted);
- ``interrupts``: each interrupt's takeover per device (``interrupt`` events): when, how late
  against the instant it was due (``late_ms``, measured on a real clock), when it ended, and
  the real seconds from the admin's call to its first frame;
- ``share_of_voice``: for each item with a ``share``, its plays in every full local hour the
  zone played undisturbed (no standby, no interrupt, no other layout), against the quota
  ``player.ZonePlan`` computes for that hour; for each schedule entry with a ``share``, its
  layout's takeovers in every full hour without standby or interrupt, against its slots in
  that hour; within one item when every hour is within one play of it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from player import NS_PER_S, ZonePlan, hour_start_ns, is_active, share_slots
from protocol import Manifest
from tools.sim._scenario import Expect

Record = Mapping[str, Any]
HOUR_S = 3600.0


def _wall_ns(record: Record) -> int:
    when = dt.datetime.fromisoformat(str(record["wall"]))
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def _periods(
    records: Sequence[Record], kind: str, begin: str, end: str, key: str = ""
) -> list[tuple[float, float | None, Record]]:
    """[start t, end t or None, the starting record] of ``kind`` events (per ``key`` value)."""
    open_: dict[Any, tuple[float, Record]] = {}
    spans: list[tuple[float, float | None, Record]] = []
    for r in records:
        if r["event"] != kind:
            continue
        which = r.get(key) if key else None
        if r.get("state") == begin and which not in open_:
            open_[which] = (float(r["t"]), r)
        elif r.get("state") == end and which in open_:
            started, first = open_.pop(which)
            spans.append((started, float(r["t"]), first))
    spans += [(started, None, first) for started, first in open_.values()]
    return sorted(spans, key=lambda s: s[0])


def power_summary(
    records: Sequence[Record], devices: Sequence[str], frames_off: Mapping[str, int], end_t: float
) -> dict[str, Any]:
    per_device = {}
    for device in devices:
        mine = [r for r in records if r["device"] == device]
        spans = _periods(mine, "power", "off", "on")
        per_device[device] = {
            "standby": [[round(a, 3), None if b is None else round(b, 3)] for a, b, _ in spans],
            "standby_s": round(sum((end_t if b is None else b) - a for a, b, _ in spans), 3),
            "frames_in_standby": frames_off.get(device, 0),
        }
    return {
        "events": sum(1 for r in records if r["event"] == "power"),
        "per_device": per_device,
    }


def interrupt_summary(
    records: Sequence[Record], latencies: Sequence[float] | None = None
) -> dict[str, Any]:
    takeovers = []
    for device in sorted({str(r["device"]) for r in records}):
        mine = [r for r in records if r["device"] == device]
        for began, ended, first in _periods(mine, "interrupt", "start", "end", "interrupt"):
            takeovers.append(
                {
                    "device": device,
                    "interrupt": first.get("interrupt"),
                    "layout": first.get("layout"),
                    "t": round(began, 3),
                    "due": first.get("due"),
                    "late_ms": first.get("late_ms"),
                    "ended_t": None if ended is None else round(ended, 3),
                }
            )
    return {
        "count": len(takeovers),
        "latency_s": None if not latencies else _distribution(latencies),
        "takeovers": takeovers[:100],
    }


def _distribution(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(ordered[len(ordered) // 2], 3),
        "max": round(ordered[-1], 3),
    }


def _last_state(mine: Sequence[Record], kind: str, t: float) -> str | None:
    states = [r.get("state") for r in mine if r["event"] == kind and r["t"] <= t]
    return str(states[-1]) if states else None


def _undisturbed(mine: Sequence[Record], layout: str, begin_t: float, end_t: float) -> bool:
    """The device showed ``layout`` throughout [begin, end): it was the last layout to start
    before ``begin``, no other one started until ``end``, no standby, no interrupt."""
    before = [r for r in mine if r["event"] == "start" and r["t"] <= begin_t]
    if not before or before[-1]["layout"] != layout:
        return False
    if _last_state(mine, "power", begin_t) == "off":
        return False
    if _last_state(mine, "interrupt", begin_t) == "start":
        return False
    for r in mine:
        if not begin_t <= r["t"] < end_t:
            continue
        if r["event"] in ("power", "interrupt"):
            return False
        if r["event"] == "start" and r["layout"] != layout:
            return False
    return True


def share_of_voice(records: Sequence[Record], manifest: Manifest | None) -> dict[str, Any] | None:
    """Plays per full local hour of each item with a share, against its quota."""
    if manifest is None:
        return None
    shared = [
        (playlist, index, item)
        for playlist in manifest.playlists
        for index, item in enumerate(playlist.items)
        if item.share is not None
    ]
    layouts_of = defaultdict(list)
    for layout in manifest.layouts:
        for zone in layout.zones:
            layouts_of[zone.playlist].append((layout.id, zone.id))
    result: dict[str, Any] = {}
    all_within = True
    devices = sorted({str(r["device"]) for r in records})
    for playlist, index, item in shared:
        plan = ZonePlan(playlist, manifest.timezone)
        hours: list[dict[str, Any]] = []
        for device in devices:
            mine = [r for r in records if r["device"] == device]
            starts = [r for r in mine if r["event"] == "start"]
            if not starts:
                continue
            t_of = {_wall_ns(r): float(r["t"]) for r in starts}
            origin_ns, origin_t = next(iter(t_of.items()))
            first_ns = plan.hour_start(_wall_ns(mine[0])) + 3600 * NS_PER_S
            last_ns = _wall_ns(mine[-1])
            for layout_id, zone_id in layouts_of[playlist.id]:
                hour_ns = first_ns
                while hour_ns + 3600 * NS_PER_S <= last_ns:
                    begin_t = origin_t + (hour_ns - origin_ns) / NS_PER_S
                    if _undisturbed(mine, layout_id, begin_t, begin_t + HOUR_S):
                        plays = sum(
                            1
                            for r in starts
                            if r["zone"] == zone_id
                            and r["item"] == item.id
                            and begin_t <= float(r["t"]) < begin_t + HOUR_S
                        )
                        target = len(plan.slots(index, hour_ns))
                        hours.append(
                            {
                                "device": device,
                                "hour": dt.datetime.fromtimestamp(
                                    hour_ns / NS_PER_S, dt.UTC
                                ).isoformat(),
                                "plays": plays,
                                "target": target,
                            }
                        )
                    hour_ns = plan.hour_start(hour_ns + 3600 * NS_PER_S + 1)
        within = all(abs(h["plays"] - h["target"]) <= 1 for h in hours)
        all_within = all_within and within
        share = item.share
        assert share is not None and item.duration_ms is not None
        result[item.id] = {
            "asks": share.model_dump(exclude_none=True),
            "plays_per_hour": item.plays_per_hour(),
            "duration_ms": item.duration_ms,
            "full_hours": len(hours),
            "hours": hours[:48],
            "within_one_item": within,
        }
    layouts = _layout_shares(records, manifest)
    all_within = all_within and all(v["within_one_item"] for v in layouts.values())
    if not result and not layouts:
        return None
    return {"items": result, "layouts": layouts, "within_one_item": all_within}


def _layout_shares(records: Sequence[Record], manifest: Manifest) -> dict[str, Any]:
    """Takeovers per full local hour of each schedule entry with a share, against its slots
    in that hour (those starting inside its window)."""
    result: dict[str, Any] = {}
    tz = ZoneInfo(manifest.timezone)
    devices = sorted({str(r["device"]) for r in records})
    for entry in manifest.schedule:
        if entry.share is None:
            continue
        hours: list[dict[str, Any]] = []
        for device in devices:
            mine = [r for r in records if r["device"] == device]
            starts = [r for r in mine if r["event"] == "start"]
            if not starts:
                continue
            origin_ns, origin_t = _wall_ns(starts[0]), float(starts[0]["t"])
            hour_ns = hour_start_ns(_wall_ns(mine[0]), tz) + 3600 * NS_PER_S
            last_ns = _wall_ns(mine[-1])
            while hour_ns + 3600 * NS_PER_S <= last_ns:
                begin_t = origin_t + (hour_ns - origin_ns) / NS_PER_S
                if _calm(mine, begin_t, begin_t + HOUR_S):
                    takeovers, previous = 0, None
                    for r in starts:
                        if begin_t <= float(r["t"]) < begin_t + HOUR_S:
                            takeovers += r["layout"] == entry.layout and previous != entry.layout
                        previous = r["layout"]
                    target = sum(
                        1
                        for start, _ in share_slots(entry, hour_ns)
                        if is_active(entry, dt.datetime.fromtimestamp(start / NS_PER_S, dt.UTC), tz)
                    )
                    when = dt.datetime.fromtimestamp(hour_ns / NS_PER_S, dt.UTC).isoformat()
                    if target or takeovers:  # hours outside its window say nothing
                        hours.append(
                            {"device": device, "hour": when, "plays": takeovers, "target": target}
                        )
                hour_ns = hour_start_ns(hour_ns + 3600 * NS_PER_S + 1, tz)
        result[entry.id] = {
            "layout": entry.layout,
            "asks": entry.share.model_dump(exclude_none=True),
            "plays_per_hour": entry.share.slots_per_hour(),
            "full_hours": len(hours),
            "hours": hours[:48],
            "within_one_item": all(abs(h["plays"] - h["target"]) <= 1 for h in hours),
        }
    return result


def _calm(mine: Sequence[Record], begin_t: float, end_t: float) -> bool:
    """No standby and no interrupt during [begin, end)."""
    if _last_state(mine, "power", begin_t) == "off":
        return False
    if _last_state(mine, "interrupt", begin_t) == "start":
        return False
    return not any(r["event"] in ("power", "interrupt") and begin_t <= r["t"] < end_t for r in mine)


def airtime_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary table's lines on power, interrupts and shares (none when nothing ran)."""
    lines = []
    power = summary.get("power") or {}
    if power.get("events"):
        for device, stats in power["per_device"].items():
            lines.append(
                f"  standby         {device}: {len(stats['standby'])} period(s), "
                f"{stats['standby_s']:g} s, {stats['frames_in_standby']} frame(s) drawn meanwhile"
            )
    interrupts = summary.get("interrupts") or {}
    if interrupts.get("count"):
        latency = interrupts.get("latency_s") or {}
        lates = [t["late_ms"] for t in interrupts["takeovers"] if t["late_ms"] is not None]
        lines.append(
            f"  interrupts      {interrupts['count']} takeover(s)"
            + (f", admin to first frame max {latency['max']} s" if latency else "")
            + (f", late_ms max {max(lates):.2f}" if lates else "")
        )
    shares = summary.get("share_of_voice")
    if shares:
        for item, stats in [*shares["items"].items(), *shares.get("layouts", {}).items()]:
            plays = [h["plays"] for h in stats["hours"]]
            lines.append(
                f"  share           {item}: {stats['plays_per_hour']}/h asked, "
                f"{min(plays, default='-')}..{max(plays, default='-')} played in "
                f"{stats['full_hours']} full hour(s), "
                + ("within one item" if stats["within_one_item"] else "NOT within one item")
            )
    return lines


def check_airtime(expect: Expect, summary: Mapping[str, Any], failures: list[str]) -> None:
    """The scenario checks on power, interrupts and shares."""
    power = summary.get("power") or {"per_device": {}}
    if expect.min_standby_s is not None:
        for device, stats in power["per_device"].items():
            if stats["standby_s"] < expect.min_standby_s:
                failures.append(
                    f"{device}: {stats['standby_s']} s in standby, at least "
                    f"{expect.min_standby_s} s expected"
                )
    if expect.max_frames_in_standby is not None:
        for device, stats in power["per_device"].items():
            if stats["frames_in_standby"] > expect.max_frames_in_standby:
                failures.append(
                    f"{device}: {stats['frames_in_standby']} frame(s) drawn in standby, at "
                    f"most {expect.max_frames_in_standby}"
                )
    interrupts = summary.get("interrupts") or {"count": 0, "takeovers": []}
    if expect.min_interrupts is not None:
        for device in summary["per_device"]:
            seen = sum(1 for t in interrupts["takeovers"] if t["device"] == device)
            if seen < expect.min_interrupts:
                failures.append(
                    f"{device}: {seen} interrupt(s) took over, at least "
                    f"{expect.min_interrupts} expected"
                )
    if expect.max_interrupt_latency_s is not None:
        latency = interrupts.get("latency_s") or {}
        worst = latency.get("max")
        if worst is None or worst > expect.max_interrupt_latency_s:
            failures.append(
                f"interrupt latency max {worst} s, at most {expect.max_interrupt_latency_s} s "
                "expected"
            )
    if expect.shares_within_one_item:
        shares = summary.get("share_of_voice")
        if shares is None:
            failures.append("no item with a share of airtime was played")
        elif not shares["within_one_item"]:
            everything = {**shares["items"], **shares.get("layouts", {})}
            off = [
                f"{item} {h['plays']}/{h['target']} at {h['hour']} on {h['device']}"
                for item, stats in everything.items()
                for h in stats["hours"]
                if abs(h["plays"] - h["target"]) > 1
            ]
            failures.append("shares not within one item of their target: " + "; ".join(off[:5]))
        elif not any(
            stats["full_hours"]
            for stats in [*shares["items"].values(), *shares.get("layouts", {}).values()]
        ):
            failures.append("no full hour of a share item's layout to judge")
