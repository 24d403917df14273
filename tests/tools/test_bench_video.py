"""``signage bench video`` runs end to end on a few switches."""

from __future__ import annotations

import argparse

from tools.bench import _video as _bench_video


async def test_bench_video_reports_every_figure_on_a_short_run() -> None:
    args = argparse.Namespace(
        clips=_bench_video.DEFAULT_CLIPS, switches=2, leak_switches=12, passes=1, json=None
    )
    report = await _bench_video._main(args)
    kinds = [row["kind"] for row in report["switching"]]
    assert kinds == ["video→video", "video→image", "image→video", "video→video at end"]
    for row in report["switching"]:
        assert row["switches"] == 2
        assert row["black_frames"] == 0  # the next item's first frame is ready before its turn
    assert [row["size"] for row in report["fps"]] == ["1280x720", "1920x1080"]
    results = {row["clip"]: row["result"] for row in report["decoders"]}
    assert results["truncated_h264.mp4"].startswith("error")
    assert results["aac_1s.m4a"].startswith("error")
    assert all(results[name] == "plays" for name in results if name.endswith((".webm", ".mkv")))
    assert report["leaks"]["switches"] == 12 and report["leaks"]["handles_created"] == 2
