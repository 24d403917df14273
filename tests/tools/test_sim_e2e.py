"""End to end: ``signage sim`` on the virtual clock with the demo content, asserted on outputs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from core import ConfigError
from player import read_timeline
from tools import main
from tools.sim._content import DEMO_DIR
from tools.sim._frames import FramePolicy
from tools.sim._run import SimOptions, run_simulation

pytestmark = pytest.mark.slow

PARIS = dt.timezone(dt.timedelta(hours=1))  # Europe/Paris in November
TIMELINE_KEYS = {"t", "wall", "device", "layout", "zone", "item", "event", "due", "late_ms"}
DAY_ITEMS = {"welcome", "on-time", "offline", "pair", "ticker", "clock"}
EVENING_ITEMS = {"evening", "tonight", "evening-note", "evening-clock"}


def demo_without_video(folder: Path) -> Path:
    """The demo content minus its clip: under a virtual clock the video zone ends a clip on
    real time, so how long it lasts in media time varies; every other item is deterministic.
    """
    folder.mkdir()
    lines = (DEMO_DIR / "content.toml").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if 'type = "video"' not in line]
    assert len(kept) == len(lines) - 1
    (folder / "content.toml").write_text("\n".join(kept) + "\n", encoding="utf-8")
    for image in DEMO_DIR.glob("*.jpg"):
        shutil.copy(image, folder / image.name)
    return folder


@pytest.fixture(scope="module")
def day_to_evening(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two devices from 18:58:00 to 19:00:25 Paris time, as fast as the clock allows.

    Animation is sampled at 1 Hz, as ``signage sim --speed max`` does by default.
    """
    import asyncio

    out = tmp_path_factory.mktemp("sim")
    content = demo_without_video(tmp_path_factory.mktemp("content") / "demo")
    options = SimOptions(
        content=content,
        duration_s=145,
        out=out,
        speed=None,
        devices=2,
        start=dt.datetime(2026, 11, 23, 18, 58, tzinfo=PARIS),
        frames=FramePolicy.parse("first"),
        device_overrides={"player": {"frame_rate_hz": 1}},
    )
    result = asyncio.run(run_simulation(options))
    return out, result.summary


