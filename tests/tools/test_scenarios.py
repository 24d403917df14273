"""The bundled scenarios, one per seed failure that touches the player, run as tests.

Each runs the real server, a real player, cache and sync agent on the simulator's virtual
clock (real speed only where the network is involved), and must meet its own ``[expect]``;
the tests then check what the expectations cannot say in TOML.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pygame
import pytest

from player import read_timeline
from tools.sim._content import DEMO_DIR, load_content
from tools.sim._frames import FramePolicy
from tools.sim._run import SimOptions, SimResult, run_simulation
from tools.sim._scenario import load_scenario

pytestmark = pytest.mark.slow

SCENARIOS = DEMO_DIR / "scenarios"
Record = dict[str, Any]


async def run_scenario(
    name: str, out: Path, *, fps: float | None = None
) -> tuple[SimResult, list[Record]]:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    run = scenario.run
    assert run.duration is not None and run.start is not None
    options = SimOptions(
        duration_s=run.duration,
        out=out,
        speed=None if run.speed == "max" else float(run.speed or 1),
        devices=run.devices or 1,
        content=run.content or "demo",
        content_base=scenario.base,
        scenario=scenario,
        start=run.start,
        frames=FramePolicy.parse(run.frames or "switch"),
        device_overrides=dict(scenario.settings),
        server_overrides=dict(scenario.server),
        fps=fps,
    )
    result = await run_simulation(options)
    assert result.failures == [], result.failures
    assert json.loads((out / "summary.json").read_text())["scenario"]["passed"] is True
    return result, read_timeline(out / "timeline.jsonl")


def starts(records: list[Record], **match: Any) -> list[Record]:
    return [
        r for r in records if r["event"] == "start" and all(r.get(k) == v for k, v in match.items())
    ]


def test_every_bundled_scenario_is_tested() -> None:
    bundled = {p.stem for p in SCENARIOS.glob("*.toml")}
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert bundled <= tested, sorted(bundled - tested)


async def test_mid_playlist_update(tmp_path: Path) -> None:
    result, records = await run_scenario("mid_playlist_update", tmp_path)
    breaking = starts(records, item="breaking")[0]
    # Switched mid-item: the slide that was half-way through did not run to its deadline.
    assert 12 <= breaking["t"] < 16
    assert result.summary["update_latency_s"]["count"] == 1


async def test_missed_event_while_offline(tmp_path: Path) -> None:
    result, records = await run_scenario("missed_event_while_offline", tmp_path)
    assert starts(records, item="ticker-v2")[0]["t"] >= 16
    assert result.summary["update_latency_s"]["max"] < 10


async def test_server_down_keeps_playing(tmp_path: Path) -> None:
    _, records = await run_scenario("server_down_keeps_playing", tmp_path)
    during = [r for r in starts(records, zone="slides") if 8 <= r["t"] <= 20]
    assert during, "nothing started while the server was down"
    playing_since = next(r["t"] for r in records if r.get("state") == "playing")
    later_states = [r["state"] for r in records if r["event"] == "state" and r["t"] > playing_since]
    assert "idle" not in later_states[:-2]  # only the final stop goes back to idle


async def test_revoked_device_pairs_again(tmp_path: Path) -> None:
    result, records = await run_scenario("revoked_device_pairs_again", tmp_path)
    assert result.summary["repairs"] == 1
    root = tmp_path / "devices" / "sim-1"
    credentials = json.loads((root / "credentials.json").read_text())
    assert credentials["device_id"]
    # the cache survived the revocation: the objects are still on disk
    assert any((root / "cache" / "objects").rglob("*"))
    idle_after = [r for r in records if r.get("state") == "idle" and r["t"] >= 10]
    assert idle_after, "the pairing screen (idle) never came back"


async def test_clock_step_reschedules(tmp_path: Path) -> None:
    _, records = await run_scenario("clock_step_reschedules", tmp_path)
    # (during the first second, while the day's assets download, the default may show)
    evening = next(r for r in starts(records, layout="evening") if r["t"] >= 1)
    assert 20 <= evening["t"] < 21, "the layout did not follow the wall clock at once"
    day_again = next(r for r in starts(records, layout="day") if r["t"] >= 40)
    assert day_again["t"] < 41
    # never double-play: one start per zone and deadline
    keys = [(r["zone"], r["due"]) for r in starts(records)]
    assert len(keys) == len(set(keys))


def _zone_colour(frame: Path) -> tuple[int, ...]:
    surface = pygame.image.load(str(frame))
    return tuple(pygame.transform.average_color(surface, pygame.Rect(0, 0, 1920, 960)))[:3]


async def test_same_name_new_bytes(tmp_path: Path) -> None:
    _, records = await run_scenario("same_name_new_bytes", tmp_path)
    frames = sorted((tmp_path / "frames" / "sim-1").glob("*_main_welcome.png"))
    before = [f for f in frames if float(f.name.split("_")[0]) < 10]
    after = [f for f in frames if float(f.name.split("_")[0]) >= 10]
    assert before and after
    old, new = _zone_colour(before[0]), _zone_colour(after[0])
    # the replacement is red, the original blue-green
    assert new[0] > new[2] and old[2] > old[0], (old, new)
    assert starts(records, item="welcome")[-1]["t"] >= 10


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_corrupt_asset_after_power_cut(tmp_path: Path) -> None:
    _, records = await run_scenario("corrupt_asset_after_power_cut", tmp_path)
    content = load_content("demo")
    sha = next(
        i.asset  # type: ignore[union-attr]
        for p in content.manifest.playlists
        for i in p.items
        if i.id == "tonight"
    )
    stored = tmp_path / "devices" / "sim-1" / "cache" / "objects" / sha[:2] / sha
    assert _sha(stored) == sha, "the corrupt copy was not replaced by a verified one"
    assert starts(records, item="tonight")[-1]["t"] >= 20


async def test_power_cut_while_offline(tmp_path: Path) -> None:
    _, records = await run_scenario("power_cut_while_offline", tmp_path)
    offline_boot = [r for r in starts(records) if 10 <= r["t"] < 20]
    assert offline_boot, "the device did not play from its cache while the server was down"


async def test_sse_down_falls_back_to_polling(tmp_path: Path) -> None:
    result, records = await run_scenario("sse_down_falls_back_to_polling", tmp_path)
    # Shown before the streams came back at 20 s, with heartbeats out of the way: polled.
    assert 12 <= starts(records, item="ticker-polled")[0]["t"] < 20
    device = result.summary["per_device"]["sim-1"]
    assert device["manifest_polls"] >= 1
    assert device["sse_connects"] >= 2, "back on the event stream after the outage"


async def test_sync_group(tmp_path: Path) -> None:
    # Animation sampled at 0.1 frames/s, as `signage sim --speed max` does: four screens'
    # crossfades at 60 frames/s would cost minutes and say nothing about when switches are.
    result, records = await run_scenario("sync_group", tmp_path, fps=0.1)
    group = result.summary["sync"]
    assert group["devices"] == 4
    # Boundaries of the late screen and of the restarted one are among those matched.
    late = {r["group_due"] for r in starts(records, device="sim-4") if r.get("group_due")}
    restarted = [r for r in starts(records, device="sim-3") if r["t"] > 1820]
    assert late and restarted
    shared = {r["group_due"] for r in starts(records, device="sim-1") if r.get("group_due")}
    assert len(late & shared) > 100
    # The 07:00 layout change (20 min in) was presented by all four within one frame.
    change = [r for r in starts(records, layout="day", zone="main") if 1199 < r["t"] < 1201]
    assert len(change) == 4 and len({r["group_due"] for r in change}) == 1
    assert (max(r["t"] for r in change) - min(r["t"] for r in change)) * 1000 < 16.7
    # Each screen's clock was seconds off: its timeline's wall times are group time.
    seven = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)
    assert all(
        abs(dt.datetime.fromisoformat(r["wall"]) - seven).total_seconds() < 0.02 for r in change
    )


async def test_day_with_night_standby(tmp_path: Path) -> None:
    result, records = await run_scenario("day_with_night_standby", tmp_path)
    power = [(r["state"], r["t"], r["reason"]) for r in records if r["event"] == "power"]
    # 22:00 off by the schedule; 23:00 on by the technician's command for 15 minutes (it
    # travels at real speed: a few milliseconds of media time); 07:00 on.
    assert [(state, reason) for state, _, reason in power] == [
        ("off", "schedule"),
        ("on", "command"),
        ("off", "schedule"),
        ("on", "schedule"),
    ]
    assert (power[0][1], power[3][1]) == (54000.0, 86400.0)
    assert 57600 <= power[1][1] < 57601 and power[2][1] - power[1][1] == pytest.approx(900)
    night = [r for r in starts(records) if 58501 <= r["t"] < 86400]
    assert night == [], "nothing starts while the screen is off"
    morning = starts(records)[-1]
    first = next(r for r in starts(records) if r["t"] >= 86400)
    assert first["t"] == first["due"] == 86400.0, "back on with an item on its deadline"
    assert morning["t"] <= 87000
    lunch = [r["t"] for r in starts(records, item="lunch")]
    assert lunch and min(lunch) >= 4 * 3600 and max(lunch) < 7 * 3600, "only 11:00 to 14:00"
    takeovers = result.summary["interrupts"]["takeovers"]
    # Sent at 15:00: it takes over once it arrived (real speed meanwhile: milliseconds of
    # media time) until the power cut at 15:04; the device boots 20 s later with the interrupt
    # from its stored manifest, and it ends on its instant, 15:10, with the server away.
    assert [(t["interrupt"], t["ended_t"]) for t in takeovers] == [
        (takeovers[0]["interrupt"], 29040.0),
        (takeovers[0]["interrupt"], 29400.0),
    ]
    assert 28800 <= takeovers[0]["t"] < 28802
    assert 29060 <= takeovers[1]["t"] < 29062
    restarted = [r for r in records if r["event"] == "start" and 29040 <= r["t"] < 29400]
    assert restarted and {r["layout"] for r in restarted} == {"emergency"}
    # The shop playlist resumed where it would have been: the first item after the interrupt
    # keeps a deadline from the playlist's own reckoning, not the interrupt's end.
    resumed = next(r for r in starts(records, layout="shop") if r["t"] >= 29400)
    assert resumed["t"] == 29400.0
    shares = result.summary["share_of_voice"]
    assert shares["within_one_item"]
    assert {h["plays"] for h in shares["items"]["advert"]["hours"]} == {24}
    assert {h["plays"] for h in shares["items"]["promo"]["hours"]} == {6}
    sale = shares["layouts"]["evening-sale"]
    assert sale["full_hours"] == 3 and {h["plays"] for h in sale["hours"]} == {2}
    campaign = [r["t"] for r in starts(records, layout="campaign")]
    assert campaign and min(campaign) >= 10 * 3600 and max(campaign) < 13 * 3600
