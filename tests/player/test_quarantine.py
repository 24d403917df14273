"""The crash guard: what was in flight when the player died is quarantined at the next start."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import ZoneError
from player import read_timeline, sha256_of
from player._quarantine import INFLIGHT, QUARANTINE, ItemQuarantine, boot_id
from protocol import Manifest, VideoItem
from tests.player.conftest import DATA, image, layout

CLIP = DATA / "video" / "h264_320x180_2s.mp4"
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def _video(item_id: str = "v1", asset: str = "a" * 64) -> VideoItem:
    return VideoItem.model_validate(
        {"id": item_id, "type": "video", "asset": asset, "duration_ms": 5000}
    )


def _left_in_flight(folder: Path, *items: dict[str, str], boot: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"boot_id": boot_id() if boot is None else boot, "pid": 1, "items": list(items)}
    (folder / INFLIGHT).write_text(json.dumps(record))


async def test_an_item_in_flight_is_recorded_until_released(tmp_path: Path) -> None:
    guard = ItemQuarantine(tmp_path, hold_s=3600)
    guard.recover()
    token = await guard.enter("main", _video())
    on_disk = json.loads((tmp_path / INFLIGHT).read_text())
    assert on_disk["items"] == [{"zone": "main", "item": "v1", "asset": "a" * 64}]
    assert on_disk["boot_id"] == boot_id() and on_disk["pid"] == os.getpid()
    guard.leave(token)
    await guard.close()
    assert not (tmp_path / INFLIGHT).exists(), "a clean stop leaves nothing in flight"


async def test_items_left_in_flight_by_a_crash_are_skipped_with_zone_and_item(
    tmp_path: Path,
) -> None:
    _left_in_flight(
        tmp_path,
        {"zone": "main", "item": "v1", "asset": "a" * 64},
        {"zone": "side", "item": "v9", "asset": "b" * 64},
    )
    clock = Clock()
    guard = ItemQuarantine(tmp_path, hold_s=3600, now=clock)
    added = guard.recover()
    assert {(e.zone, e.item) for e in added} == {("main", "v1"), ("side", "v9")}
    assert not (tmp_path / INFLIGHT).exists()
    assert len(json.loads((tmp_path / QUARANTINE).read_text())) == 2
    with pytest.raises(ZoneError, match="quarantined until 2026-11-23 10:00 UTC") as caught:
        await guard.enter("main", _video())
    assert caught.value.zone == "main" and caught.value.item == "v1"
    # Keyed by the file: another item of the same asset is skipped too, a new file plays.
    with pytest.raises(ZoneError):
        await guard.enter("other", _video("v2"))
    await guard.enter("main", _video("v1", asset="c" * 64))
    assert [e.item for e in guard.items] == ["v1", "v9"]
    await guard.close()
    # A restart keeps the quarantine; time ends it.
    again = ItemQuarantine(tmp_path, hold_s=3600, now=clock)
    assert again.recover() == [] and len(again.items) == 2
    clock.now = NOW + dt.timedelta(hours=1, seconds=1)
    assert again.items == []
    await again.enter("main", _video())
    await again.close()


def test_a_reboot_or_power_cut_quarantines_nothing(tmp_path: Path) -> None:
    _left_in_flight(tmp_path, {"zone": "main", "item": "v1", "asset": "a" * 64}, boot="other")
    guard = ItemQuarantine(tmp_path, hold_s=3600)
    assert guard.recover() == [] and guard.items == []
    assert not (tmp_path / INFLIGHT).exists()


def test_damaged_records_are_ignored(tmp_path: Path) -> None:
    (tmp_path / INFLIGHT).write_text("{not json")
    (tmp_path / QUARANTINE).write_text('[{"asset": "nope"}]')
    guard = ItemQuarantine(tmp_path, hold_s=3600)
    assert guard.recover() == [] and guard.items == []
    _left_in_flight(tmp_path, {"zone": "main", "item": "v1"})  # no asset: not actionable
    assert guard.recover() == []


# -- a real crash -------------------------------------------------------------------------------


def _play(tmp_path: Path, timeline: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "tools", "play",
        "--manifest", str(tmp_path / "manifest.json"),
        "--assets", str(tmp_path / "assets"),
        "--data-dir", str(tmp_path / "state"),
        "--timeline", str(timeline),
        "--headless", *extra,
    ]  # fmt: skip
    with timeline.with_suffix(".log").open("wb") as log:  # the child keeps its own copy
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)


def _wait_for(
    timeline: Path, what: str, *, process: subprocess.Popen[bytes]
) -> list[dict[str, object]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the player exited early"
        if timeline.exists():
            events = read_timeline(timeline)
            if any(e["event"] == "start" and e["item"] == what for e in events):
                return events
        time.sleep(0.05)
    raise AssertionError(f"{what} never started")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGABRT, signal.SIGKILL])
def test_a_video_playing_when_the_player_dies_is_skipped_after_the_restart(
    tmp_path: Path, signum: signal.Signals
) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(CLIP, assets / "clip.mp4")
    shutil.copy(DATA / "red.png", assets / "red.png")
    clip, red = sha256_of(CLIP), sha256_of(DATA / "red.png")
    video = {"id": "v1", "type": "video", "asset": clip, "duration_ms": 60_000, "loop": True}
    m = Manifest.model_validate(
        {
            "version": 1,
            "assets": [
                {"sha256": clip, "size": CLIP.stat().st_size, "mime": "video/mp4"},
                {"sha256": red, "size": 1, "mime": "image/png"},
            ],
            "playlists": [{"id": "p1", "items": [video, image("i1", red, 60_000)]}],
            "layouts": [layout("l1", "p1")],
            "default_layout": "l1",
        }
    )
    (tmp_path / "manifest.json").write_text(m.model_dump_json(by_alias=True))

    first = _play(tmp_path, tmp_path / "first.jsonl")
    try:
        _wait_for(tmp_path / "first.jsonl", "v1", process=first)
        first.send_signal(signum)  # what libmpv's abort (or the watchdog, or the OOM killer) does
        assert first.wait(30) == -signum
    finally:
        first.kill()
        first.wait()
    assert (tmp_path / "state" / INFLIGHT).exists()

    second = _play(tmp_path, tmp_path / "second.jsonl", "--duration", "4")
    try:
        events = _wait_for(tmp_path / "second.jsonl", "i1", process=second)
        assert second.wait(60) == 0
    finally:
        second.kill()
        second.wait()
    events = read_timeline(tmp_path / "second.jsonl")
    errors = [e for e in events if e["event"] == "error"]
    assert errors and errors[0]["zone"] == "main" and errors[0]["item"] == "v1"
    assert "quarantined until" in str(errors[0]["error"])
    assert not [e for e in events if e["event"] == "start" and e["item"] == "v1"]
    assert next(e["item"] for e in events if e["event"] == "start") == "i1"
    (entry,) = json.loads((tmp_path / "state" / QUARANTINE).read_text())
    assert entry["asset"] == clip and entry["item"] == "v1"
    assert not (tmp_path / "state" / INFLIGHT).exists(), "the second run stopped cleanly"