def test_dayparts_switch_at_the_scheduled_wall_time(
    day_to_evening: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = day_to_evening
    records = read_timeline(out / "timeline.jsonl")
    for device in ("sim-1", "sim-2"):
        starts = [r for r in records if r["device"] == device and r["event"] == "start"]
        first_evening = next(r for r in starts if r["layout"] == "evening" and r["t"] > 1)
        assert dt.datetime.fromisoformat(first_evening["wall"]) == dt.datetime(
            2026, 11, 23, 19, 0, tzinfo=PARIS
        )
        assert first_evening["due"] == first_evening["t"] and first_evening["late_ms"] is None
        before = {r["item"] for r in starts if r["t"] < first_evening["t"]}
        after = {r["item"] for r in starts if r["t"] >= first_evening["t"]}
        assert before >= DAY_ITEMS, DAY_ITEMS - before
        assert after >= EVENING_ITEMS, EVENING_ITEMS - after
        assert not after & DAY_ITEMS


def test_timeline_has_the_documented_shape(day_to_evening: tuple[Path, dict[str, Any]]) -> None:
    out, _ = day_to_evening
    records = read_timeline(out / "timeline.jsonl")
    assert records
    for record in records:
        extra = {"state"} if record["event"] == "state" else set()
        extra |= {"load_ms"} if record["event"] == "start" else set()
        extra |= {"error"} if record["event"] == "error" else set()
        assert set(record) == TIMELINE_KEYS | extra
        assert record["event"] in ("start", "end", "error", "state")
        dt.datetime.fromisoformat(record["wall"])
        if record["event"] == "start":
            # A virtual clock: presented on the deadline, nothing measured in media time.
            assert record["due"] == record["t"] and record["late_ms"] is None
            assert record["load_ms"] is None
    times = [r["t"] for r in records if r["device"] == "sim-1"]
    assert times == sorted(times)


def test_summary_and_outputs(day_to_evening: tuple[Path, dict[str, Any]]) -> None:
    out, summary = day_to_evening
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["errors"] == 0
    assert summary["black_frames"] == 0
    assert summary["late_ms"]["count"] == 0, "not measured on a virtual clock"
    deadlines = summary["deadlines"]
    assert deadlines["checked"] == deadlines["on_frame"] == summary["switches"] > 0
    assert deadlines["missed"] == 0
    # Every frame that changed an image or video zone was judged (none dropped: virtual clock).
    assert summary["checked_frames"] > 0 and summary["unchecked_frames"] == 0
    assert summary["devices"] == 2
    assert set(summary["layouts"]) == {"day", "evening"}
    for device in ("sim-1", "sim-2"):
        root = out / "devices" / device
        assert (root / "credentials.json").is_file()
        assert (root / "manifest.json").is_file()
        assert any((root / "cache" / "objects").rglob("*"))
        frames = sorted(p.name for p in (out / "frames" / device).glob("*.png"))
        assert any("_evening_" in name for name in frames)
        assert any("_day_" in name for name in frames)


def test_command_line_run_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "sim", "--duration", "12", "--speed", "max", "--frames", "none", "-q",
            "--start", "2026-11-23T12:00:00+01:00", "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "switches" in out and "late_ms" in out and "black frames" in out
    assert not (tmp_path / "frames").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["speed"] == "max"


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--frames", "sometimes", "--duration", "1"]) == 1
    assert "--frames" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sim", "--speed", "fast"])
    with pytest.raises(ConfigError):
        FramePolicy.parse("every:0")


def test_timelapse_frames(tmp_path: Path) -> None:
    code = main(
        [
            "sim", "--duration", "12", "--speed", "max", "--frames", "every:5", "-q",
            "--start", "2026-11-23T20:00:00+01:00", "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert code == 0
    names = sorted(p.name for p in (tmp_path / "frames" / "sim-1").glob("*.png"))
    assert names == ["00000005.000.png", "00000010.000.png"]


async def test_an_existing_server_is_seeded_and_used(tmp_path: Path) -> None:
    from core import load_settings
    from server import run_in_thread
    from tools.sim._scenario import parse_scenario

    settings = load_settings(None, env={}, overrides={"data_dir": str(tmp_path / "srv")})
    running = run_in_thread(settings, tmp_path / "srv")
    try:
        options = SimOptions(
            duration_s=10,
            out=tmp_path / "out",
            speed=None,
            server_url=running.url,
            admin_token=running.admin_token,
            start=dt.datetime(2026, 11, 23, 10, tzinfo=PARIS),
            frames=FramePolicy.parse("none"),
        )
        result = await run_simulation(options)
        assert result.summary["switches"] >= 1
        assert not (tmp_path / "out" / "server").exists()  # nothing started in-process
        outage = parse_scenario("[[events]]\nat = 5\naction = 'stop_server'\nseconds = 1")
        with pytest.raises(ConfigError, match="in-process server"):
            await run_simulation(
                SimOptions(
                    duration_s=10,
                    out=tmp_path / "out2",
                    speed=None,
                    server_url=running.url,
                    admin_token=running.admin_token,
                    scenario=outage,
                    frames=FramePolicy.parse("none"),
                )
            )
    finally:
        running.stop()


def test_out_folder_is_only_cleared_when_it_is_a_simulation(tmp_path: Path) -> None:
    from tools.sim._options import prepare_out

    foreign = tmp_path / "home"
    (foreign / "frames").mkdir(parents=True)
    (foreign / "frames" / "holiday.png").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="holds no earlier simulation"):
        prepare_out(foreign)
    assert (foreign / "frames" / "holiday.png").exists()
    ours = tmp_path / "sim"
    prepare_out(ours)
    (ours / "frames" / "sim-1").mkdir(parents=True)
    (ours / "timeline.jsonl").write_text("{}\n")
    prepare_out(ours)  # a rerun replaces the previous outputs
    assert not (ours / "frames").exists() and not (ours / "timeline.jsonl").exists()
    with pytest.raises(ConfigError, match="is a file"):
        prepare_out(ours / ".signage-sim")
