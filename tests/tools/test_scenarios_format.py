"""The scenario format: parsing, defaults, and clear errors for bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core import ConfigError
from tools.sim._scenario import (
    BreakSse,
    CorruptAsset,
    Publish,
    Revoke,
    StepClock,
    StopServer,
    check_events_fit,
    load_scenario,
    parse_scenario,
)

GOOD = """
description = "everything at once"

[run]
duration = 120
speed = "max"
devices = 2
start = 2026-11-23T06:59:00+01:00

[[events]]
at = 50
action = "stop_server"
seconds = 20

[[events]]
at = 10
action = "publish"
playlists = [{ id = "p", items = [{ id = "t", type = "text", text = "new" }] }]
expect_items = ["t"]

[[events]]
at = 60
action = "corrupt_asset"
item = "welcome"
device = "sim-1"

[[events]]
at = 70
action = "revoke"

[[events]]
at = 80
action = "step_clock"
seconds = -3600

[[events]]
at = 90
action = "break_sse"
seconds = 15

[server]
heartbeat_interval_s = 600

[expect]
max_errors = 0
items_played = ["welcome"]
states_seen = ["PLAYING"]
"""


def test_a_full_scenario_parses_into_typed_events(tmp_path: Path) -> None:
    scenario = parse_scenario(GOOD, base=tmp_path)
    assert scenario.run.duration == 120
    assert scenario.run.speed == "max"
    assert scenario.run.start == dt.datetime(2026, 11, 23, 5, 59, tzinfo=dt.UTC)
    events = scenario.sorted_events()
    assert [type(e) for e in events] == [
        Publish,
        StopServer,
        CorruptAsset,
        Revoke,
        StepClock,
        BreakSse,
    ]
    assert [e.at for e in events] == [10, 50, 60, 70, 80, 90]
    broken = events[5]
    assert isinstance(broken, BreakSse) and broken.seconds == 15
    assert scenario.server == {"heartbeat_interval_s": 600}
    corrupt = events[2]
    assert isinstance(corrupt, CorruptAsset) and corrupt.device == "sim-1"
    revoke = events[3]
    assert isinstance(revoke, Revoke) and revoke.device == "*" and revoke.repair
    assert scenario.expect.items_played == ["welcome"]
    assert scenario.base == tmp_path


def test_problems_are_all_listed_with_paths_and_hints() -> None:
    text = """
    descripton = "typo"
    [run]
    sped = 2
    [[events]]
    at = 3
    action = "stop_server"
    secnds = 4
    [[events]]
    at = 4
    action = "explode"
    [[events]]
    at = 5
    [[events]]
    at = -1
    action = "step_clock"
    seconds = 1
    [[events]]
    at = 6
    action = "step_clock"
    seconds = 0
    [expect]
    max_errors = -1
    """
    with pytest.raises(ConfigError) as caught:
        parse_scenario(text, source="bad.toml")
    problems = caught.value.problems
    assert "descripton: unknown key; did you mean 'description'?" in problems
    assert "run.sped: unknown key; did you mean 'speed'?" in problems
    assert "events[0].seconds (stop_server): Field required" in problems
    assert "events[0].secnds (stop_server): unknown key; did you mean 'seconds'?" in problems
    assert any(p.startswith("events[1]: unknown action; use one of publish") for p in problems)
    assert any(p.startswith("events[2]: every event needs an 'action'") for p in problems)
    assert any(p.startswith("events[3].at (step_clock)") for p in problems)
    assert any("non-zero 'seconds'" in p for p in problems)
    assert any(p.startswith("expect.max_errors") for p in problems)
    assert "bad.toml" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\nspeed = 0", "speed must be positive"),
        ("[run]\nstart = 2026-11-23T09:00:00", "start needs a UTC offset"),
        ('[[events]]\nat = 1\naction = "publish"', "publish needs 'content'"),
        (
            '[[events]]\nat = 1\naction = "publish"\ncontent = "demo"\ndefault_layout = "day"',
            "either 'content' or individual changes",
        ),
        ("[run]\nduration = 10\n[[events]]\nat = 10\naction = 'revoke'", "after the run's 10 s"),
        ("events = [", "not valid TOML"),
        ("base = '/'", "base: unknown key"),
        ('[[events]]\nat = 1\naction = "break_sse"', r"events\[0\]\.seconds \(break_sse\)"),
        ("[server]\nheartbeat_intervl_s = 9", "server.heartbeat_intervl_s: unknown key; did you"),
        ("[sync]\njitter = 3", "sync.jitter: unknown key; did you mean 'jitter_ms'"),
        ("[sync]\nepoch = 2026-11-23T09:00:00", "epoch needs a UTC offset"),
        ("[[devices]]\ndrift_ppm = 900", r"devices\.0\.drift_ppm: Input should be less"),
        ("[[devices]]\ndrift = 9", "devices.0.drift: unknown key; did you mean 'drift_ppm'"),
        ("[run]\ndevices = 1\n[[devices]]\n[[devices]]", "2 entries for 1 device"),
        ("[run]\nduration = 10\n[[devices]]\njoin_at = 10", r"devices\[0\]\.join_at 10 s falls"),
    ],
)
def test_bad_values_are_explained(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scenario(text)


def test_events_must_fit_a_duration_given_on_the_command_line() -> None:
    scenario = parse_scenario("[[events]]\nat = 30\naction = 'revoke'")
    check_events_fit(scenario, 31)
    with pytest.raises(ConfigError, match="event at 30 s"):
        check_events_fit(scenario, 30)


def test_load_scenario_resolves_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_scenario(path).base == tmp_path
    with pytest.raises(ConfigError, match="file not found"):
        load_scenario(tmp_path / "missing.toml")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_scenario(path)
