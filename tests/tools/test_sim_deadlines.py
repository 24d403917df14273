"""``signage sim --speed max`` stays truthful: switches on their deadlines, a clip lasts its length.

The demo content with its video, across the 07:00 daypart change, at the default animation
sampling of ``--speed max`` (0.1 Hz): sampling must not move a single switch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest

from player import read_timeline
from tools.cli._sim import MAX_SPEED_FPS
from tools.sim._frames import FramePolicy
from tools.sim._run import SimOptions, run_simulation

pytestmark = pytest.mark.slow

PARIS = dt.timezone(dt.timedelta(hours=1))  # Europe/Paris in November
IMAGE_S = 8.0  # the day showcase's image items
CLIP_S = 4.0  # tools/demo/clip.mp4


@pytest.fixture(scope="module")
def morning(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out = tmp_path_factory.mktemp("sim")
    options = SimOptions(
        duration_s=150,
        out=out,
        speed=None,
        start=dt.datetime(2026, 11, 23, 6, 59, tzinfo=PARIS),
        frames=FramePolicy.parse("none"),
        fps=MAX_SPEED_FPS,
    )
    result = asyncio.run(run_simulation(options))
    return read_timeline(Path(out) / "timeline.jsonl"), result.summary


def test_every_switch_is_on_its_deadline(
    morning: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    records, summary = morning
    assert summary["errors"] == 0 and summary["black_frames"] == 0
    starts = [r for r in records if r["event"] == "start"]
    assert starts
    for start in starts:
        assert start["t"] == start["due"] and start["late_ms"] is None, start
    assert summary["deadlines"]["missed"] == 0
    assert summary["deadlines"]["on_frame"] == len(starts)
    day = [r for r in starts if r["layout"] == "day"]
    assert dt.datetime.fromisoformat(day[0]["wall"]) == dt.datetime(2026, 11, 23, 7, tzinfo=PARIS)


def test_items_last_their_durations_and_the_clip_its_length(
    morning: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    records, _ = morning
    main = [r for r in records if r["event"] == "start" and r["zone"] == "main"]
    items = [r["item"] for r in main]
    assert items[:6] == ["welcome", "on-time", "clip", "offline", "pair", "welcome"]
    for current, following in itertools.pairwise(main):
        length = CLIP_S if current["item"] == "clip" else IMAGE_S
        assert following["t"] - current["t"] == pytest.approx(length, abs=1e-6), current
