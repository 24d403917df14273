"""The screen's power: a night in standby drawing nothing, back on with the right item on its
deadline; display_on/off commands; a fake TV behind HDMI-CEC."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core import Settings
from player import DirectoryAssets, Player, VirtualClock
from player._power import Command, PowerController, decide
from protocol import Manifest
from tests.fakes.fake_cec import FakeTv
from tests.player.conftest import BLUE, DATA, RED, Harness, S, image, layout
from zones import CecPower, OffscreenDisplay

RED_RGB = (220, 30, 30)
BLUE_RGB = (30, 60, 220)
EVENING = dt.datetime(2026, 11, 23, 21, 59, tzinfo=dt.UTC)  # a Monday
DAY = {"on": [{"from": "07:00", "to": "22:00"}]}


def content(power: dict[str, Any] | None = DAY, **extra: Any) -> Manifest:
    return Manifest.model_validate(
        {
            "version": extra.pop("version", 1),
            "assets": [
                {"sha256": RED, "size": 1, "mime": "image/png"},
                {"sha256": BLUE, "size": 1, "mime": "image/png"},
            ],
            "playlists": [
                {"id": "p1", "items": [image("a", RED, 60_000), image("b", BLUE, 60_000)]}
            ],
            "layouts": [layout("l1", "p1")],
            "default_layout": "l1",
            "power": power,
            **extra,
        }
    )


async def night(
    tmp_path: Path, power: PowerController | None = None, start: dt.datetime = EVENING
) -> Harness:
    clock = VirtualClock(wall_start_ns=int(start.timestamp()) * S)
    assets = DirectoryAssets(DATA)
    assets.scan()
    display = OffscreenDisplay((64, 36))
    player = Player(
        Settings(), clock=clock, assets=assets, display=display, device="t", power=power
    )
    harness = Harness(clock, player, display)
    await player.start()
    await clock.advance(0)
    return harness


@pytest.fixture
async def evening(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await night(tmp_path)
    try:
        yield harness
    finally:
        await harness.player.stop()


def black(harness: Harness) -> bool:
    return harness.pixel() == (0, 0, 0)


async def test_a_night_in_standby_draws_nothing_and_wakes_with_the_right_item_on_time(
    evening: Harness,
) -> None:
    h = evening
    await h.player.set_manifest(content())
    await h.run(60)  # 22:00: the window closes
    assert black(h)
    off = h.of("power")
    assert [(e.state, e.reason, e.t, e.due) for e in off] == [("off", "schedule", 60.0, 60.0)]
    assert h.player.power.status().wanted == "off"
    assert [e.t for e in h.of("start")] == [0.0], "nothing starts at the instant it goes off"
    frames = h.display.frames
    await h.run(9 * 3600 - 30)  # 06:59:30
    assert h.display.frames == frames, "not one frame drawn during the night"
    loads = [e.t for e in h.of("state") if e.state == "loading"]
    assert loads[-1] < 60, "nothing prepared yet"
    await h.run(30)  # 07:00
    assert h.pixel() == BLUE_RGB
    on = h.of("power")[-1]
    seven = 9 * 3600 + 60.0  # 07:00, from 21:59
    assert (on.state, on.t, on.due) == ("on", seven, seven)
    loading = [e.t for e in h.of("state") if e.state == "loading"][-1]
    assert seven - 30 < loading < seven, "prepared ahead of the on-time"
    # From 21:59 the playlist turns every 2 minutes: at 07:00 (541 min on) 'b' is due.
    first = h.of("start")[-1]
    assert (first.item, first.t, first.due) == ("b", seven, seven)
    await h.run(60)
    assert h.pixel() == RED_RGB
    assert h.of("start")[-1].t == seven + 60


async def test_display_off_holds_until_the_schedule_next_changes(evening: Harness) -> None:
    h = evening
    await h.player.set_manifest(content(power={"on": [{"from": "06:00", "to": "23:00"}]}))
    await h.run(1)
    await h.player.display_power(False)  # 21:59:01, an hour before the scheduled off
    await h.run(0)
    assert black(h)
    assert h.player.power.status().reason == "command"
    await h.run(8 * 3600)  # 05:59:01: still off; the command gave way to the schedule at 23:00
    assert black(h)
    assert h.player.power.command is None
    await h.run(60)
    assert not black(h), "on again at 06:00, by the schedule"
    assert [e.state for e in h.of("power")] == ["off", "on"]


async def test_display_on_for_some_seconds_then_back_to_standby(evening: Harness) -> None:
    h = evening
    await h.player.set_manifest(content())
    await h.run(3600)
    assert black(h)
    await h.player.display_power(True, seconds=120)
    await h.run(0)
    assert not black(h)
    await h.run(120)
    assert black(h)
    assert [(e.state, e.reason) for e in h.of("power")] == [
        ("off", "schedule"),
        ("on", "command"),
        ("off", "schedule"),
    ]


async def test_an_interrupt_wakes_a_screen_in_standby(evening: Harness) -> None:
    h = evening
    alert = {
        "id": "al",
        "layout": "l1",
        "starts_at": "2026-11-23T23:00:00Z",
        "ends_at": "2026-11-23T23:05:00Z",
    }
    await h.player.set_manifest(content(interrupts=[alert]))
    await h.run(3600)  # 22:59
    assert black(h)
    await h.run(60)
    assert not black(h)
    assert h.player.interrupt() == "al"
    await h.run(300)
    assert black(h), "standby again once it ended"


async def test_a_command_survives_a_restart(tmp_path: Path) -> None:
    first = PowerController(CecPower("/nonexistent"), tmp_path)
    at = dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC)
    first.set_command(content(), False, at, None)
    again = PowerController(CecPower("/nonexistent"), tmp_path)
    assert again.command == Command(False, dt.datetime(2026, 11, 23, 22, tzinfo=dt.UTC))
    assert decide(content(), again.command, at + dt.timedelta(hours=1)).on is False
    assert decide(content(), again.command, at + dt.timedelta(hours=11)).on is False
    assert decide(content(), again.command, at + dt.timedelta(hours=19)).on is True


async def test_standby_through_hdmi_cec_and_a_tv_that_ignores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tv = FakeTv(tmp_path / "bin")
    device = tmp_path / "cec0"
    device.touch()
    power = PowerController(CecPower(str(device), command=tv.cec_ctl), tmp_path)
    h = await night(tmp_path, power)
    try:
        await h.player.set_manifest(content())
        await h.run(30)
        assert power.status().display == "on"
        await h.run(30)
        assert tv.power == "standby"
        status = power.status()
        assert (status.wanted, status.display, status.backend, status.error) == (
            "off",
            "standby",
            "cec",
            None,
        )
        await h.run(9 * 3600 - 15)  # 06:59:45: woken ahead of 07:00
        assert tv.power == "on"
        standby = [c for c in tv.calls() if "--standby" in c]
        assert len(standby) == 1, "one command per change, not one per frame"
        tv.set(answers=False)
        await h.run(15 * 3600 + 15)  # 22:00 again: this time the TV does not listen
        status = power.status()
        assert (status.wanted, status.display) == ("off", "unknown")
        assert status.error is not None and "did not confirm standby" in status.error
    finally:
        await h.player.stop()
